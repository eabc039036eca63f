"""The NumPy reference pinned to SPEC §3 with hand-computed expectations.

Every expected value here is derived in the test itself, in closed form or with a short loop written
straight from the SPEC equations; nothing is computed by running the code under test a second time,
except where the test is an equivalence between two different networks (sparse vs dense, one
heterogeneous population vs separate neurons, input dtypes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import spikeloom as sl

BACKEND = sl.get_backend("numpy")


def simulate(net, x, dtype="float64", record=None):
    return BACKEND.compile(net, dtype=dtype).simulate(x, record=record)


def single(weight=1.0, *, kind=sl.LIF, n_in=1, delay=1, dt=1.0, **params):
    """``inp`` (n_in channels) -> one neuron ``h``."""
    return sl.Network(
        [sl.SpikeInput("inp", n_in), kind("h", 1, **params)],
        [sl.Connection("inp", "h", weight=weight, delay=delay)],
        dt=dt,
    )


def tr(rec, var, pop="h", j=0, b=0):
    return rec[pop][var][:, b, j]


def drive(T, steps=None, n=1):
    """Input ``[T, 1, n]`` with a spike on every channel at ``steps`` (every step when None)."""
    x = np.zeros((T, 1, n), dtype=bool)
    x[slice(None) if steps is None else list(steps)] = True
    return x


def lif_loop(T, h, *, alpha_mem, v_thresh, alpha_syn=0.0, g=1.0, reset="subtract", n_ref=0):
    """One LIF neuron written line by line from SPEC §3; ``h[t]`` is its summed input."""
    I = V = 0.0
    ref = 0
    out = {"I": np.zeros(T), "V": np.zeros(T), "z": np.zeros(T)}
    for t in range(T):
        I = alpha_syn * I + h[t]
        V = alpha_mem * V + g * I
        z = 1.0 if (V >= v_thresh and ref == 0) else 0.0
        out["I"][t], out["V"][t], out["z"][t] = I, V, z
        if z:
            V = V - v_thresh if reset == "subtract" else 0.0
            ref = n_ref
        else:
            ref = max(ref - 1, 0)
    return out


# --------------------------------------------------------------------------------------------
# LIF under a constant input spike train
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "w, tau_mem, v_thresh, t_first",
    [(0.3, 20.0, 1.0, 4), (0.12, 10.0, 1.0, 16), (0.5, 5.0, 2.0, 7), (0.05, 100.0, 0.6, 13)],
)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_delta_constant_drive_first_spike_closed_form(w, tau_mem, v_thresh, t_first, reset):
    # An input spike at every step, delay 1: h[t] = w for t >= 1, so before the first spike
    # V[t] = w * sum_{k<t} alpha^k = w (1 - alpha^t) / (1 - alpha).
    # V[t] >= theta  <=>  t >= log(1 - theta (1 - alpha) / w) / log(alpha).
    alpha = math.exp(-1.0 / tau_mem)
    t_cont = math.log(1 - v_thresh * (1 - alpha) / w) / math.log(alpha)
    assert abs(t_cont - round(t_cont)) > 1e-3  # not on a threshold edge
    assert math.ceil(t_cont) == t_first
    T = 4 * t_first + 3
    rec = simulate(single(w, tau_mem=tau_mem, v_thresh=v_thresh, reset=reset), drive(T))
    V, I, z = tr(rec, "V"), tr(rec, "I"), tr(rec, "z")

    np.testing.assert_array_equal(I, np.r_[0.0, np.full(T - 1, w)])
    t = np.arange(t_first + 1)
    np.testing.assert_allclose(V[: t_first + 1], w * (1 - alpha**t) / (1 - alpha), rtol=1e-12, atol=0)
    assert not z[:t_first].any()
    assert z[t_first] == 1
    # V is recorded before the reset: the spike step shows V >= v_thresh
    assert V[t_first] >= v_thresh
    if reset == "zero":
        # zero reset: the neuron restarts from 0, so the train is periodic with period t_first
        assert V[t_first + 1] == w
        np.testing.assert_array_equal(np.flatnonzero(z), np.arange(t_first, T, t_first))
    else:
        # subtract reset keeps the excess V - v_thresh
        excess = V[t_first] - v_thresh
        assert excess > 0
        np.testing.assert_allclose(V[t_first + 1], alpha * excess + w, rtol=1e-13)
        assert V[t_first + 1] > w
    ref = lif_loop(T, np.r_[0.0, np.full(T - 1, w)], alpha_mem=alpha, v_thresh=v_thresh, reset=reset)
    np.testing.assert_array_equal(z, ref["z"])
    np.testing.assert_allclose(V, ref["V"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("tau_mem, tau_syn, w", [(20.0, 5.0, 0.1), (10.0, 2.0, 0.25), (5.0, 10.0, 0.05)])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_exponential_synapse_constant_drive_closed_form(tau_mem, tau_syn, w, reset):
    # h[t] = w for t >= 1; I[t] = w (1 - beta^t) / (1 - beta) with beta = alpha_syn;
    # V[t] = sum_{s=1..t} alpha^{t-s} I[s]
    #      = w / (1 - beta) * ((1 - alpha^t) / (1 - alpha) - beta (alpha^t - beta^t) / (alpha - beta)).
    alpha, beta = math.exp(-1.0 / tau_mem), math.exp(-1.0 / tau_syn)
    T = 80
    t = np.arange(T, dtype=np.float64)
    I_cf = w * (1 - beta**t) / (1 - beta)
    V_cf = w / (1 - beta) * ((1 - alpha**t) / (1 - alpha) - beta * (alpha**t - beta**t) / (alpha - beta))
    t_first = int(np.argmax(V_cf >= 1.0))
    assert 0 < t_first < T - 5
    assert V_cf[t_first] > 1.0 + 1e-6 and V_cf[t_first - 1] < 1.0 - 1e-6
    rec = simulate(single(w, tau_mem=tau_mem, tau_syn=tau_syn, reset=reset), drive(T))
    V, I, z = tr(rec, "V"), tr(rec, "I"), tr(rec, "z")
    # the synaptic current is unaffected by spikes
    np.testing.assert_allclose(I, I_cf, rtol=1e-12, atol=0)
    np.testing.assert_allclose(V[: t_first + 1], V_cf[: t_first + 1], rtol=1e-12, atol=0)
    assert not z[:t_first].any() and z[t_first] == 1
    after = V[t_first] - 1.0 if reset == "subtract" else 0.0
    np.testing.assert_allclose(V[t_first + 1], alpha * after + I_cf[t_first + 1], rtol=1e-12)
    ref = lif_loop(T, np.r_[0.0, np.full(T - 1, w)], alpha_mem=alpha, alpha_syn=beta, v_thresh=1.0, reset=reset)
    np.testing.assert_array_equal(z, ref["z"])
    np.testing.assert_allclose(V, ref["V"], rtol=0, atol=1e-12)


def test_single_input_spike_gives_the_psp_kernel():
    # one spike at step 2: I[t] = w beta^(t-3), V[t] = w (alpha^(n+1) - beta^(n+1)) / (alpha - beta), n = t - 3
    tau_mem, tau_syn, w = 20.0, 5.0, 0.5
    alpha, beta = math.exp(-1 / tau_mem), math.exp(-1 / tau_syn)
    T = 30
    rec = simulate(single(w, tau_mem=tau_mem, tau_syn=tau_syn, v_thresh=10.0), drive(T, [2]))
    n = np.arange(T) - 3
    I_exp = np.where(n >= 0, w * beta ** np.maximum(n, 0), 0.0)
    V_exp = np.where(n >= 0, w * (alpha ** (n + 1) - beta ** (n + 1)) / (alpha - beta), 0.0)
    np.testing.assert_allclose(tr(rec, "I"), I_exp, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(tr(rec, "V"), V_exp, rtol=1e-12, atol=1e-300)
    assert not tr(rec, "z").any()


# --------------------------------------------------------------------------------------------
# V == theta spikes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau_syn", [0.0, 5.0])
@pytest.mark.parametrize(
    "weights, v_thresh",
    [([1.0], 1.0), ([0.5, 0.5], 1.0), ([0.25, 0.5], 0.75), ([0.375, 0.125, 0.5], 1.0)],
)
def test_v_equal_to_threshold_spikes(weights, v_thresh, tau_syn):
    # all channels spike at step 0; at step 1 (from zero state) V = alpha*0 + (alpha_syn*0 + sum w) = v_thresh
    # exactly, since every weight and partial sum is exactly representable
    n = len(weights)
    net = single(np.array(weights).reshape(n, 1), n_in=n, tau_syn=tau_syn, v_thresh=v_thresh)
    rec = simulate(net, drive(4, [0], n=n))
    assert tr(rec, "V")[1] == v_thresh
    np.testing.assert_array_equal(tr(rec, "z")[:2], [0, 1])


def test_v_just_below_threshold_does_not_spike():
    w = np.nextafter(1.0, 0.0)
    rec = simulate(single(w, v_thresh=1.0), drive(4, [0]))
    assert tr(rec, "V")[1] == w
    assert not tr(rec, "z").any()


@pytest.mark.parametrize("w, spikes", [(1.5, [1, 2]), (np.nextafter(1.5, 0.0), [1])])
def test_alif_v_equal_to_adapted_threshold_spikes(w, spikes):
    # zero reset, input at steps 0 and 1 with weight w: V[1] = w >= 1 spikes; a[2] = rho*0 + z[1] = 1 exactly,
    # theta[2] = 1 + 0.5 * 1 = 1.5, V[2] = alpha*0 + w: spikes iff w >= 1.5
    net = single(w, kind=sl.ALIF, v_thresh=1.0, beta=0.5, tau_adapt=100.0, reset="zero")
    rec = simulate(net, drive(4, [0, 1]))
    assert tr(rec, "a")[2] == 1.0
    assert tr(rec, "V")[2] == w
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z")), spikes)


# --------------------------------------------------------------------------------------------
# refractory period
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dt, refractory, n_ref",
    [
        (1.0, 0.0, 0),
        (1.0, 3.0, 3),
        (1.0, 2.4, 2),
        (1.0, 2.5, 3),
        (0.5, 1.2, 2),
        (0.5, 1.0, 2),
        (0.5, 0.25, 1),
        (0.25, 0.3, 1),
    ],
)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_refractory_steps_and_integration(dt, refractory, n_ref, reset):
    # n_ref = floor(refractory/dt + 0.5); with a supra-threshold input every step the neuron spikes at
    # step 1 and then every n_ref + 1 steps, while V keeps integrating (no reset) during the refractory steps
    tau_mem, w, T = 10.0, 2.0, 25
    net = single(w, dt=dt, tau_mem=tau_mem, refractory=refractory, reset=reset)
    assert net.built.populations["h"].n_ref.tolist() == [n_ref]
    rec = simulate(net, drive(T))
    V, z = tr(rec, "V"), tr(rec, "z")
    np.testing.assert_array_equal(np.flatnonzero(z), np.arange(1, T, n_ref + 1))
    alpha = math.exp(-dt / tau_mem)
    ref = lif_loop(T, np.r_[0.0, np.full(T - 1, w)], alpha_mem=alpha, v_thresh=1.0, reset=reset, n_ref=n_ref)
    np.testing.assert_array_equal(z, ref["z"])
    np.testing.assert_allclose(V, ref["V"], rtol=0, atol=1e-12)
    if n_ref >= 2:
        after = w - 1.0 if reset == "subtract" else 0.0
        assert V[2] == alpha * after + w  # refractory, above threshold, no spike and no reset
        np.testing.assert_allclose(V[3], alpha * V[2] + w, rtol=1e-15)  # still integrating
        assert z[2] == 0 and z[3] == 0 and V[2] >= 1.0


def test_refractory_only_blocks_spikes_after_a_spike():
    # a sub-threshold input does not make a neuron refractory, a spike does (n_ref = 3)
    net = single(0.6, tau_mem=1e6, refractory=3.0, reset="zero")
    rec = simulate(net, drive(12, [0, 1, 2, 3, 4, 5, 6]))
    # V: 0.6, 1.2 (spike at 2) -> refractory at 3, 4, 5 while V integrates: 0.6, 1.2, 1.8 -> spike at 6
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z")), [2, 6])
    np.testing.assert_allclose(tr(rec, "V")[3:7], [0.6, 1.2, 1.8, 2.4], rtol=1e-5)


# --------------------------------------------------------------------------------------------
# ALIF
# --------------------------------------------------------------------------------------------


def alif_loop(T, h, *, alpha_mem, rho, v_thresh, beta, reset, alpha_syn=0.0, n_ref=0):
    I = V = a = z_prev = 0.0
    ref = 0
    out = {k: np.zeros(T) for k in ("I", "V", "a", "z")}
    for t in range(T):
        I = alpha_syn * I + h[t]
        V = alpha_mem * V + I
        a = rho * a + z_prev
        theta = v_thresh + beta * a
        z = 1.0 if (V >= theta and ref == 0) else 0.0
        out["I"][t], out["V"][t], out["a"][t], out["z"][t] = I, V, a, z
        if z:
            V = V - v_thresh if reset == "subtract" else 0.0  # subtract v_thresh, not theta
            ref = n_ref
        else:
            ref = max(ref - 1, 0)
        z_prev = z
    return out


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("tau_syn, refractory", [(0.0, 0.0), (4.0, 0.0), (0.0, 2.0)])
def test_alif_matches_hand_loop(reset, tau_syn, refractory):
    tau_mem, tau_adapt, beta, w, T = 20.0, 30.0, 0.5, 0.4, 120
    net = single(
        w,
        kind=sl.ALIF,
        tau_mem=tau_mem,
        tau_syn=tau_syn,
        tau_adapt=tau_adapt,
        beta=beta,
        reset=reset,
        refractory=refractory,
    )
    rec = simulate(net, drive(T))
    alpha_syn = math.exp(-1 / tau_syn) if tau_syn else 0.0
    ref = alif_loop(
        T,
        np.r_[0.0, np.full(T - 1, w)],
        alpha_mem=math.exp(-1 / tau_mem),
        rho=math.exp(-1 / tau_adapt),
        v_thresh=1.0,
        beta=beta,
        reset=reset,
        alpha_syn=alpha_syn,
        n_ref=int(refractory),
    )
    np.testing.assert_array_equal(tr(rec, "z"), ref["z"])
    for var in ("I", "V", "a"):
        np.testing.assert_allclose(tr(rec, var), ref[var], rtol=0, atol=1e-12, err_msg=var)
    # adaptation matters here: the same neuron without it fires more
    lif = lif_loop(
        T,
        np.r_[0.0, np.full(T - 1, w)],
        alpha_mem=math.exp(-1 / tau_mem),
        alpha_syn=alpha_syn,
        v_thresh=1.0,
        reset=reset,
        n_ref=int(refractory),
    )
    assert ref["z"].sum() >= 3 and lif["z"].sum() > ref["z"].sum()


def test_alif_adaptation_jumps_one_step_after_the_spike():
    # a[t] = rho a[t-1] + z[t-1]: unchanged at the spike step, +1 the step after
    tau_adapt = 50.0
    rho = math.exp(-1 / tau_adapt)
    net = single(1.0, kind=sl.ALIF, tau_adapt=tau_adapt, beta=0.2)
    rec = simulate(net, drive(6, [0]))
    np.testing.assert_array_equal(tr(rec, "z"), [0, 1, 0, 0, 0, 0])
    a = tr(rec, "a")
    assert a[0] == 0 and a[1] == 0 and a[2] == 1.0
    np.testing.assert_allclose(a[3:], rho ** np.arange(1, 4), rtol=1e-15)


def test_alif_subtract_reset_uses_v_thresh_not_theta():
    # spike at step 1 (a = 0); the 2nd spike at step 2 has theta = 1 + 0.5 a[2] = 1.5 and the reset
    # removes v_thresh = 1 from V, not theta
    tau_mem = 20.0
    alpha = math.exp(-1 / tau_mem)
    net = single(1.75, kind=sl.ALIF, tau_mem=tau_mem, tau_adapt=100.0, beta=0.5, reset="subtract")
    rec = simulate(net, drive(4, [0, 1]))
    V, z = tr(rec, "V"), tr(rec, "z")
    np.testing.assert_array_equal(z, [0, 1, 1, 0])
    assert V[2] == alpha * (1.75 - 1.0) + 1.75
    np.testing.assert_allclose(V[3], alpha * (V[2] - 1.0), rtol=1e-15)


def test_alif_with_zero_beta_is_lif():
    kw = dict(tau_mem=15.0, tau_syn=3.0, v_thresh=0.8, refractory=2.0)
    x = np.random.default_rng(3).random((60, 2, 3)) < 0.4
    w = np.array([[0.3], [0.5], [0.2]])
    lif = simulate(single(w, n_in=3, **kw), x)
    alif = simulate(single(w, n_in=3, kind=sl.ALIF, beta=0.0, **kw), x)
    assert lif["h"]["z"].sum() > 0
    for var in ("V", "I", "z"):
        np.testing.assert_array_equal(alif["h"][var], lif["h"][var])


# --------------------------------------------------------------------------------------------
# scale_input and the LI readout
# --------------------------------------------------------------------------------------------


def test_scale_input_gain_is_one_minus_alpha_mem():
    # V[t] = alpha V[t-1] + (1 - alpha) w  =>  V[t] = w (1 - alpha^t) for t >= 1;
    # w = 2, theta = 1: spike at the first t >= tau ln 2 = 6.93, i.e. t = 7
    tau_mem, w = 10.0, 2.0
    alpha = math.exp(-1 / tau_mem)
    rec = simulate(single(w, tau_mem=tau_mem, scale_input=True), drive(8))
    t = np.arange(8)
    np.testing.assert_allclose(tr(rec, "V"), w * (1 - alpha**t), rtol=1e-12)
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z")), [7])


def test_scale_input_with_exponential_synapse_matches_hand_loop():
    tau_mem, tau_syn, w, T = 10.0, 5.0, 3.0, 60
    alpha, beta = math.exp(-1 / tau_mem), math.exp(-1 / tau_syn)
    rec = simulate(single(w, tau_mem=tau_mem, tau_syn=tau_syn, scale_input=True), drive(T))
    ref = lif_loop(T, np.r_[0.0, np.full(T - 1, w)], alpha_mem=alpha, alpha_syn=beta, v_thresh=1.0, g=1 - alpha)
    assert ref["z"].sum() >= 2
    np.testing.assert_array_equal(tr(rec, "z"), ref["z"])
    np.testing.assert_allclose(tr(rec, "V"), ref["V"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale_input", [False, True])
def test_li_bias_is_a_constant_input_current(scale_input):
    # no input spikes: V[t] = alpha V[t-1] + g bias, V[-1] = 0  =>  V[t] = g bias (1 - alpha^(t+1)) / (1 - alpha)
    tau_mem, bias = np.array([10.0, 20.0, 5.0]), np.array([0.25, -0.5, 0.0])
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LI("out", 3, tau_mem=tau_mem, bias=bias, scale_input=scale_input)],
        [sl.Connection("inp", "out", weight=1.0)],
    )
    T = 40
    rec = simulate(net, np.zeros((T, 1, 1), dtype=bool))
    assert set(rec["out"]) == {"V", "I"}  # a readout has no spikes
    alpha = np.exp(-1 / tau_mem)
    g = 1 - alpha if scale_input else 1.0
    t = np.arange(T)[:, None]
    np.testing.assert_allclose(rec["out"]["V"][:, 0], g * bias * (1 - alpha ** (t + 1)) / (1 - alpha), rtol=1e-12)
    np.testing.assert_array_equal(rec["out"]["I"], 0.0)


@pytest.mark.parametrize("tau_syn", [0.0, 4.0])
def test_li_with_input_and_bias_matches_hand_loop_and_never_resets(tau_syn):
    tau_mem, bias, w, T = 20.0, 0.1, 2.0, 50
    alpha = math.exp(-1 / tau_mem)
    alpha_syn = math.exp(-1 / tau_syn) if tau_syn else 0.0
    x = drive(T, range(0, T, 3))
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LI("out", 1, tau_mem=tau_mem, tau_syn=tau_syn, bias=bias)],
        [sl.Connection("inp", "out", weight=w)],
    )
    rec = simulate(net, x)
    I = V = 0.0
    V_exp, I_exp = np.zeros(T), np.zeros(T)
    for t in range(T):
        h = w * float(x[t - 1, 0, 0]) if t >= 1 else 0.0
        I = alpha_syn * I + h
        V = alpha * V + (I + bias)
        I_exp[t], V_exp[t] = I, V
    np.testing.assert_allclose(rec["out"]["I"][:, 0, 0], I_exp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec["out"]["V"][:, 0, 0], V_exp, rtol=0, atol=1e-12)
    assert V_exp.max() > 10.0  # far above any threshold, never reset


# --------------------------------------------------------------------------------------------
# delays and lock-step updates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [1, 2, 5])
@pytest.mark.parametrize("target", ["LIF", "LI"])
def test_input_spike_arrives_after_delay(delay, target):
    t0, T, w, tau_mem = 3, 15, 0.7, 20.0
    alpha = math.exp(-1 / tau_mem)
    pop = sl.LIF("h", 1, tau_mem=tau_mem, v_thresh=100.0) if target == "LIF" else sl.LI("h", 1, tau_mem=tau_mem)
    net = sl.Network([sl.SpikeInput("inp", 1), pop], [sl.Connection("inp", "h", weight=w, delay=delay)])
    rec = simulate(net, drive(T, [t0]))
    arrive = t0 + delay
    I_exp = np.where(np.arange(T) == arrive, w, 0.0)
    np.testing.assert_array_equal(tr(rec, "I"), I_exp)
    n = np.arange(T) - arrive
    np.testing.assert_allclose(tr(rec, "V"), np.where(n >= 0, w * alpha ** np.maximum(n, 0), 0.0), rtol=1e-12)


@pytest.mark.parametrize("delay", [1, 2, 3])
def test_recurrent_connection_delay(delay):
    # input -> neuron 0 (spikes at t0 + 1, V == theta); recurrent 0 -> 1 weight 0.25 arrives at t0 + 1 + delay
    t0, T = 2, 12
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("A", 2, reset="zero")],
        [
            sl.Connection("inp", "A", weight=np.array([[1.0, 0.0]])),
            sl.Connection("A", "A", weight=np.array([[0.0, 0.25], [0.0, 0.0]]), delay=delay),
        ],
    )
    rec = simulate(net, drive(T, [t0]))
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "A", 0)), [t0 + 1])
    np.testing.assert_array_equal(tr(rec, "I", "A", 1), np.where(np.arange(T) == t0 + 1 + delay, 0.25, 0.0))
    assert not tr(rec, "z", "A", 1).any()


@pytest.mark.parametrize("delay", [1, 2, 4])
def test_self_connection_delay_sustains_a_spike_train(delay):
    # allow_self: a neuron re-excites itself with V = alpha*0 + 1.0 == theta every `delay` steps
    t0, T = 1, 20
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("A", 1, reset="zero")],
        [sl.Connection("inp", "A", weight=1.0), sl.Connection("A", "A", weight=1.0, delay=delay, allow_self=True)],
    )
    rec = simulate(net, drive(T, [t0]))
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "A")), np.arange(t0 + 1, T, delay))


def test_recurrent_self_synapses_excluded_by_default():
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("A", 3)],
        [sl.Connection("inp", "A", weight=1.0), sl.Connection("A", "A", weight=0.4)],
    )
    W = net.built.connections[1].weight
    np.testing.assert_array_equal(W, 0.4 * (1 - np.eye(3)))
    rec = simulate(net, drive(6, [0]))
    # all three spike at step 1 (V == theta); each then receives 0.4 from the two others at step 2
    np.testing.assert_array_equal(rec["A"]["z"][1, 0], [1, 1, 1])
    np.testing.assert_allclose(rec["A"]["I"][2, 0], [0.8, 0.8, 0.8], rtol=1e-15)


@pytest.mark.parametrize("d1, d2", [(1, 1), (2, 3), (1, 4)])
@pytest.mark.parametrize("reverse", [False, True])
def test_lock_step_chain(d1, d2, reverse):
    # in -> A -> B: a spike at input step t0 makes A spike at t0 + d1 and B at t0 + d1 + d2,
    # whatever the order of declaration (no ordering inside a step)
    t0, T = 2, 14
    pops = [sl.SpikeInput("inp", 1), sl.LIF("A", 1, reset="zero"), sl.LIF("B", 1, reset="zero")]
    conns = [sl.Connection("inp", "A", weight=1.0, delay=d1), sl.Connection("A", "B", weight=1.0, delay=d2)]
    if reverse:
        pops, conns = pops[::-1], conns[::-1]
    rec = simulate(sl.Network(pops, conns), drive(T, [t0]))
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "A")), [t0 + d1])
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "B")), [t0 + d1 + d2])
    np.testing.assert_array_equal(tr(rec, "I", "B"), np.where(np.arange(T) == t0 + d1 + d2, 1.0, 0.0))


def test_cycle_between_two_populations_ping_pongs():
    # A <-> B with delay 1 each: A at t0+1, B at t0+2, A at t0+3, ...
    t0, T = 0, 12
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("A", 1, reset="zero"), sl.LIF("B", 1, reset="zero")],
        [
            sl.Connection("inp", "A", weight=1.0),
            sl.Connection("A", "B", weight=1.0),
            sl.Connection("B", "A", weight=1.0),
        ],
    )
    rec = simulate(net, drive(T, [t0]))
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "A")), np.arange(t0 + 1, T, 2))
    np.testing.assert_array_equal(np.flatnonzero(tr(rec, "z", "B")), np.arange(t0 + 2, T, 2))


def test_parallel_connections_sum():
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("h", 1, v_thresh=100.0)],
        [
            sl.Connection("inp", "h", weight=0.25, delay=1, name="fast"),
            sl.Connection("inp", "h", weight=0.5, delay=3, name="slow"),
        ],
    )
    rec = simulate(net, drive(8, [0, 2]))
    # arrivals: fast at 1, 3; slow at 3, 5
    np.testing.assert_array_equal(tr(rec, "I"), [0, 0.25, 0, 0.75, 0, 0.5, 0, 0])


# --------------------------------------------------------------------------------------------
# sparse connectivity
# --------------------------------------------------------------------------------------------


def assert_recordings_equal(a, b):
    assert a.keys() == b.keys()
    for pop in a:
        assert a[pop].keys() == b[pop].keys()
        for var in a[pop]:
            np.testing.assert_array_equal(a[pop][var], b[pop][var], err_msg=f"{pop}.{var}")


def test_explicit_connectivity_equals_dense_with_zeroed_weights():
    pre, post, w = [0, 1, 2, 2, 3], [1, 0, 0, 2, 1], [0.6, -0.3, 0.9, 0.4, 0.7]
    rpre, rpost, rw = [0, 1, 2], [2, 2, 0], [0.5, -0.4, 0.3]
    W = np.zeros((4, 3))
    W[pre, post] = w
    R = np.zeros((3, 3))
    R[rpre, rpost] = rw
    pops = [sl.SpikeInput("inp", 4), sl.LIF("h", 3, tau_syn=5.0, v_thresh=0.7), sl.LI("out", 2)]
    out = sl.Connection("h", "out", weight=np.array([[1.0, -1.0], [0.5, 0.5], [0.2, 0.1]]))
    sparse = sl.Network(
        pops,
        [
            sl.Connection("inp", "h", weight=np.array(w), connectivity=sl.Explicit(pre, post)),
            sl.Connection("h", "h", weight=np.array(rw), connectivity=(rpre, rpost), delay=2),
            out,
        ],
    )
    dense = sl.Network(pops, [sl.Connection("inp", "h", weight=W), sl.Connection("h", "h", weight=R, delay=2), out])
    np.testing.assert_array_equal(sparse.built.connections[0].mask, W != 0)
    x = np.random.default_rng(0).random((50, 3, 4)) < 0.3
    a, b = simulate(sparse, x), simulate(dense, x)
    assert a["h"]["z"].sum() > 0
    assert_recordings_equal(a, b)


def test_fixed_probability_equals_dense_with_same_matrix():
    pops = [sl.SpikeInput("inp", 6), sl.ALIF("h", 5, tau_syn=3.0, beta=0.1, tau_adapt=50.0), sl.LI("out", 2)]
    sparse = sl.Network(
        pops,
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.5, 0.3), connectivity=sl.FixedProbability(0.5)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.5), connectivity=sl.FixedProbability(0.4), delay=3),
            sl.Connection("h", "out", connectivity=sl.FixedProbability(0.7)),
        ],
        seed=7,
    )
    masks = [c.mask for c in sparse.built.connections]
    weights = [np.array(c.weight) for c in sparse.built.connections]
    for m, W in zip(masks, weights, strict=True):
        assert m.any() and not m.all()
        np.testing.assert_array_equal(W[~m], 0.0)
        assert np.all(W[m] != 0)
    assert not masks[1].diagonal().any()
    dense = sl.Network(
        pops,
        [
            sl.Connection("inp", "h", weight=weights[0]),
            sl.Connection("h", "h", weight=weights[1], delay=3),
            sl.Connection("h", "out", weight=weights[2]),
        ],
        seed=7,
    )
    x = np.random.default_rng(1).random((60, 2, 6)) < 0.3
    a, b = simulate(sparse, x), simulate(dense, x)
    assert a["h"]["z"].sum() > 0
    assert_recordings_equal(a, b)


# --------------------------------------------------------------------------------------------
# heterogeneous per-neuron parameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["LIF", "ALIF"])
def test_heterogeneous_population_equals_separate_neurons(kind):
    n = 4
    params = dict(
        tau_mem=np.array([5.0, 10.0, 20.0, 40.0]),
        tau_syn=np.array([2.0, 5.0, 1.0, 8.0]),
        v_thresh=np.array([0.5, 1.0, 0.8, 1.2]),
        refractory=np.array([0.0, 2.0, 1.0, 4.0]),
    )
    if kind == "ALIF":
        params.update(tau_adapt=np.array([20.0, 50.0, 100.0, 200.0]), beta=np.array([0.1, 0.5, 0.0, 0.3]))
    cls = getattr(sl, kind)
    w = np.array([0.4, 0.3, 0.9, 0.25])
    x = np.random.default_rng(5).random((80, 3, n)) < 0.5
    het = sl.Network(
        [sl.SpikeInput("inp", n), cls("h", n, reset="zero", **params)],
        [sl.Connection("inp", "h", weight=w, connectivity=sl.Explicit(np.arange(n), np.arange(n)))],
    )
    rec = simulate(het, x)
    assert np.all(rec["h"]["z"].sum(axis=(0, 1)) > 0)
    for j in range(n):
        one = simulate(
            single(float(w[j]), kind=cls, reset="zero", **{k: float(v[j]) for k, v in params.items()}),
            x[:, :, j : j + 1],
        )
        for var in one["h"]:
            np.testing.assert_array_equal(rec["h"][var][:, :, j], one["h"][var][:, :, 0], err_msg=f"{j}.{var}")


def test_distributed_parameters_equal_separate_neurons():
    n = 3
    pop = sl.LIF("h", n, tau_mem=sl.Gamma(20.0, shape=3), tau_syn=sl.Uniform(2.0, 8.0), v_thresh=sl.Uniform(0.5, 1.0))
    diagonal = sl.Explicit(np.arange(n), np.arange(n))
    net = sl.Network(
        [sl.SpikeInput("inp", n), pop], [sl.Connection("inp", "h", weight=0.5, connectivity=diagonal)], seed=3
    )
    bp = net.built.populations["h"]
    assert len(set(bp.params["tau_mem"].tolist())) == n
    np.testing.assert_array_equal(bp.alpha_mem, np.exp(-1.0 / bp.params["tau_mem"]))
    np.testing.assert_array_equal(bp.alpha_syn, np.exp(-1.0 / bp.params["tau_syn"]))
    x = np.random.default_rng(2).random((60, 2, n)) < 0.6
    rec = simulate(net, x)
    for j in range(n):
        kw = {k: float(bp.params[k][j]) for k in ("tau_mem", "tau_syn", "v_thresh")}
        one = simulate(single(0.5, **kw), x[:, :, j : j + 1])
        for var in one["h"]:
            np.testing.assert_array_equal(rec["h"][var][:, :, j], one["h"][var][:, :, 0])


def test_heterogeneous_readout_equals_separate_readouts():
    tau_mem, tau_syn, bias = np.array([5.0, 30.0]), np.array([2.0, 10.0]), np.array([0.3, -0.2])
    x = np.random.default_rng(4).random((40, 2, 2)) < 0.5
    net = sl.Network(
        [sl.SpikeInput("inp", 2), sl.LI("out", 2, tau_mem=tau_mem, tau_syn=tau_syn, bias=bias)],
        [sl.Connection("inp", "out", weight=np.array([1.5, -0.5]), connectivity=([0, 1], [0, 1]))],
    )
    rec = simulate(net, x)
    for j in range(2):
        li = sl.LI("out", 1, tau_mem=tau_mem[j], tau_syn=tau_syn[j], bias=bias[j])
        one = sl.Network([sl.SpikeInput("inp", 1), li], [sl.Connection("inp", "out", weight=[1.5, -0.5][j])])
        r1 = simulate(one, x[:, :, j : j + 1])
        for var in ("V", "I"):
            np.testing.assert_array_equal(rec["out"][var][:, :, j], r1["out"][var][:, :, 0])


# --------------------------------------------------------------------------------------------
# input dtypes and counts
# --------------------------------------------------------------------------------------------


def _count_net(n_in):
    return sl.Network(
        [sl.SpikeInput("inp", n_in), sl.LIF("h", 2, tau_syn=4.0, v_thresh=0.9), sl.LI("out", 1)],
        [sl.Connection("inp", "h", weight=0.35), sl.Connection("h", "out", weight=1.0)],
        seed=0,
    )


def test_bool_int_and_float_spikes_give_identical_results():
    xb = np.random.default_rng(0).random((50, 2, 3)) < 0.3
    net = _count_net(3)
    ref = simulate(net, xb)
    assert ref["h"]["z"].sum() > 0
    for x in (xb.astype(np.int64), xb.astype(np.uint8), xb.astype(np.float32), xb.astype(np.float64)):
        assert_recordings_equal(simulate(net, x), ref)


def test_spike_counts_count_each_spike():
    # a bin holding k spikes on one channel acts as k channels each holding one spike (same weight)
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=(50, 2, 1))
    split = np.concatenate([counts > k for k in range(3)], axis=2)
    a = simulate(_count_net(1), counts)
    b = simulate(_count_net(3), split)
    assert a["h"]["z"].sum() > 0 and (counts == 2).any() and (counts == 3).any()
    assert_recordings_equal(a, b)
    assert_recordings_equal(simulate(_count_net(1), counts.astype(np.float64)), a)
    # and I is exactly count * w at the next step (delta synapse)
    net = single(0.35, v_thresh=100.0)
    rec = simulate(net, counts[:, :1])
    np.testing.assert_array_equal(rec["h"]["I"][1:, 0, 0], 0.35 * counts[:-1, 0, 0])


# --------------------------------------------------------------------------------------------
# float32 vs float64
# --------------------------------------------------------------------------------------------


def test_float32_close_to_float64():
    rng = np.random.default_rng(11)
    net = sl.Network(
        [
            sl.SpikeInput("inp", 5),
            sl.ALIF("h", 6, tau_mem=20.0, tau_syn=5.0, beta=0.2, tau_adapt=100.0, refractory=2.0),
            sl.LI("out", 3, tau_syn=5.0, bias=0.1),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.4, 0.4)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.3)),
            sl.Connection("h", "out", weight=sl.Normal(0.0, 1.0)),
        ],
        seed=2,
    )
    x = rng.random((60, 2, 5)) < 0.3
    r64 = simulate(net, x, "float64")
    r32 = simulate(net, x, "float32")
    assert r32["h"]["V"].dtype == np.float32 and r64["h"]["V"].dtype == np.float64
    # this case does not sit on the threshold: every V is at least 1e-3 away from theta
    bp = net.built.populations["h"]
    theta = bp.params["v_thresh"] + bp.params["beta"] * r64["h"]["a"]
    assert np.min(np.abs(r64["h"]["V"] - theta)) > 1e-3
    assert r64["h"]["z"].sum() >= 5
    np.testing.assert_array_equal(r32["h"]["z"], r64["h"]["z"])
    for pop in r64:
        for var in r64[pop]:
            np.testing.assert_allclose(r32[pop][var], r64[pop][var], rtol=1e-5, atol=1e-5, err_msg=f"{pop}.{var}")


# --------------------------------------------------------------------------------------------
# an independent whole-network reference of SPEC §3
# --------------------------------------------------------------------------------------------


def reference_simulate(built, inputs):
    """SPEC §3 as plain loops over time, batch, neurons and synapses, in float64."""
    T, B = next(iter(inputs.values())).shape[:2]
    s = {name: np.zeros((T, B, p.n)) for name, p in built.populations.items()}  # spikes emitted at t
    for name, x in inputs.items():
        s[name][:] = x
    pops = [p for p in built.populations.values() if p.kind != "SpikeInput"]
    out = {
        p.name: {
            v: np.zeros((T, B, p.n))
            for v in (("V", "I") if p.kind == "LI" else ("V", "I", "a", "z") if p.kind == "ALIF" else ("V", "I", "z"))
        }
        for p in pops
    }
    state = {p.name: {k: np.zeros((B, p.n)) for k in ("I", "V", "a", "z")} for p in pops}
    refr = {p.name: [[0] * p.n for _ in range(B)] for p in pops}
    for t in range(T):
        for p in pops:
            st = state[p.name]
            for b in range(B):
                for j in range(p.n):
                    h = 0.0
                    for c in built.connections:
                        if c.target != p.name or t - c.delay < 0:
                            continue
                        for i in range(c.weight.shape[0]):
                            h += c.weight[i, j] * s[c.source][t - c.delay, b, i]
                    am = float(p.alpha_mem[j])
                    I = h if p.synapse == "delta" else float(p.alpha_syn[j]) * st["I"][b, j] + h
                    g = 1.0 - am if p.scale_input else 1.0
                    rec = out[p.name]
                    rec["I"][t, b, j] = st["I"][b, j] = I
                    if p.kind == "LI":
                        V = am * st["V"][b, j] + g * (I + float(p.params["bias"][j]))
                        rec["V"][t, b, j] = st["V"][b, j] = V
                        continue
                    V = am * st["V"][b, j] + g * I
                    vth = float(p.params["v_thresh"][j])
                    theta = vth
                    if p.kind == "ALIF":
                        a = float(p.rho[j]) * st["a"][b, j] + st["z"][b, j]
                        rec["a"][t, b, j] = st["a"][b, j] = a
                        theta = vth + float(p.params["beta"][j]) * a
                    z = 1.0 if V >= theta and refr[p.name][b][j] == 0 else 0.0
                    rec["V"][t, b, j], rec["z"][t, b, j] = V, z
                    s[p.name][t, b, j] = st["z"][b, j] = z
                    if z:
                        st["V"][b, j] = V - vth if p.reset == "subtract" else 0.0
                        refr[p.name][b][j] = int(p.n_ref[j])
                    else:
                        st["V"][b, j] = V
                        refr[p.name][b][j] = max(refr[p.name][b][j] - 1, 0)
    return out


def random_network(seed):
    rng = np.random.default_rng(seed)
    dt = float(rng.choice([1.0, 0.5]))
    n_in = int(rng.integers(2, 5))
    pops = [sl.SpikeInput("inp", n_in)]
    conns = []
    hidden = []
    for k in range(int(rng.integers(1, 3))):
        n = int(rng.integers(1, 5))
        het = bool(rng.random() < 0.5)

        def param(lo, hi, n=n, het=het):
            return rng.uniform(lo, hi, n) if het else float(rng.uniform(lo, hi))

        kind = "ALIF" if rng.random() < 0.5 else "LIF"
        kw = dict(
            tau_mem=param(5.0, 30.0),
            v_thresh=param(0.5, 1.5),
            reset=str(rng.choice(["subtract", "zero"])),
            refractory=param(0.0, 3.0) if rng.random() < 0.6 else 0.0,
            scale_input=bool(rng.random() < 0.25),
        )
        if rng.random() < 0.5:
            kw["tau_syn"] = param(2.0, 10.0)
        if kind == "ALIF":
            kw.update(tau_adapt=param(10.0, 100.0), beta=param(0.05, 0.5))
        name = f"h{k}"
        pops.append((sl.ALIF if kind == "ALIF" else sl.LIF)(name, n, **kw))
        gain = 8.0 if kw["scale_input"] else 1.0
        hidden.append((name, gain))
        delay = lambda: int(rng.integers(1, 4))  # noqa: E731
        if k == 0 or rng.random() < 0.5:
            conn = sl.FixedProbability(0.7) if rng.random() < 0.4 else sl.Dense()
            conns.append(
                sl.Connection("inp", name, weight=sl.Normal(0.6 * gain, 0.4 * gain), connectivity=conn, delay=delay())
            )
        for prev, _ in hidden[:-1]:
            conns.append(sl.Connection(prev, name, weight=sl.Normal(0.5 * gain, 0.5 * gain), delay=delay()))
            if rng.random() < 0.3:
                conns.append(sl.Connection(name, prev, weight=sl.Normal(0.0, 0.5), delay=delay()))
        if n > 1 and rng.random() < 0.7:
            conns.append(
                sl.Connection(
                    name, name, weight=sl.Normal(0.0, 0.6 * gain), delay=delay(), allow_self=bool(rng.random() < 0.3)
                )
            )
    n_out = int(rng.integers(1, 3))
    het = bool(rng.random() < 0.5)
    pops.append(
        sl.LI(
            "out",
            n_out,
            tau_mem=rng.uniform(5, 30, n_out) if het else 20.0,
            tau_syn=float(rng.choice([0.0, 5.0])),
            bias=rng.normal(0, 0.2, n_out) if het else 0.1,
            scale_input=bool(rng.random() < 0.3),
        )
    )
    for name, _ in hidden:
        conns.append(sl.Connection(name, "out", weight=sl.Normal(0.0, 1.0), delay=int(rng.integers(1, 4))))
    return sl.Network(pops, conns, dt=dt, seed=int(seed))


@pytest.mark.parametrize("seed", range(24))
def test_backend_equals_independent_reference(seed):
    net = random_network(seed)
    rng = np.random.default_rng(1000 + seed)
    T, B = 40, 2
    n_in = net.built.populations["inp"].n
    x = (rng.random((T, B, n_in)) < 0.35).astype(np.int64)
    if seed % 3 == 0:
        x = x * rng.integers(1, 3, size=x.shape)  # spike counts
    got = simulate(net, x)
    ref = reference_simulate(net.built, {"inp": x.astype(np.float64)})
    assert got.keys() == ref.keys()
    hidden = [p for p in net.built.neuron_populations if p.kind != "LI"]
    assert sum(ref[p.name]["z"].sum() for p in hidden) >= 3  # the case exercises spikes and resets
    for pop in ref:
        assert got[pop].keys() == ref[pop].keys()
        for var in ref[pop]:
            if var == "z":
                np.testing.assert_array_equal(got[pop][var], ref[pop][var], err_msg=f"{pop}.z")
            else:
                np.testing.assert_allclose(got[pop][var], ref[pop][var], rtol=1e-12, atol=1e-12, err_msg=f"{pop}.{var}")


def test_random_networks_cover_the_features():
    """The random networks above exercise every feature the reference comparison is meant to pin."""
    seen = set()
    for seed in range(24):
        net = random_network(seed)
        for p in net.built.neuron_populations:
            seen.add(p.kind)
            if p.kind != "LI":
                seen.add(p.reset)
                seen.add(p.synapse)
                if p.n_ref.max() > 0:
                    seen.add("refractory")
                if p.scale_input:
                    seen.add("scale_input")
                if len(set(p.params["tau_mem"].tolist())) > 1:
                    seen.add("heterogeneous")
        for c in net.built.connections:
            seen.add(f"delay{c.delay}")
            if c.source == c.target:
                seen.add("recurrent")
            if not c.mask.all():
                seen.add("sparse")
        if net.dt != 1.0:
            seen.add("dt")
    expected = {
        "LIF",
        "ALIF",
        "LI",
        "subtract",
        "zero",
        "delta",
        "exponential",
        "refractory",
        "scale_input",
        "heterogeneous",
        "delay1",
        "delay2",
        "delay3",
        "recurrent",
        "sparse",
        "dt",
    }
    assert expected <= seen, expected - seen
