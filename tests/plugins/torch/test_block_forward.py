"""A population run a block of steps at a time compiled (``spikeloom_torch.block_forward``) gives
the values of the step-by-step torch operations (:func:`.dynamics.spiking_step` after the sparse
recurrent delivery of :class:`.dynamics.Stepper`) bit for bit, and the positions of its spikes as
:func:`.dynamics.spike_positions` finds them."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

import spikeloom as sl  # noqa: E402
from spikeloom_torch import block_forward, chunk_compiled, dynamics, spikes  # noqa: E402

if not chunk_compiled.AVAILABLE:
    pytest.skip("numba is not installed", allow_module_level=True)

B, J = 6, 9


def _pop(kind, reset, delta, unit_gain, refractory, dtype, rng):
    f = lambda lo, hi: torch.as_tensor(rng.uniform(lo, hi, J), dtype=dtype)  # noqa: E731
    am = f(0.8, 0.97)
    return dynamics.PopConst(
        name="h",
        kind=kind,
        n=J,
        reset=reset,
        delta=delta,
        unit_gain=unit_gain,
        refractory=refractory,
        alpha_mem=am,
        alpha_syn=torch.zeros(J, dtype=dtype) if delta else f(0.6, 0.9),
        g=torch.ones(J, dtype=dtype) if unit_gain else f(0.3, 0.6),
        v_thresh=f(0.8, 1.2),
        rho=f(0.9, 0.99) if kind == "ALIF" else None,
        beta=f(0.05, 0.3) if kind == "ALIF" else None,
        n_ref=torch.as_tensor(rng.integers(0, 4, J), dtype=torch.int64) if refractory else None,
        bias=None,
    )


def _torch_steps(p, hext, W, delay, T):
    """The Stepper's operations: rows of W selected by the spikes delivered ``delay`` steps back
    (``embedding_bag``), added to the feed-forward drive, then :func:`.dynamics.spiking_step`."""
    state = dynamics.zero_spiking_state(p, B)
    zs, out = [], []
    for t in range(T):
        h = hext[t].clone() if hext is not None else None
        if W is not None and t >= delay:
            pos = dynamics.spike_positions(zs[t - delay])
            if pos is None:  # dense: spike_positions gives up above SPARSE_BELOW
                h_s = zs[t - delay] @ W
            else:
                h_s = torch.nn.functional.embedding_bag(pos[1], W, pos[2], mode="sum")
            h = h_s if h is None else h + h_s
        if h is None:
            h = torch.zeros((B, J), dtype=p.alpha_mem.dtype)
        state, rec = dynamics.spiking_step(p, state, h)
        zs.append(rec["z"])
        out.append(rec)
    return out


CONFIGS = list(
    itertools.product(
        ["LIF", "ALIF"],
        ["subtract", "zero"],
        [True, False],
        [True, False],
        [False, True],
        [torch.float32, torch.float64],
    )
)


@pytest.mark.parametrize(("kind", "reset", "delta", "unit_gain", "refractory", "dtype"), CONFIGS)
@pytest.mark.parametrize(
    ("delay", "recurrent", "ext"), [(1, True, True), (3, True, True), (1, False, True), (2, True, False)]
)
def test_blocks_equal_torch_steps(kind, reset, delta, unit_gain, refractory, dtype, delay, recurrent, ext, monkeypatch):
    monkeypatch.setattr(dynamics, "SPARSE_BELOW", 2.0)  # the Stepper's sparse delivery at any activity
    rng = np.random.default_rng(zlib.crc32(repr((kind, reset, delta, unit_gain, refractory, delay)).encode()))
    p = _pop(kind, reset, delta, unit_gain, refractory, dtype, rng)
    T, block = 17, 5
    hext = torch.as_tensor(rng.normal(0.2, 0.6, (T, B, J)), dtype=dtype) if ext else None
    W = torch.as_tensor(rng.normal(0.0, 0.4, (J, J)), dtype=dtype) if recurrent else None
    expected = _torch_steps(p, hext, W, delay, T)
    activity = float(torch.stack([r["z"] for r in expected]).mean())
    assert 0 < activity < 0.95 if ext else activity == 0  # without a drive nothing moves from the zero state

    runner = block_forward.BlockRunner(p, B, W, delay if recurrent else 0, block, slots=2)
    past = [torch.zeros((B, J), dtype=dtype)] * 3
    for t0 in range(0, T, block):
        L = min(block, T - t0)
        rec = runner.run(L, None if hext is None else hext[t0 : t0 + L], past)
        for k in range(L):
            want = expected[t0 + k]
            for v in ("V", "z", "a", "refractory"):
                assert (v in rec) == (v in want), v
                if v in rec:
                    np.testing.assert_array_equal(rec[v][k].numpy(), want[v].numpy(), err_msg=f"{v} t={t0 + k}")
            flat, cols, starts = runner.positions[k]
            want_flat, want_cols, want_starts = dynamics.spike_positions(want["z"])
            np.testing.assert_array_equal(flat, want_flat)
            np.testing.assert_array_equal(cols.numpy(), want_cols.numpy())
            np.testing.assert_array_equal(starts.numpy(), want_starts.numpy())
        past = [rec["z"][k] for k in range(L - 1, -1, -1)] + past  # latest first


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ext", [True, False])
def test_input_spikes_delivered_inside(dtype, ext):
    """Bool input spikes given by their positions (:func:`.block_forward.scan`) add the rows of
    ``W_in`` they select, in column order, to the drive: the same values as that sum made first
    (bit for bit), and as the CSR product of the Stepper's blocked drive to round-off."""
    rng = np.random.default_rng(11)
    p = _pop("ALIF", "subtract", False, False, False, dtype, rng)
    n_in, L = 23, 6
    x = rng.random((L, B, n_in)) < 0.2
    x[2, 1] = False  # an example without input spikes at one step
    W_in = torch.as_tensor(rng.normal(0.4, 1.0, (n_in, J)), dtype=dtype)
    hext = torch.as_tensor(rng.normal(0.1, 0.3, (L, B, J)), dtype=dtype) if ext else None
    flat, bounds = block_forward.scan(x)
    np.testing.assert_array_equal(flat, np.flatnonzero(x))
    drive = torch.zeros((L, B, J), dtype=dtype) if hext is None else hext.clone()
    for t in range(L):
        for b in range(B):
            rows = np.flatnonzero(x[t, b])
            if rows.size:
                acc = W_in[rows[0]].clone()
                for i in rows[1:]:
                    acc += W_in[i]
                drive[t, b] += acc
    inside = block_forward.BlockRunner(p, B, None, 0, L, slots=1, W_in=W_in).run(L, hext, [], (flat, bounds))
    given = block_forward.BlockRunner(p, B, None, 0, L, slots=1).run(L, drive, [])
    for v in ("V", "z", "a"):
        assert torch.equal(inside[v], given[v]), v
    product = spikes.SpikeTrain(x, torch.device("cpu"), dtype)
    h = torch.zeros((L * B, J), dtype=dtype)
    product.deliver(0, W_in, h, accumulate=False)
    expected = h.view(L, B, J) if hext is None else hext + h.view(L, B, J)
    np.testing.assert_allclose(drive.numpy(), expected.numpy(), rtol=1e-5 if dtype == torch.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("kind", ["LIF", "ALIF"])
@pytest.mark.parametrize("sg", [sl.SuperSpike(7.0), sl.Triangle(0.3)], ids=["superspike", "triangle"])
def test_surrogate_in_the_call(sg, kind, refractory, dtype):
    """With a surrogate, the call keeps ``psi`` instead of ``V`` and ``a``: bit for bit the
    compiled surrogate of those values (:func:`.chunk_compiled.surrogate_`), 0 while refractory;
    the spikes, refractoriness and positions are those of the call without it."""
    rng = np.random.default_rng(zlib.crc32(repr((sg.kind, kind, refractory, str(dtype))).encode()))
    p = _pop(kind, "subtract", False, False, refractory, dtype, rng)
    T, block = 13, 5
    hext = torch.as_tensor(rng.normal(0.3, 0.7, (T, B, J)), dtype=dtype)
    W = torch.as_tensor(rng.normal(0.0, 0.4, (J, J)), dtype=dtype)
    plain = block_forward.BlockRunner(p, B, W, 1, block, slots=1)
    with_psi = block_forward.BlockRunner(p, B, W, 1, block, slots=1, surrogate=sg)
    past = [torch.zeros((B, J), dtype=dtype)]
    held = 0
    for t0 in range(0, T, block):
        L = min(block, T - t0)
        want = plain.run(L, hext[t0 : t0 + L], past)
        got = with_psi.run(L, hext[t0 : t0 + L], past)
        assert set(got) == {"z", "psi"} | ({"refractory"} if refractory else set())
        for v in ("z", "refractory"):
            if v in want:
                assert torch.equal(got[v], want[v]), v
        psi = chunk_compiled.surrogate_(sg, want["V"].clone(), want.get("a"), p.beta, p.v_thresh)
        if refractory:
            psi.masked_fill_(want["refractory"], 0)
            held += int(want["refractory"].sum())
        assert torch.equal(got["psi"], psi)
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(with_psi.positions, plain.positions, strict=True))
        past = [want["z"][L - 1].clone()]  # the slot is overwritten by the next block
    assert held > 0 or not refractory


def test_scan_finds_every_non_zero_byte():
    """Word-wise scan: rows not aligned to words, all-zero and all-one blocks, bool bytes other
    than 0 and 1, and a block that starts off a word boundary."""
    rng = np.random.default_rng(5)
    for shape in [(3, 5, 7), (4, 3, 13), (2, 3, 16), (1, 1, 1), (6, 4, 700)]:
        for density in (0.0, 0.03, 0.5, 1.0):
            x = rng.random(shape) < density
            flat, bounds = block_forward.scan(x)
            np.testing.assert_array_equal(flat, np.flatnonzero(x))
            rows = shape[0] * shape[1]
            np.testing.assert_array_equal(bounds, np.searchsorted(flat, np.arange(rows + 1) * shape[2]))
    odd = rng.integers(0, 4, (6, 5, 11)).astype(np.uint8).view(np.bool_)
    np.testing.assert_array_equal(block_forward.scan(odd)[0], np.flatnonzero(odd.view(np.uint8)))
    sliced = (rng.random((40, 3, 7)) < 0.1)[3:20]
    assert sliced.ctypes.data % 8
    np.testing.assert_array_equal(block_forward.scan(sliced)[0], np.flatnonzero(sliced))
    assert block_forward.scan(sliced.astype(np.float32)) is None
    assert block_forward.scan(sliced[:, :, ::2]) is None  # not contiguous


def test_earlier_slots_stay_valid():
    """A block's values stay unchanged while the next ``slots - 1`` blocks run."""
    rng = np.random.default_rng(3)
    p = _pop("ALIF", "subtract", False, True, False, torch.float32, rng)
    runner = block_forward.BlockRunner(p, B, None, 0, 4, slots=3)
    hext = torch.as_tensor(rng.normal(0.3, 0.6, (4, B, J)), dtype=torch.float32)
    first = runner.run(4, hext, [])
    kept = {k: v.clone() for k, v in first.items()}
    runner.run(4, hext, [])
    runner.run(4, hext, [])
    for k, v in kept.items():
        assert torch.equal(first[k], v), k
    runner.run(4, hext, [])  # the fourth block reuses the first one's slot
    assert not all(torch.equal(first[k], v) for k, v in kept.items())


def test_surrogate_without_a_compiled_formula_is_refused():
    p = _pop("LIF", "subtract", False, True, False, torch.float32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="surrogate"):
        block_forward.BlockRunner(p, B, None, 0, 4, slots=1, surrogate=sl.surrogates.Sigmoid())


def test_recurrent_delay_below_one_is_refused():
    p = _pop("LIF", "subtract", False, True, False, torch.float32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="delay"):
        block_forward.BlockRunner(p, B, torch.zeros((J, J)), 0, 4, slots=2)


@pytest.mark.parametrize(("block", "delay", "slots"), [(64, 1, 2), (64, 64, 2), (64, 65, 3), (8, 20, 4)])
def test_slots_needed(block, delay, slots):
    assert block_forward.slots_needed(block, delay) == slots
