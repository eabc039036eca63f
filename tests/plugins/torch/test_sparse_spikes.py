"""Recurrent spikes delivered from their positions (the CPU's sparse path) give the reference's
states and gradients; the threshold on the work is lowered so that the small corpus takes it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402
import spikeloom_torch.dynamics as dynamics  # noqa: E402
from spikeloom_torch import column_bags  # noqa: E402

from .corpus import CASES  # noqa: E402
from .helpers import RTOL64, assert_close  # noqa: E402


@pytest.fixture
def always_sparse(monkeypatch):
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
