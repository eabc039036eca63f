"""Comparison helpers for the torch backend's tests (the NumPy reference in float64 is the judge)."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl

#: float64: max |torch - reference| / max |reference| per array (states, gradients, parameters)
RTOL64 = 1e-10
#: float32 against the float64 reference, on runs where no membrane comes within MARGIN of its
#: threshold (so no spike can flip): states ...
STATE_RTOL32 = 2e-5
#: ... and gradients (elementwise rtol, plus an absolute floor relative to the largest entry)
GRAD_RTOL32, GRAD_ATOL32 = 2e-3, 1e-4
#: a float32 membrane closer than this to its threshold may spike differently from float64
MARGIN = 1e-4


def rel_err(actual, expected) -> float:
    """``max |actual - expected| / max |expected|`` (absolute where ``expected`` is all zero)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    if actual.size == 0:
        return 0.0
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(actual - expected))
    return float(err / scale) if scale > 0 else float(err)


def assert_close(actual, expected, rtol: float, what: str) -> float:
    err = rel_err(actual, expected)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:g}"
    return err


def assert_records_close(actual: dict, expected: dict, rtol: float) -> None:
    """``simulate`` records: every recorded variable within ``rtol`` (float64 spikes exactly)."""
    for pop, vars_ in expected.items():
        for v, arr in vars_.items():
            assert_close(actual[pop][v], arr, rtol, f"{pop}.{v}")


def assert_grads_equal64(actual, expected, rtol: float = RTOL64) -> None:
    """``loss_and_grads`` results in float64: loss, predictions and every gradient."""
    assert actual.loss == pytest.approx(expected.loss, rel=rtol)
    np.testing.assert_array_equal(actual.predictions, expected.predictions)
    assert set(actual.grads) == set(expected.grads)
    for name, value in expected.grads.items():
        assert_close(actual.grads[name], value, rtol, name)


def assert_agrees_on_device(backend, case, device: str, rtol: float = RTOL64) -> None:
    """``case`` compiled in float64 on ``backend``/``device`` against the reference: simulate and
    BPTT gradients, and e-prop gradients where the case supports e-prop."""
    net = case.network()
    x, labels = case.inputs()
    ref = sl.get_backend("numpy").compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    dev = backend.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64", device=device)
    assert_records_close(dev.simulate(x), ref.simulate(x), rtol)
    assert_grads_equal64(dev.loss_and_grads(x, labels), ref.loss_and_grads(x, labels), rtol)
    if case.eprop_ok:
        ref = sl.get_backend("numpy").compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
        dev = backend.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64", device=device)
        assert_grads_equal64(dev.loss_and_grads(x, labels), ref.loss_and_grads(x, labels), rtol)


def assert_float32_close_on_device(backend, case, device: str) -> None:
    """``case`` compiled in float32 on ``backend``/``device`` against the float64 reference, over the
    leading steps where no membrane is within :data:`MARGIN` of its threshold: states within
    :data:`STATE_RTOL32`, spikes identical, BPTT gradients within the float32 policy."""
    net = case.network()
    x, labels = case.inputs()
    x = truncate(x, safe_steps(net, x))
    ref = sl.get_backend("numpy").compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    dev = backend.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float32", device=device)
    assert_states_close32(dev.simulate(x), ref.simulate(x))
    r, g = ref.loss_and_grads(x, labels), dev.loss_and_grads(x, labels)
    for name, value in r.grads.items():
        assert g.grads[name].dtype == np.float32
        assert_grads_close32(g.grads[name], value, name)


def assert_trains_like(ref, dev, x, labels, rtol: float) -> sl.Adam:
    """Three Adam steps (lr 1e-2) of ``ref`` and ``dev`` from the same parameters: ``dev``'s
    parameters then equal ``ref``'s within ``rtol``.  Returns ``dev``'s optimiser."""
    o_ref, o_dev = sl.Adam(lr=1e-2), sl.Adam(lr=1e-2)
    for _ in range(3):
        ref.train_step(x, labels, o_ref)
        dev.train_step(x, labels, o_dev)
    for name, value in ref.get_params().items():
        assert_close(dev.get_params()[name], value, rtol, name)
    return o_dev


def assert_steps_like(ref, dev, x, B: int, steps: int, rtol: float) -> None:
    """``steps`` single steps, each from the reference's state: ``dev``'s records of every step
    equal ``ref``'s within ``rtol``."""
    state = ref.zero_state(B)
    for t in range(steps):
        next_ref, rec_ref = ref.step(state, x[t])
        _, rec_dev = dev.step(state, x[t])
        for pop, vars_ in rec_ref.items():
            for v, arr in vars_.items():
                assert_close(rec_dev[pop][v], arr, rtol, f"{pop}.{v} at step {t}")
        state = next_ref


def assert_states_close32(actual: dict, expected: dict) -> None:
    """A float32 recording against the float64 reference's: float32, spikes identical, the other
    states within :data:`STATE_RTOL32`."""
    for pop, vars_ in expected.items():
        for v, arr in vars_.items():
            assert actual[pop][v].dtype == np.float32
            if v == "z":
                np.testing.assert_array_equal(actual[pop][v], arr, err_msg=f"{pop}.z")
            else:
                assert_close(actual[pop][v], arr, STATE_RTOL32, f"{pop}.{v}")


def assert_grads_close32(actual, expected, what: str) -> None:
    scale = float(np.max(np.abs(expected))) if np.size(expected) else 0.0
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL32, atol=GRAD_ATOL32 * scale + 1e-12, err_msg=what)


def safe_steps(net: sl.Network, x, margin: float = MARGIN) -> int:
    """Number of leading steps in which no LIF/ALIF membrane of the float64 reference run lies
    within ``margin`` of its threshold (refractory or not): float32 spikes equal float64 spikes there."""
    ref = sl.get_backend("numpy").compile(net, dtype="float64")
    rec = ref.simulate(x)
    T = next(iter(rec.values()))["V"].shape[0]
    first = T
    for p in net.built.neuron_populations:
        if not p.spiking:
            continue
        theta = p.params["v_thresh"]
        if p.kind == "ALIF":
            theta = theta + p.params["beta"] * rec[p.name]["a"]
        close = np.abs(rec[p.name]["V"] - theta) < margin
        bad = np.nonzero(close.any(axis=(1, 2)))[0]
        if bad.size:
            first = min(first, int(bad[0]))
    return first


def truncate(x, steps: int):
    return {k: v[:steps] for k, v in x.items()} if isinstance(x, dict) else x[:steps]
