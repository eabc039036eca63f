"""The torch backend in float64 on the CPU equals the NumPy reference to round-off, on the corpus.

Compared: every recorded state and spike, BPTT's and e-prop's losses, predictions and gradients,
Adam steps through ``train_step`` (three in a row), and one step at a time from given states.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402

from .corpus import CASES  # noqa: E402
from .helpers import RTOL64, assert_agrees_on_device, assert_close  # noqa: E402

NUMPY = sl.get_backend("numpy")
TORCH = sl.get_backend("torch")
EPROP_CASES = [c for c in CASES if c.eprop_ok]


def _pair(case, rule="bptt", dtype="float64"):
    net = case.network()
    learning = case.bptt() if rule == "bptt" else case.eprop()
    readout = case.readout(rule)
    return (
        NUMPY.compile(net, rule=learning, readout=readout, dtype=dtype),
        TORCH.compile(net, rule=learning, readout=readout, dtype=dtype),
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_equals_reference(case):
    ref, tor = _pair(case)
    x, _ = case.inputs()
    expected, actual = ref.simulate(x), tor.simulate(x)
    assert set(actual) == set(expected)
    for pop, vars_ in expected.items():
        assert set(actual[pop]) == set(vars_)
        for v, arr in vars_.items():
            assert actual[pop][v].dtype == np.float64 and actual[pop][v].shape == arr.shape
            if v == "z":
                np.testing.assert_array_equal(actual[pop][v], arr, err_msg=f"{pop}.z")
            else:
                assert_close(actual[pop][v], arr, RTOL64, f"{pop}.{v}")
    assert any(arr["z"].any() for arr in expected.values() if "z" in arr)  # the corpus does spike


@pytest.mark.parametrize(
    "rule, case",
    [("bptt", c) for c in CASES] + [("eprop", c) for c in EPROP_CASES],
    ids=lambda v: str(v),
)
def test_gradients_equal_reference(rule, case):
    ref, tor = _pair(case, rule)
    x, labels = case.inputs()
    expected, actual = ref.loss_and_grads(x, labels), tor.loss_and_grads(x, labels)
    assert actual.loss == pytest.approx(expected.loss, rel=RTOL64)
    np.testing.assert_array_equal(actual.predictions, expected.predictions)
    assert list(actual.grads) == list(expected.grads)
    for name, g in expected.grads.items():
        assert actual.grads[name].dtype == np.float64
        assert_close(actual.grads[name], g, RTOL64, name)


def test_eprop_equals_bptt_without_recurrence():
    """SPEC §6's exactness check, on the torch backend alone: inputs -> hidden -> readout."""
    net = sl.Network(
        [
            sl.SpikeInput("inp", 6),
            sl.ALIF("h", 5, tau_syn=4.0, beta=0.2, tau_adapt=30.0, refractory=2.0),
            sl.LI("out", 3, tau_syn=2.0),
        ],
        [sl.Connection("inp", "h", weight=sl.Normal(0.4, 0.4), delay=2), sl.Connection("h", "out", delay=2)],
        seed=2,
    )
    x = np.random.default_rng(0).random((25, 2, 6)) < 0.4
    labels = np.array([0, 2])
    tri = sl.Triangle(0.3)
    g_bptt = TORCH.compile(net, rule=sl.BPTT(tri), readout=sl.Readout("out"), dtype="float64").loss_and_grads(x, labels)
    g_eprop = TORCH.compile(net, rule=sl.EProp(tri), readout=sl.Readout("out"), dtype="float64").loss_and_grads(
        x, labels
    )
    for name, g in g_bptt.grads.items():
        assert_close(g_eprop.grads[name], g, 1e-10, name)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4]], ids=str)
def test_three_adam_steps_equal_reference(case):
    ref, tor = _pair(case, "bptt")
    x, labels = case.inputs()
    opt_ref, opt_tor = sl.Adam(lr=1e-2), sl.Adam(lr=1e-2)
    for step in range(3):
        r, t = ref.train_step(x, labels, opt_ref), tor.train_step(x, labels, opt_tor)
        assert t.loss == pytest.approx(r.loss, rel=RTOL64), f"step {step}"
        p_ref, p_tor = ref.get_params(), tor.get_params()
        for name, value in p_ref.items():
            assert_close(p_tor[name], value, RTOL64, f"{name} after step {step}")
    assert case.train_tau == any(name.endswith(".alpha_mem") for name in tor.trainable_names())


def test_trained_decay_factors_are_clipped_like_the_reference():
    case = CASES[3]
    ref, tor = _pair(case, "bptt")
    x, labels = case.inputs()
    n = ref.get_params()["h.alpha_mem"].shape[0]
    edge = {"h.alpha_mem": np.where(np.arange(n) % 2 == 0, 0.7359, 0.9949)}
    ref.set_params(edge)
    tor.set_params(edge)
    opt_ref, opt_tor = sl.Adam(lr=0.1), sl.Adam(lr=0.1)
    ref.train_step(x, labels, opt_ref)
    tor.train_step(x, labels, opt_tor)
    a_ref, a_tor = ref.get_params()["h.alpha_mem"], tor.get_params()["h.alpha_mem"]
    assert np.any(np.isin(a_ref, [sl.rules.ALPHA_CLIP[0], sl.rules.ALPHA_CLIP[1]]))  # some were clipped
    assert_close(a_tor, a_ref, RTOL64, "h.alpha_mem")
    assert np.all((a_tor >= sl.rules.ALPHA_CLIP[0]) & (a_tor <= sl.rules.ALPHA_CLIP[1]))


@pytest.mark.parametrize("case", [EPROP_CASES[0], EPROP_CASES[-1]], ids=str)
def test_three_eprop_adam_steps_equal_reference(case):
    ref, tor = _pair(case, "eprop")
    x, labels = case.inputs()
    opt_ref, opt_tor = sl.Adam(lr=1e-2), sl.Adam(lr=1e-2)
    for _ in range(3):
        ref.train_step(x, labels, opt_ref)
        tor.train_step(x, labels, opt_tor)
    p_ref, p_tor = ref.get_params(), tor.get_params()
    for name, value in p_ref.items():
        assert_close(p_tor[name], value, RTOL64, name)


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_evaluate_equals_reference(case):
    ref, tor = _pair(case, "bptt")
    x, labels = case.inputs()
    r, t = ref.evaluate(x, labels), tor.evaluate(x, labels)
    assert t.loss == pytest.approx(r.loss, rel=RTOL64)
    np.testing.assert_array_equal(t.predictions, r.predictions)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]], ids=str)
def test_state_forced_steps_equal_reference(case):
    """From the reference's own state at every step, one torch step gives the reference's next step."""
    ref, tor = _pair(case)
    x, _ = case.inputs()
    xs = x if isinstance(x, dict) else {"inp": x}
    T, B = next(iter(xs.values())).shape[:2]
    state = ref.zero_state(B)
    for t in range(T):
        x_t = {k: v[t] for k, v in xs.items()}
        x_t = x_t if isinstance(x, dict) else x_t["inp"]
        next_ref, rec_ref = ref.step(state, x_t)
        next_tor, rec_tor = tor.step(state, x_t)
        for pop, vars_ in rec_ref.items():
            assert set(rec_tor[pop]) == set(vars_)
            for v, arr in vars_.items():
                assert_close(rec_tor[pop][v], arr, RTOL64, f"{pop}.{v} at step {t}")
        for pop, vars_ in next_ref["populations"].items():
            for v, arr in vars_.items():
                assert next_tor["populations"][pop][v].dtype == arr.dtype
                assert_close(next_tor["populations"][pop][v], arr, RTOL64, f"state {pop}.{v} at step {t}")
        for src, arr in next_ref["history"].items():
            np.testing.assert_array_equal(next_tor["history"][src], arr)
        state = next_ref


def test_stepping_reproduces_simulate():
    case = CASES[5]
    tor = TORCH.compile(case.network(), dtype="float64")
    x, _ = case.inputs()
    full = tor.simulate(x)
    state = tor.zero_state(case.B)
    for t in range(case.T):
        state, rec = tor.step(state, {k: v[t] for k, v in x.items()})
        for pop, vars_ in full.items():
            for v, arr in vars_.items():
                assert_close(rec[pop][v], arr[t], RTOL64, f"{pop}.{v} at step {t}")


def test_stepping_honours_a_given_refractory_counter():
    """A counter in a given state counts even where the population has no refractory period."""
    net = sl.Network(
        [sl.SpikeInput("inp", 2), sl.LIF("h", 3), sl.LI("out", 2)],
        [sl.Connection("inp", "h"), sl.Connection("h", "out")],
    )
    for backend in (NUMPY, TORCH):
        c = backend.compile(net, dtype="float64")
        state = c.zero_state(1)
        state["populations"]["h"]["V"][:] = 5.0
        state["populations"]["h"]["ref"][0, 1] = 2
        state, rec = c.step(state, np.zeros((1, 2)))
        assert rec["h"]["z"][0].tolist() == [1, 0, 1]
        assert state["populations"]["h"]["ref"][0].tolist() == [0, 1, 0]


@pytest.mark.parametrize("case", CASES[:3], ids=str)
def test_the_device_agreement_helper_holds_on_the_cpu(case):
    """``assert_agrees_on_device`` is what the gpu-marked tests of torch and cupy run; here on the CPU."""
    assert_agrees_on_device(TORCH, case, "cpu")
