"""Compiled.step: one step at a time from a given state reproduces whole runs exactly."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl


def _net():
    return sl.Network(
        [
            sl.SpikeInput("inp", 7),
            sl.ALIF("h", 6, tau_syn=5.0, refractory=2.0, beta=0.3, v_thresh=0.5, reset="zero"),
            sl.LIF("g", 4, refractory=1.0),
            sl.LI("out", 3, bias=0.1),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.3, 0.5), delay=2),
            sl.Connection("h", "h", delay=3),
            sl.Connection("h", "g", weight=sl.Normal(0.5, 0.3)),
            sl.Connection("g", "out"),
            sl.Connection("h", "out", delay=2),
        ],
        seed=1,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stepping_reproduces_simulate_bitwise(dtype):
    c = sl.get_backend("numpy").compile(_net(), dtype=dtype)
    x = np.random.default_rng(0).random((30, 2, 7)) < 0.4
    full = c.simulate(x)
    state = c.zero_state(2)
    for t in range(30):
        state, rec = c.step(state, x[t])
        for pop, vars_ in full.items():
            for v, arr in vars_.items():
                np.testing.assert_array_equal(rec[pop][v], arr[t], err_msg=f"{pop}.{v} at step {t}")
    assert full["h"]["z"].any() and full["g"]["z"].any()


def test_state_layout_and_forcing():
    c = sl.get_backend("numpy").compile(_net(), dtype="float64")
    state = c.zero_state(3)
    assert set(state["populations"]) == {"h", "g", "out"}
    assert set(state["populations"]["h"]) == {"V", "I", "a", "z", "ref"}
    assert set(state["populations"]["out"]) == {"V", "I"}
    assert state["history"]["h"].shape == (3, 3, 6)  # deepest outgoing delay of h is 3
    assert state["history"]["inp"].shape == (2, 3, 7)
    # a spike two steps ago in the input history arrives now (delay 2)
    state["history"]["inp"][1, 0, 0] = 1.0
    _, rec = c.step(state, np.zeros((3, 7)))
    w = c.get_params()["inp_to_h.weight"]
    np.testing.assert_allclose(rec["h"]["I"][0], w[0])
    np.testing.assert_array_equal(rec["h"]["I"][1:], 0)
    # a refractory neuron does not spike however high V is
    state = c.zero_state(1)
    state["populations"]["g"]["V"][:] = 10.0
    state["populations"]["g"]["ref"][0, 0] = 1
    _, rec = c.step(state, np.zeros((1, 7)))
    assert rec["g"]["z"][0].tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.pop("history"), "keys 'populations' and 'history'"),
        (lambda s: s["populations"].pop("g"), "exactly the populations"),
        (lambda s: s["populations"]["h"].pop("a"), r"state\['populations'\]\['h'\] must hold exactly"),
        (lambda s: s["populations"]["h"].__setitem__("V", np.zeros((2, 5))), r"\['h'\]\['V'\]: expected shape"),
        (lambda s: s["populations"]["h"]["V"].__setitem__((0, 0), np.nan), "finite"),
        (lambda s: s["populations"]["g"]["ref"].__setitem__((0, 0), -1), "refractory counters"),
        (lambda s: s["history"].__setitem__("h", np.zeros((2, 2, 6))), r"history'\]\['h'\]: expected shape"),
    ],
)
def test_bad_states_raise(mutate, match):
    c = sl.get_backend("numpy").compile(_net(), dtype="float64")
    state = c.zero_state(2)
    mutate(state)
    with pytest.raises(ValueError, match=match):
        c.step(state, np.zeros((2, 7)))


def test_bad_step_inputs_raise():
    c = sl.get_backend("numpy").compile(_net(), dtype="float64")
    with pytest.raises(ValueError, match="batch size 3 differs"):
        c.step(c.zero_state(2), np.zeros((3, 7)))
    with pytest.raises(ValueError, match="N=7"):
        c.step(c.zero_state(2), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="batch must be an integer"):
        c.zero_state(0)
