"""Recurrent spikes delivered from their positions (the CPU's sparse path) give the reference's
states and gradients; the threshold on the work is lowered so that the small corpus takes it."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402
import spikeloom_torch.dynamics as dynamics  # noqa: E402
from spikeloom_torch import chunk_compiled, column_bags  # noqa: E402

from .corpus import CASES  # noqa: E402
from .helpers import RTOL64, assert_close  # noqa: E402


@pytest.fixture(params=["numpy", "compiled"])
def always_sparse(request, monkeypatch):
    """Every step's spikes found, and the weight gradients summed from their positions, by numpy
    and torch or by the compiled kernels (Numba) at any size."""
    if request.param == "compiled":
        if not chunk_compiled.AVAILABLE:
            pytest.skip("needs Numba")
        monkeypatch.setattr(chunk_compiled, "MIN_WORK", 0)
        monkeypatch.setattr(column_bags, "COMPILED_MIN_WORK", 0)
    monkeypatch.setattr(dynamics, "SPARSE_STEP_MIN_WORK", 0)
    monkeypatch.setattr(column_bags, "BLOCK_ROWS", 5)  # weight gradients from the positions in several blocks
    made = []

    class Counting(dynamics.SpikeEvents):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dynamics, "SpikeEvents", Counting)
    return made


def _quiet_network():
    """A recurrent network whose hidden layer spikes on a few percent of its neuron-steps."""
    return sl.Network(
        [sl.SpikeInput("inp", 60), sl.LIF("h", 80, tau_syn=5.0), sl.LI("out", 4)],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.0, 0.035)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.02)),
            sl.Connection("h", "out", weight=sl.Normal(0.0, 0.3), delay=2),
        ],
        seed=5,
    )


def test_sparse_recurrent_path_equals_reference(always_sparse):
    rng = np.random.default_rng(2)
    x, labels = rng.random((60, 6, 60)) < 0.03, np.arange(6) % 4
    ref, tor = (
        sl.get_backend(b).compile(_quiet_network(), rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float64")
        for b in ("numpy", "torch")
    )
    expected, actual = ref.simulate(x), tor.simulate(x)
    z = expected["h"]["z"]
    assert 0 < z.mean() and z.reshape(60, -1).mean(axis=1).max() < 0.05  # every step sparse
    for pop, vars_ in expected.items():
        for v, arr in vars_.items():
            assert_close(actual[pop][v], arr, RTOL64, f"{pop}.{v}")
    expected, actual = ref.loss_and_grads(x, labels), tor.loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)
    assert always_sparse and all(e.covered == 59 for e in always_sparse)


@pytest.mark.parametrize("case", [c for c in CASES if c.recurrent], ids=str)
def test_corpus_gradients_with_sparse_path(case, always_sparse):
    net = case.network()
    ref, tor = (
        sl.get_backend(b).compile(net, rule=case.bptt(), readout=case.readout("bptt"), dtype="float64")
        for b in ("numpy", "torch")
    )
    x, labels = case.inputs()
    expected, actual = ref.loss_and_grads(x, labels), tor.loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)


def test_split_index_is_divmod_for_non_negative_indices():
    from spikeloom_torch.spikes import split_index

    n = 700
    flat = np.concatenate([np.arange(3 * n), np.random.default_rng(0).integers(0, 2**40, 1000), [0, n - 1, n, 2**62]])
    for x in (flat.astype(np.int64), np.zeros(0, dtype=np.int64)):
        q, r = split_index(x, n)
        q0, r0 = np.divmod(x, n)
        assert np.array_equal(q, q0) and np.array_equal(r, r0)


def _numpy_positions(s):
    flat = np.flatnonzero(s.numpy().reshape(-1) != 0)
    if flat.size >= dynamics.SPARSE_BELOW * s.numel():
        return None
    B, n = s.shape
    return flat, flat % n, np.searchsorted(flat, np.arange(B) * n)


@pytest.mark.skipif(not chunk_compiled.AVAILABLE, reason="needs Numba")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 8192), (64, 129), (93, 101), (256, 256)])
@pytest.mark.parametrize("fill", [0.0, 0.003, 0.03, 0.2, "limit", "below limit"])
def test_compiled_scan_finds_what_numpy_finds(dtype, shape, fill):
    """Also -0.0 (not a spike), NaN (one) and exactly the limit's count (not sparse)."""
    import math

    import torch

    rng = np.random.default_rng(zlib.crc32(repr((shape, fill, np.dtype(dtype).name)).encode()))
    x = np.zeros(shape, dtype=dtype)
    if isinstance(fill, str):
        k = math.ceil(dynamics.SPARSE_BELOW * x.size) - (fill == "below limit")
        x.reshape(-1)[rng.choice(x.size, k, replace=False)] = 1
    else:
        x[rng.random(shape) < fill] = 1
        x[rng.random(shape) < 0.01] = -0.0
        x[rng.random(shape) < 0.001] = np.nan
    s = torch.from_numpy(x)
    assert dynamics._compiled_scan(x)
    got, want = dynamics.spike_positions(s), _numpy_positions(s)
    assert (got is None) == (want is None)
    if want is not None:
        assert got[0].size > 0 or fill == 0.0
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)
