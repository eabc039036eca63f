"""e-prop evaluated in chunks of K steps (``spikeloom_torch.eprop_chunked``) equals the NumPy
reference in float64, for every chunk size (K = 1, sizes that do not divide T, K > T), and runs
for every setup (both resets) unless ``CHUNK = 0`` asks for the per-step path."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

import spikeloom as sl  # noqa: E402
from spikeloom_torch import chunk_compiled, chunk_spikes, dynamics, eprop_chunked, spikes  # noqa: E402

from .corpus import CHUNKED_CASES  # noqa: E402
from .helpers import RTOL64, assert_close  # noqa: E402

NUMPY = sl.get_backend("numpy")
TORCH = sl.get_backend("torch")


def _grads(case, chunk, monkeypatch):
    monkeypatch.setattr(eprop_chunked, "CHUNK", chunk)
    net = case.network()
    x, labels = case.inputs()
    compiled = TORCH.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    return compiled.loss_and_grads(x, labels)


@pytest.fixture(params=["compiled", "sparse", "dense"])
def spikes_kept(request, monkeypatch):
    """Run with every spike train kept as positions (the input drive a CSR product per block, the
    recurrent drive one ``embedding_bag`` per step) and each chunk's backward recursion and state
    update compiled (:mod:`.chunk_compiled`, "compiled", at any size; skipped without Numba) or
    in torch operations with a CSR product ("sparse"), or with every product dense."""
    below = 0.0 if request.param == "dense" else 2.0
    for module in (chunk_spikes, dynamics, spikes):
        monkeypatch.setattr(module, "SPARSE_BELOW", below)
    if request.param == "compiled" and not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(chunk_compiled, "AVAILABLE", request.param == "compiled")
    monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)
    return request.param


@pytest.mark.parametrize("case", CHUNKED_CASES, ids=str)
def test_chunked_equals_reference(case, spikes_kept, monkeypatch):
    net = case.network()
    x, labels = case.inputs()
    expected = NUMPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64").loss_and_grads(
        x, labels
    )
    assert any(np.any(g != 0) for g in expected.grads.values())
    for chunk in (1, 2, 5, 7, 16, 64):
        actual = _grads(case, chunk, monkeypatch)
        assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
        np.testing.assert_array_equal(actual.predictions, expected.predictions)
        assert list(actual.grads) == list(expected.grads)
        for name, g in expected.grads.items():
            assert_close(actual.grads[name], g, RTOL64, f"K={chunk} {name}")


def test_which_path_runs(monkeypatch):
    """Both resets run in chunks; CHUNK = 0 runs the per-step path (the chunked function is never called)."""
    calls = []
    original = eprop_chunked.eprop_chunked

    def spy(*args, **kw):
        calls.append(kw.get("chunk"))
        return original(*args, **kw)

    monkeypatch.setattr(eprop_chunked, "eprop_chunked", spy)
    sub = next(c for c in CHUNKED_CASES if c.id == "alif-exp-delay2")
    zero = next(c for c in CHUNKED_CASES if c.id == "lif-zero-exp")
    for case, chunk, expected in ((sub, 8, [8]), (zero, 8, [8]), (sub, 0, []), (zero, 0, [])):
        calls.clear()
        _grads(case, chunk, monkeypatch)
        assert calls == expected, case.id


@pytest.mark.parametrize("mode", ["compiled", "sparse", "dense"])
def test_which_state_update_runs(mode, monkeypatch):
    """The compiled pass runs exactly where the spikes are kept as positions and Numba is installed."""
    if mode == "compiled" and not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    for module in (chunk_spikes, dynamics, spikes):
        monkeypatch.setattr(module, "SPARSE_BELOW", 0.0 if mode == "dense" else 2.0)
    monkeypatch.setattr(chunk_compiled, "AVAILABLE", mode == "compiled")
    monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)
    passes, backwards, csr = [], [], []
    original_pass, original_add = chunk_compiled.chunk_pass, chunk_spikes.ChunkSpikes.add_to_states
    original_backward = chunk_compiled.chunk_backward
    monkeypatch.setattr(chunk_compiled, "chunk_pass", lambda *a, **kw: passes.append(1) or original_pass(*a, **kw))
    monkeypatch.setattr(
        chunk_compiled, "chunk_backward", lambda *a, **kw: backwards.append(1) or original_backward(*a, **kw)
    )
    monkeypatch.setattr(
        chunk_spikes.ChunkSpikes,
        "add_to_states",
        lambda *a, **kw: csr.append(a[0].dense is None) or original_add(*a, **kw),
    )
    _grads(next(c for c in CHUNKED_CASES if c.id == "alif-exp-delay2"), 5, monkeypatch)
    assert bool(passes) == bool(backwards) == (mode == "compiled")
    assert csr == {"compiled": [], "sparse": [True] * len(csr), "dense": [False] * len(csr)}[mode]
    assert mode == "compiled" or csr


@pytest.mark.parametrize(
    "case_id", ["alif-exp-delay2", "alif-exp-delta-readout", "alif-delta-delay3-reg", "lif-het-exp-random"]
)
def test_compiled_float32_agrees_with_torch_operations(case_id, monkeypatch):
    """In float32 the compiled kernels and the torch operations give the same gradients to
    float32 round-off (same forward run, so the same spikes)."""
    if not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    x, labels = case.inputs()
    for module in (chunk_spikes, dynamics, spikes):
        monkeypatch.setattr(module, "SPARSE_BELOW", 2.0)
    monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)
    monkeypatch.setattr(eprop_chunked, "CHUNK", 7)
    grads = {}
    for compiled in (True, False):
        monkeypatch.setattr(chunk_compiled, "AVAILABLE", compiled)
        net = TORCH.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float32")
        grads[compiled] = net.loss_and_grads(x, labels).grads
    for name, g in grads[False].items():
        assert g.dtype == np.float32
        scale = float(np.max(np.abs(g))) or 1.0
        np.testing.assert_allclose(grads[True][name], g, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize("rule", ["BPTT", "EProp"])
def test_small_networks_do_not_load_numba(rule):
    """Numba (about 160 MiB) is loaded by the first compiled chunk of a population with at least
    ``MIN_WORK`` batch entries x neurons (or BPTT's compiled scans and sums at their sizes), not
    by ``import spikeloom`` or a small BPTT or e-prop run."""
    code = (
        "import sys, numpy as np, spikeloom as sl\n"
        "net = sl.Network([sl.SpikeInput('i', 4), sl.ALIF('h', 3), sl.LI('o', 2)],"
        " [sl.Connection('i', 'h'), sl.Connection('h', 'o')])\n"
        f"c = sl.get_backend('torch').compile(net, rule=sl.{rule}(), readout=sl.Readout('o', 'per_step'))\n"
        "c.loss_and_grads(np.ones((5, 2, 4)), np.array([0, 1]))\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert chunk_compiled.use(2, 3, torch.device("cpu")) is False
    assert chunk_compiled.use(32, 256, torch.device("cpu")) is chunk_compiled.AVAILABLE


@pytest.mark.parametrize("case_id", ["alif-exp-delay2", "lif-delta-scale-input", "alif-zero-het-random"])
def test_per_step_path_still_equals_reference(case_id, monkeypatch):
    """CHUNK = 0 keeps the per-step algorithm; it agrees with the reference and the chunked one
    (a delta-synapse readout with scale_input applies its gain to e_bar on both paths)."""
    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    net = case.network()
    x, labels = case.inputs()
    ref = NUMPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    expected = ref.loss_and_grads(x, labels)
    a, b = _grads(case, 0, monkeypatch), _grads(case, 5, monkeypatch)
    for name, g in expected.grads.items():
        assert_close(a.grads[name], g, RTOL64, f"per step {name}")
        assert_close(b.grads[name], g, RTOL64, f"chunked {name}")


def test_buffers_do_not_grow_with_T(monkeypatch):
    """The per-step quantities kept between chunks never exceed K + the readout delay steps."""
    longest = []
    record = eprop_chunked._ChunkedPop.record

    def spy(self, t, *args):
        record(self, t, *args)
        longest.append(max(len(self.rec), len(self.rates), len(self.inp), len(self.delta)))

    monkeypatch.setattr(eprop_chunked._ChunkedPop, "record", spy)
    case = dataclasses.replace(next(c for c in CHUNKED_CASES if c.id == "alif-delta-delay3-reg"), T=200)
    _grads(case, 8, monkeypatch)
    assert len(longest) == 200 and max(longest) <= 8 + 3 + 1


@pytest.mark.parametrize("het_out", [False, True])
def test_two_readout_connections_with_different_delays(het_out, spikes_kept, monkeypatch):
    """One population reaching the readout twice (delays 1 and 3): one e_bar per connection, and
    per readout neuron where the readout's time constants differ."""
    out_kw = dict(tau_mem=sl.Gamma(10.0, shape=3), tau_syn=sl.Uniform(2.0, 4.0)) if het_out else dict(tau_syn=3.0)
    net = sl.Network(
        [
            sl.SpikeInput("inp", 6),
            sl.ALIF("h", 5, tau_syn=4.0, tau_mem=sl.Gamma(20.0, shape=3), tau_adapt=40.0, beta=0.3),
            sl.LI("out", 3, **out_kw),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.3, 0.3)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.4), delay=2),
            sl.Connection("h", "out", weight=sl.Normal(0.0, 0.5)),
            sl.Connection("h", "out", weight=sl.Normal(0.0, 0.5), delay=3, name="h_out_slow"),
        ],
        seed=5,
    )
    rng = np.random.default_rng(7)
    x, labels = rng.random((27, 3, 6)) < 0.3, rng.integers(0, 3, size=3)
    rule, readout = sl.EProp(feedback="random", c_reg=0.05), sl.Readout("out")
    expected = NUMPY.compile(net, rule=rule, readout=readout, dtype="float64").loss_and_grads(x, labels)
    for chunk in (1, 4, 10):
        monkeypatch.setattr(eprop_chunked, "CHUNK", chunk)
        actual = TORCH.compile(net, rule=rule, readout=readout, dtype="float64").loss_and_grads(x, labels)
        for name, g in expected.grads.items():
            assert_close(actual.grads[name], g, RTOL64, f"K={chunk} {name}")


def _compiled_only(monkeypatch):
    if not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    for module in (chunk_spikes, dynamics, spikes):
        monkeypatch.setattr(module, "SPARSE_BELOW", 2.0)
    monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)


@pytest.mark.parametrize("kind", [np.bool_, np.uint8, np.float64])
def test_fused_forward_with_each_input_kind(kind, monkeypatch):
    """The hidden layer runs its chunks in one compiled call (``block_forward``) whatever the
    input's dtype: bool spikes are scanned and delivered inside the call, the others reach it as
    a drive; the gradients equal the reference's either way."""
    _compiled_only(monkeypatch)
    from spikeloom_torch import block_forward

    case = next(c for c in CHUNKED_CASES if c.id == "alif-exp-delay2")
    x, labels = case.inputs()
    x = x.astype(kind)
    expected = NUMPY.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    expected = expected.loss_and_grads(x, labels)
    runs = []
    original = block_forward.BlockRunner.run
    monkeypatch.setattr(
        block_forward.BlockRunner,
        "run",
        lambda self, *a: runs.append(len(a) > 3 and a[3] is not None) or original(self, *a),
    )
    monkeypatch.setattr(eprop_chunked, "CHUNK", 7)
    actual = TORCH.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    actual = actual.loss_and_grads(x, labels)
    assert runs and all(runs) == (kind is np.bool_) and any(runs) == (kind is np.bool_)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)


@pytest.mark.parametrize("first_rows", [1, None])
def test_readout_rows_sized_for_a_flush(first_rows, monkeypatch):
    """The readout's kept rows are made as large as the steps between two flushes (a chunk and the
    longest delay into the readout: they never grow); made smaller, they grow, keeping the rows
    already written, and the gradients stay the reference's."""
    from spikeloom_torch import eprop_readout

    case = next(c for c in CHUNKED_CASES if c.id == "alif-exp-delay2")
    x, labels = case.inputs()
    expected = NUMPY.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    expected = expected.loss_and_grads(x, labels)
    made = []
    init, row = eprop_readout.ReadoutSide.__init__, eprop_readout.ReadoutSide._row

    def spy_init(self, *a, **kw):
        init(self, *a, **kw)
        if first_rows is not None:
            self.first_rows = first_rows

    def spy_row(self, name, r, shape):
        before = self._rows.get(name)
        out = row(self, name, r, shape)
        if self._rows[name] is not before:
            made.append(self._rows[name].shape[0])
        return out

    monkeypatch.setattr(eprop_readout.ReadoutSide, "__init__", spy_init)
    monkeypatch.setattr(eprop_readout.ReadoutSide, "_row", spy_row)
    monkeypatch.setattr(eprop_chunked, "CHUNK", 5)
    actual = TORCH.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    actual = actual.loss_and_grads(x, labels)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)
    # the connection into the readout has delay 2 in this case: 5 + 2 rows
    assert made == ([1, 2, 4, 8] if first_rows == 1 else [7])


@pytest.mark.parametrize("group", [1, 3, 5])
@pytest.mark.parametrize("case_id", ["alif-exp-delta-readout", "alif-zero-het-random", "lif-delta-scale-input"])
def test_grouped_passes_equal_reference(case_id, group, monkeypatch):
    """The compiled pass over the states once per ``GROUP`` chunks (the earlier chunks' spike
    coefficients referred to the group's end) gives the reference's gradients; a group's last
    chunk may be the run's last, K = 3 makes groups that do not divide the run, and GROUP = 5
    runs with at most five chunks (the first chunk then runs alone)."""
    _compiled_only(monkeypatch)
    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    expected = NUMPY.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    expected = expected.loss_and_grads(*case.inputs())
    monkeypatch.setattr(chunk_compiled, "GROUP", group)
    passes = []  # chunks per pass
    original = chunk_compiled.chunk_pass
    monkeypatch.setattr(chunk_compiled, "chunk_pass", lambda *a, **kw: passes.append(len(a[8])) or original(*a, **kw))
    actual = _grads(case, 3, monkeypatch)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, f"GROUP={group} {name}")
    chunks = -(-case.T // 3)
    if chunks > group:  # groups from the first chunk on, whose pass writes the states
        sizes = [group] * (chunks // group) + ([chunks % group] if chunks % group else [])
    else:  # the first chunk alone: it creates the states; the rest are the last group
        sizes = [1, chunks - 1]
    per_pass = len(passes) // len(sizes)  # one pass per connection
    assert passes == [size for size in sizes for _ in range(per_pass)]


@pytest.mark.parametrize("sg", [sl.SuperSpike(7.0), sl.Triangle(0.3)], ids=["superspike", "triangle"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alif", [True, False])
def test_compiled_surrogate_is_the_torch_operations(sg, dtype, alif):
    """The compiled surrogates give the torch path's values bit for bit (same operations, same order)."""
    if not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    from spikeloom_torch.surrogate_ops import surrogate_

    rng = np.random.default_rng(3)
    V = torch.from_numpy(rng.standard_normal((6, 4, 9)).astype(dtype))
    V[2, 1, 3] = float("nan")  # a diverged run: NaN stays NaN on both paths
    a = torch.from_numpy(rng.random((6, 4, 9)).astype(dtype)) if alif else None
    beta = torch.from_numpy(rng.random(9).astype(dtype))
    v_thresh = torch.from_numpy((0.5 + rng.random(9)).astype(dtype))
    x = V.clone()
    x.sub_(v_thresh if a is None else a.clone().mul_(beta).add_(v_thresh))
    expected = surrogate_(sg, x, v_thresh)
    assert torch.isnan(expected[2, 1, 3])
    actual = chunk_compiled.surrogate_(sg, V.clone(), a, beta, v_thresh)
    assert np.count_nonzero(expected.numpy()) > 0
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    # into another buffer (a block's own arrays stay as they are)
    kept, out = V.clone(), torch.empty_like(V)
    assert chunk_compiled.surrogate_(sg, kept, a, beta, v_thresh, out) is out
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(kept.numpy(), V.numpy())


def test_compiled_filter_ends_is_filter_end():
    """The traces' chunk-end filter computed compiled equals :meth:`ChunkSpikes.filter_end`."""
    if not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(4)
    K, B, n = 5, 3, 7
    dense = rng.random((K, B, n)) < 0.3
    flat = np.flatnonzero(dense)
    vals = rng.random(flat.size) + 0.5
    w = rng.random((2, K))
    p = chunk_spikes.ChunkSpikes((K, B, n), torch.float64, torch.device("cpu"), flat=flat, vals=vals)
    out = chunk_compiled.filter_ends(p, w, torch.float64)
    np.testing.assert_array_equal(p.starts, np.searchsorted(flat, np.arange(K * B + 1) * n))
    for x in range(2):
        np.testing.assert_array_equal(out[x].numpy(), p.filter_end(w[x]).numpy())


@pytest.mark.parametrize("first", ["dense", "sparse"])
def test_grouped_passes_with_dense_chunks_between(first, monkeypatch):
    """Compiled, with the default thresholds: chunks whose input spikes are dense (40 %) run the
    torch operations and end the group kept so far; the sparse ones (2 %) are grouped again.
    With sparse first chunks, the first group's pass (which creates the states) runs early."""
    if not chunk_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)
    monkeypatch.setattr(chunk_compiled, "GROUP", 3)
    # no recurrent connection: whether a chunk is grouped depends on its input spikes only
    case = dataclasses.replace(next(c for c in CHUNKED_CASES if c.id == "alif-exp-delta-readout"), recurrent=False)
    net = case.network()
    rng = np.random.default_rng(11)
    T, B = 40, 4
    p = np.where((np.arange(T) // 6) % 2 == (0 if first == "dense" else 1), 0.4, 0.02)[:, None, None]
    x, labels = rng.random((T, B, 9)) < p, rng.integers(0, 4, size=B)
    expected = NUMPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    expected = expected.loss_and_grads(x, labels)
    passes = []
    original = chunk_compiled.chunk_pass
    monkeypatch.setattr(
        chunk_compiled, "chunk_pass", lambda *a, **kw: passes.append((len(a[8]), a[2])) or original(*a, **kw)
    )
    monkeypatch.setattr(eprop_chunked, "CHUNK", 3)
    actual = TORCH.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    actual = actual.loss_and_grads(x, labels)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)
    chunks = [n for n, _ in passes]
    assert max(chunks) > 1 and sum(chunks) < -(-T // 3)  # some chunks grouped, some on the torch path
    # sparse first chunks: the first group (cut short by a dense chunk) creates the states
    assert passes[0] == ((2, True) if first == "sparse" else (2, False))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_id", ["alif-exp-delta-readout", "alif-zero-het-random", "lif-het-exp-random"])
def test_group_last_chunk_computed_again_in_the_pass(case_id, dtype, monkeypatch):
    """A group's last chunk keeps no coefficients (``chunk_backward`` gets no buffer) and the pass
    computes them again per example: its states and gradient equal, bit for bit, those of the
    same pass given the coefficients written by ``chunk_backward``; and the coefficient buffer
    holds ``GROUP - 1`` slots."""
    _compiled_only(monkeypatch)
    monkeypatch.setattr(chunk_compiled, "GROUP", 3)
    stored = []  # per chunk_backward call: whether it kept the coefficients
    backward, original = chunk_compiled.chunk_backward, chunk_compiled.chunk_pass
    checked = []

    def spy_backward(*a, **kw):
        stored.append(kw["coef"] is not None)
        return backward(*a, **kw)

    def spy_pass(S, dims, fresh, update, grad, M0, Mix, coef, spikes, E, Eb, redo=None):
        if redo is not None:
            assert coef.shape[0] == len(spikes) - 1
            K = spikes[-1].K
            C = redo["out_c"].shape[1]
            full = torch.empty((1,) + tuple(coef.shape[1:]), dtype=coef.dtype)
            backward(**redo, coef=full[0, :K], S=coef.shape[2] if update else 1, C=C)
            S2 = None if S is None else S.clone()
            grad2 = grad.clone()
            original(S2, dims, fresh, update, grad2, M0, Mix, torch.cat([coef, full]), spikes, E, Eb)
            original(S, dims, fresh, update, grad, M0, Mix, coef, spikes, E, Eb, redo)
            assert torch.equal(grad, grad2)
            if update:
                assert torch.equal(S, S2)
            checked.append((len(spikes), update))
            return None
        return original(S, dims, fresh, update, grad, M0, Mix, coef, spikes, E, Eb)

    monkeypatch.setattr(chunk_compiled, "chunk_backward", spy_backward)
    monkeypatch.setattr(chunk_compiled, "chunk_pass", spy_pass)
    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    monkeypatch.setattr(eprop_chunked, "CHUNK", 3)
    net = case.network()
    x, labels = case.inputs()
    compiled = TORCH.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype=dtype)
    actual = compiled.loss_and_grads(x, labels)
    expected = NUMPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype=dtype)
    expected = expected.loss_and_grads(x, labels)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64 if dtype == "float64" else 1e-3, name)
    chunks = -(-case.T // 3)
    # per trained population, connection by connection: groups of 3 (the last may be shorter)
    assert {n for n, _ in checked} == {3, chunks % 3 or 3} and (3, True) in checked and any(not u for _, u in checked)
    # chunks 1, 2 of a group keep their coefficients, the 3rd does not
    assert stored[:6] == [True, True, False] * 2
    slots = [v for k, v in compiled._workspace._buffers.items() if k[-1] == "coef"]
    assert slots and all(v.shape[0] == 2 for v in slots)
