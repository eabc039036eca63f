"""The torch backend in float32 against the float64 reference, within documented tolerances.

A float32 membrane within round-off of its threshold may spike where float64 does not, after
which the runs diverge.  Whole runs are therefore compared only over the leading steps in which
no membrane of the reference comes within ``MARGIN`` (1e-4) of its threshold; state-forced
stepping compares every step from the reference's own state.  Tolerances (helpers.py): states
2e-5 of the largest magnitude, gradients rtol 2e-3 with a floor of 1e-4 of the largest entry.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402

from .corpus import CASES  # noqa: E402
from .helpers import (  # noqa: E402
    MARGIN,
    STATE_RTOL32,
    assert_close,
    assert_float32_close_on_device,
    assert_grads_close32,
    assert_states_close32,
    safe_steps,
    truncate,
)

NUMPY = sl.get_backend("numpy")
TORCH = sl.get_backend("torch")


def _safe_inputs(case):
    x, labels = case.inputs()
    steps = safe_steps(case.network(), x)
    assert steps >= 10, f"{case}: only {steps} steps before a membrane comes within {MARGIN} of threshold"
    return truncate(x, steps), labels


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_float32(case):
    x, _ = _safe_inputs(case)
    net = case.network()
    expected = NUMPY.compile(net, dtype="float64").simulate(x)
    assert_states_close32(TORCH.compile(net, dtype="float32").simulate(x), expected)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bptt_float32(case):
    x, labels = _safe_inputs(case)
    net, rule, readout = case.network(), case.bptt(), case.readout()
    expected = NUMPY.compile(net, rule=rule, readout=readout, dtype="float64").loss_and_grads(x, labels)
    actual = TORCH.compile(net, rule=rule, readout=readout, dtype="float32").loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=1e-4)
    for name, g in expected.grads.items():
        assert actual.grads[name].dtype == np.float32
        assert_grads_close32(actual.grads[name], g, name)


@pytest.mark.parametrize("case", [c for c in CASES if c.eprop_ok], ids=str)
def test_eprop_float32(case):
    x, labels = _safe_inputs(case)
    net, rule, readout = case.network(), case.eprop(), case.readout("eprop")
    expected = NUMPY.compile(net, rule=rule, readout=readout, dtype="float64").loss_and_grads(x, labels)
    actual = TORCH.compile(net, rule=rule, readout=readout, dtype="float32").loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=1e-4)
    for name, g in expected.grads.items():
        assert_grads_close32(actual.grads[name], g, name)


@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=str)
def test_state_forced_float32(case):
    """Every step from the float64 reference's state (cast to float32); spikes are compared where
    the reference's membrane is at least MARGIN away from its threshold."""
    net = case.network()
    ref = NUMPY.compile(net, dtype="float64")
    tor = TORCH.compile(net, dtype="float32")
    x, _ = case.inputs()
    T, B = x.shape[:2]
    state = ref.zero_state(B)
    for t in range(T):
        next_ref, rec_ref = ref.step(state, x[t])
        _, rec_tor = tor.step(state, x[t])
        for pop, vars_ in rec_ref.items():
            p = net.built.populations[pop]
            for v, arr in vars_.items():
                if v != "z":
                    assert_close(rec_tor[pop][v], arr, STATE_RTOL32, f"{pop}.{v} at step {t}")
            if p.spiking:
                theta = p.params["v_thresh"] + (p.params["beta"] * vars_["a"] if p.kind == "ALIF" else 0.0)
                clear = np.abs(vars_["V"] - theta) >= MARGIN
                np.testing.assert_array_equal(rec_tor[pop]["z"][clear], vars_["z"][clear], err_msg=f"{pop}.z at {t}")
        state = next_ref


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_the_float32_device_helper_holds_on_the_cpu(case):
    """``assert_float32_close_on_device`` is what the gpu-marked float32 tests of torch and cupy run."""
    assert_float32_close_on_device(TORCH, case, "cpu")
