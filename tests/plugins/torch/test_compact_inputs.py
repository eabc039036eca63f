"""Bool and uint8 input spikes reach the torch backend unconverted (``compact_inputs``) and give
the same results as the reference, on the sparse (CPU, below 5 % non-zero) and dense paths."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402
from spikeloom.inputs import prepare_inputs  # noqa: E402
from spikeloom_torch import column_bags, spikes  # noqa: E402

from .helpers import RTOL64, assert_close  # noqa: E402


def _net():
    return sl.Network(
        [sl.SpikeInput("inp", 40), sl.ALIF("h", 24, tau_syn=5.0, v_thresh=0.6), sl.LI("out", 5)],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.2, 0.4)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.2), delay=2),
            sl.Connection("h", "out", weight=sl.Normal(0.0, 0.3)),
            sl.Connection("inp", "out", weight=sl.Normal(0.0, 0.1), delay=3),
        ],
        seed=3,
    )


def _spikes(density: float, kind: str):
    rng = np.random.default_rng(7)
    x = rng.random((25, 4, 40)) < density
    if kind == "bool":
        return x
    counts = x * rng.integers(1, 3, size=x.shape)
    return counts.astype(np.uint8) if kind == "uint8" else counts.astype(np.float32)


def test_prepare_inputs_keeps_bool_and_uint8_only_when_asked():
    built = _net().built
    for kind, dtype in [("bool", np.bool_), ("uint8", np.uint8)]:
        x = _spikes(0.1, kind)
        assert prepare_inputs(built, x, np.float32, compact=True)["inp"].dtype == dtype
        assert prepare_inputs(built, x, np.float32)["inp"].dtype == np.float32
    x = _spikes(0.1, "float")
    assert prepare_inputs(built, x, np.float64, compact=True)["inp"].dtype == np.float64


@pytest.mark.parametrize("density", [0.02, 0.3], ids=["sparse", "dense"])
@pytest.mark.parametrize("kind", ["bool", "uint8", "float"])
@pytest.mark.parametrize("rule", ["bptt", "eprop"])
@pytest.mark.parametrize("block_rows", [2048, 7], ids=["one-block", "blocks"])
def test_compact_inputs_equal_reference(rule, kind, density, block_rows, monkeypatch):
    monkeypatch.setattr(column_bags, "BLOCK_ROWS", block_rows)  # the input weights' gradient in blocks
    x = _spikes(density, kind)
    assert 0 < np.count_nonzero(x) < x.size
    labels = np.arange(4) % 5
    learning = sl.BPTT() if rule == "bptt" else sl.EProp()
    ref, tor = (
        sl.get_backend(b).compile(_net(), rule=learning, readout=sl.Readout("out"), dtype="float64")
        for b in ("numpy", "torch")
    )
    expected, actual = ref.simulate(x), tor.simulate(x)
    for pop, vars_ in expected.items():
        for v, arr in vars_.items():
            assert_close(actual[pop][v], arr, RTOL64, f"{pop}.{v}")
    expected, actual = ref.loss_and_grads(x, labels), tor.loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
    for name, g in expected.grads.items():
        assert np.any(g != 0), name
        assert_close(actual.grads[name], g, RTOL64, name)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_flatnonzero(monkeypatch, threads):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(spikes, "PARALLEL_SCAN_MIN", 1000)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    flat = np.random.default_rng(threads).random(100_003) < 0.02
    flat[-1] = flat[0] = True
    assert np.array_equal(spikes.flatnonzero(flat), np.flatnonzero(flat))
    assert spikes.flatnonzero(np.zeros(5000, dtype=np.uint8)).size == 0


def test_silent_input_after_spikes_equals_reference():
    """No input spike at all (an empty sparse product) overwrites what the reused drive buffer held."""
    x, labels = _spikes(0.02, "bool"), np.arange(4) % 5
    silent = np.zeros_like(x)
    ref, tor = (
        sl.get_backend(b).compile(_net(), rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float64")
        for b in ("numpy", "torch")
    )
    tor.loss_and_grads(x, labels)
    expected, actual = ref.loss_and_grads(silent, labels), tor.loss_and_grads(silent, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
    for name, g in expected.grads.items():
        assert_close(actual.grads[name], g, RTOL64, name)
