"""Reference e-prop: exact where SPEC §6 says it is, an approximation where it says it is not."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import spikeloom as sl

RNG_CASES = list(
    itertools.product(["LIF", "ALIF"], ["subtract", "zero"], [0.0, 5.0], [(1, 1), (3, 2), (2, 3)], [False, True])
)


def _feedforward(kind, reset, tau_syn, delays, hetero, seed, refractory=0.0):
    pop = sl.ALIF if kind == "ALIF" else sl.LIF
    extra = {"beta": 0.5, "tau_adapt": 30.0} if kind == "ALIF" else {}
    return sl.Network(
        [
            sl.SpikeInput("inp", 7),
            pop(
                "h",
                6,
                tau_syn=tau_syn,
                reset=reset,
                refractory=refractory,
                v_thresh=0.6,
                tau_mem=sl.Gamma(20.0) if hetero else 20.0,
                scale_input=hetero,
                **extra,
            ),
            sl.LI("out", 3, tau_syn=3.0 if hetero else 0.0, tau_mem=sl.Gamma(15.0) if hetero else 15.0),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.3, 0.5), delay=delays[0]),
            sl.Connection("h", "out", delay=delays[1]),
            sl.Connection("inp", "out"),
        ],
        seed=seed,
    )


def _grads(net, rule, x, labels, readout=None, dtype="float64"):
    readout = readout or sl.Readout("out", "per_step", window=(5, None))
    return sl.get_backend("numpy").compile(net, rule=rule, readout=readout, dtype=dtype).loss_and_grads(x, labels)


@pytest.mark.parametrize("kind, reset, tau_syn, delays, hetero", RNG_CASES)
def test_eprop_equals_bptt_without_recurrence(kind, reset, tau_syn, delays, hetero):
    rng = np.random.default_rng(abs(hash((kind, reset, tau_syn, delays, hetero))) % 2**32)
    net = _feedforward(kind, reset, tau_syn, delays, hetero, seed=int(rng.integers(1000)), refractory=3.0 * hetero)
    x = rng.random((30, 3, 7)) < 0.3
    labels = rng.integers(0, 3, size=3)
    bptt = _grads(net, sl.BPTT(surrogate=sl.Triangle(0.3), detach_reset=True), x, labels)
    eprop = _grads(net, sl.EProp(), x, labels)
    assert eprop.loss == pytest.approx(bptt.loss, rel=1e-13)
    np.testing.assert_array_equal(eprop.predictions, bptt.predictions)
    assert np.abs(bptt.grads["inp_to_h.weight"]).max() > 1e-6  # the hidden layer does learn here
    for name, g in bptt.grads.items():
        scale = np.abs(g).max()
        np.testing.assert_allclose(eprop.grads[name], g, rtol=0, atol=1e-10 * scale + 1e-300, err_msg=name)


def _recurrent(seed=0):
    return sl.Network(
        [
            sl.SpikeInput("inp", 6),
            sl.ALIF("h", 8, tau_syn=5.0, v_thresh=0.6, beta=0.3, tau_adapt=40.0, refractory=2.0),
            sl.LI("out", 3),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.4, 0.4)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.4), delay=1),
            sl.Connection("h", "out"),
        ],
        seed=seed,
    )


def test_eprop_with_recurrence_is_an_approximation():
    rng = np.random.default_rng(11)
    net = _recurrent()
    x = rng.random((40, 4, 6)) < 0.3
    labels = rng.integers(0, 3, size=4)
    bptt = _grads(net, sl.BPTT(surrogate=sl.Triangle(0.3)), x, labels)
    eprop = _grads(net, sl.EProp(), x, labels)
    # readout weights and bias are exact in e-prop, recurrent and input weights are not
    np.testing.assert_allclose(eprop.grads["h_to_out.weight"], bptt.grads["h_to_out.weight"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(eprop.grads["out.bias"], bptt.grads["out.bias"], rtol=1e-10, atol=1e-14)
    for name in ("inp_to_h.weight", "h_to_h.weight"):
        diff = np.abs(eprop.grads[name] - bptt.grads[name]).max()
        assert diff > 1e-6 * np.abs(bptt.grads[name]).max(), name
        # ... but a useful one: the two point the same way overall
        cos = np.sum(eprop.grads[name] * bptt.grads[name]) / (
            np.linalg.norm(eprop.grads[name]) * np.linalg.norm(bptt.grads[name])
        )
        assert cos > 0.3, (name, cos)


def test_random_feedback_differs_from_symmetric_and_is_seeded():
    rng = np.random.default_rng(2)
    net = _recurrent(seed=5)
    x = rng.random((30, 2, 6)) < 0.3
    labels = np.array([0, 2])
    sym = _grads(net, sl.EProp(), x, labels)
    rnd = _grads(net, sl.EProp(feedback="random"), x, labels)
    rnd2 = _grads(net, sl.EProp(feedback="random"), x, labels)
    assert not np.allclose(sym.grads["inp_to_h.weight"], rnd.grads["inp_to_h.weight"])
    np.testing.assert_array_equal(rnd.grads["inp_to_h.weight"], rnd2.grads["inp_to_h.weight"])
    np.testing.assert_array_equal(sym.grads["h_to_out.weight"], rnd.grads["h_to_out.weight"])


def test_rate_regulariser_pushes_busy_neurons_down():
    rng = np.random.default_rng(4)
    net = sl.Network(
        [sl.SpikeInput("inp", 6), sl.LIF("h", 5, tau_syn=5.0), sl.LI("out", 2)],
        [sl.Connection("inp", "h", weight=sl.Uniform(0.02, 0.08)), sl.Connection("h", "out", weight=0.0)],
        seed=1,
    )
    x = rng.random((60, 2, 6)) < 0.5
    labels = np.array([0, 1])
    plain = _grads(net, sl.EProp(), x, labels)
    reg = _grads(net, sl.EProp(c_reg=1.0, target_rate=1.0), x, labels)
    rate = sl.get_backend("numpy").compile(net, dtype="float64").simulate(x)["h"]["z"].mean() * 1000
    assert rate > 50  # far above the 1 Hz target
    # zero readout weights -> zero learning signal: what is left is the regulariser alone
    np.testing.assert_array_equal(plain.grads["inp_to_h.weight"], 0)
    g = reg.grads["inp_to_h.weight"]
    assert np.all(g >= 0) and g.sum() > 0  # gradient descent lowers the weights, hence the rates


def _peak_bytes(fn, *args):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def test_eprop_memory_does_not_grow_with_sequence_length():
    net = _recurrent(seed=3)
    peaks = {}
    for rule in ("eprop", "bptt"):
        compiled = sl.get_backend("numpy").compile(
            net, rule=sl.EProp() if rule == "eprop" else sl.BPTT(), readout=sl.Readout("out"), dtype="float64"
        )
        for T in (50, 400):
            x = (np.random.default_rng(T).random((T, 4, 6)) < 0.2).astype(np.float64)
            labels = np.array([0, 1, 2, 0])
            peaks[rule, T] = _peak_bytes(compiled.loss_and_grads, x, labels)
    assert peaks["eprop", 400] < 1.1 * peaks["eprop", 50], peaks
    assert peaks["bptt", 400] > 3 * peaks["bptt", 50], peaks  # the check can tell the difference
