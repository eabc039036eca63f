"""Properties of the NumPy reference that hold for every network (SPEC §0–§3), checked with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spikeloom as sl

BACKEND = sl.get_backend("numpy")

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def specs(draw):
    """A small random network description (turned into a Network by :func:`make`)."""
    return dict(
        kind=draw(st.sampled_from(["LIF", "ALIF"])),
        n_in=draw(st.integers(1, 4)),
        n_h=draw(st.integers(1, 5)),
        n_out=draw(st.integers(1, 3)),
        tau_syn=draw(st.sampled_from([0.0, 5.0])),
        reset=draw(st.sampled_from(["subtract", "zero"])),
        refractory=draw(st.sampled_from([0.0, 1.0, 3.0])),
        scale_input=draw(st.booleans()),
        het=draw(st.booleans()),
        recurrent=draw(st.booleans()),
        sparse=draw(st.booleans()),
        delay=draw(st.integers(1, 3)),
        dt=draw(st.sampled_from([1.0, 0.5])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def make(spec, seed=None):
    gain = 8.0 if spec["scale_input"] else 1.0
    kw = dict(
        tau_syn=spec["tau_syn"], reset=spec["reset"], refractory=spec["refractory"], scale_input=spec["scale_input"]
    )
    if spec["het"]:
        kw["tau_mem"] = sl.Gamma(20.0, shape=3)
        kw["v_thresh"] = sl.Uniform(0.6, 1.2)
    if spec["kind"] == "ALIF":
        kw.update(tau_adapt=50.0, beta=0.3)
    cls = sl.ALIF if spec["kind"] == "ALIF" else sl.LIF
    conn = sl.FixedProbability(0.6) if spec["sparse"] else sl.Dense()
    conns = [
        sl.Connection("inp", "h", weight=sl.Normal(0.7 * gain, 0.5 * gain), connectivity=conn),
        sl.Connection("h", "out", delay=spec["delay"]),
    ]
    if spec["recurrent"]:
        conns.append(sl.Connection("h", "h", weight=sl.Normal(0.0, 0.5 * gain), delay=spec["delay"]))
    return sl.Network(
        [sl.SpikeInput("inp", spec["n_in"]), cls("h", spec["n_h"], **kw), sl.LI("out", spec["n_out"], bias=0.1)],
        conns,
        dt=spec["dt"],
        seed=spec["seed"] if seed is None else seed,
    )


@st.composite
def inputs(draw, n_in, batch=(1, 4)):
    T = draw(st.integers(1, 30))
    B = draw(st.integers(*batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.random((T, B, n_in)) < draw(st.sampled_from([0.1, 0.4, 0.8]))
    if draw(st.booleans()):
        return x.astype(np.int64) * rng.integers(1, 4, size=x.shape)  # spike counts
    return x


@st.composite
def cases(draw, batch=(1, 4)):
    spec = draw(specs())
    return spec, draw(inputs(spec["n_in"], batch))


def run(net, x, dtype="float64"):
    return BACKEND.compile(net, dtype=dtype).simulate(x)


def dyadic(net):
    """The same network with every weight rounded to a multiple of 1/64, so that every synaptic sum
    ``h[t]`` is exact in float32 and float64 whatever the order of summation."""
    conns = [
        sl.Connection(
            c.source,
            c.target,
            weight=np.round(np.asarray(bc.weight) * 64) / 64,
            delay=c.delay,
            allow_self=c.allow_self,
            name=c.name,
        )
        for c, bc in zip(net.connections, net.built.connections, strict=True)
    ]
    return sl.Network(net.populations, conns, dt=net.dt, seed=net.seed)


def assert_batch_independent(compiled, x, exact=True):
    full = compiled.simulate(x)
    for b in range(x.shape[1]):
        one = compiled.simulate(x[:, b : b + 1])
        for pop in full:
            for var in full[pop]:
                got, want = full[pop][var][:, b], one[pop][var][:, 0]
                if exact or var == "z":
                    np.testing.assert_array_equal(got, want, err_msg=f"b={b} {pop}.{var}")
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"b={b} {pop}.{var}")


@SETTINGS
@given(cases(batch=(2, 4)), st.sampled_from(["float64", "float32"]))
def test_batch_elements_are_independent_bitwise(case, dtype):
    # exact synaptic sums: nothing but the example itself can change an example's result
    spec, x = case
    assert_batch_independent(BACKEND.compile(dyadic(make(spec)), dtype=dtype), x)


@SETTINGS
@given(cases(batch=(2, 4)))
def test_batch_elements_are_independent_to_round_off(case):
    spec, x = case
    assert_batch_independent(BACKEND.compile(make(spec), dtype="float64"), x, exact=False)


@SETTINGS
@given(cases())
def test_same_network_and_seed_reproduce_exactly(case):
    spec, x = case
    a, b = make(spec), make(spec)
    for ca, cb in zip(a.built.connections, b.built.connections, strict=True):
        np.testing.assert_array_equal(ca.mask, cb.mask)
        np.testing.assert_array_equal(ca.weight, cb.weight)
    for name, pa in a.built.populations.items():
        for k, v in pa.params.items():
            np.testing.assert_array_equal(v, b.built.populations[name].params[k])
    ca, cb = BACKEND.compile(a, dtype="float64"), BACKEND.compile(b, dtype="float64")
    pa, pb = ca.get_params(), cb.get_params()
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    first = ca.simulate(x)
    ca.simulate(np.ones_like(x))  # every simulation starts from zero state
    for rec in (ca.simulate(x), cb.simulate(x)):
        for pop in first:
            for var in first[pop]:
                np.testing.assert_array_equal(rec[pop][var], first[pop][var])


@SETTINGS
@given(specs(), st.integers(0, 2**31 - 1))
def test_different_seeds_draw_different_weights(spec, other):
    if other == spec["seed"]:
        other += 1
    a, b = make(spec), make(spec, seed=other)
    for ca, cb in zip(a.built.connections, b.built.connections, strict=True):
        if ca.mask.any() and cb.mask.any():
            assert not np.array_equal(ca.weight, cb.weight), ca.name
    if spec["het"]:
        tau_a, tau_b = (n.built.populations["h"].params["tau_mem"] for n in (a, b))
        assert not np.array_equal(tau_a, tau_b)


def _check_step_semantics(net, x, rec, tol):
    """z is 0/1; z = [V >= theta and not refractory] with V recorded before the reset; the next step
    starts from the reset V."""
    p = net.built.populations["h"]
    V, I, z = rec["h"]["V"], rec["h"]["I"], rec["h"]["z"]
    assert set(np.unique(z).tolist()) <= {0.0, 1.0}
    vth = p.params["v_thresh"]
    theta = vth + p.params["beta"] * rec["h"]["a"] if p.kind == "ALIF" else np.broadcast_to(vth, V.shape)
    T = V.shape[0]
    # refractory at t iff a spike happened in [t - n_ref, t - 1]
    refractory = np.zeros(V.shape, dtype=bool)
    for t in range(T):
        lo = np.maximum(t - p.n_ref, 0)
        for j in range(p.n):
            refractory[t, :, j] = z[lo[j] : t, :, j].any(axis=0) if lo[j] < t else False
    # no spike closer than n_ref + 1 steps to the previous one
    assert not np.any((z > 0) & refractory)
    fire = (V >= theta) & ~refractory
    # the recorded V decides the spike (away from round-off at the threshold)
    clear = np.abs(V - theta) > tol
    np.testing.assert_array_equal((z > 0)[clear], fire[clear])
    # the recorded V is pre-reset: it is the starting point of the next step after the reset
    after = V - vth * z if p.reset == "subtract" else V * (1 - z)
    g = 1.0 - p.alpha_mem if p.scale_input else 1.0
    np.testing.assert_allclose(V[1:] - g * I[1:], p.alpha_mem * after[:-1], rtol=tol, atol=tol)
    np.testing.assert_allclose(V[0], g * I[0], rtol=tol, atol=tol)


@SETTINGS
@given(cases(), st.sampled_from(["float64", "float32"]))
def test_spikes_are_binary_and_v_is_recorded_before_reset(case, dtype):
    spec, x = case
    net = make(spec)
    rec = run(net, x, dtype)
    assert rec["h"]["z"].dtype == np.dtype(dtype)
    _check_step_semantics(net, x, rec, 1e-12 if dtype == "float64" else 1e-4)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["subtract", "zero"]), st.sampled_from(["LIF", "ALIF"]), st.integers(0, 2**31 - 1))
def test_step_semantics_hold_while_spiking_a_lot(reset, kind, seed):
    # a strongly driven case, so that resets, refractoriness and adaptation all happen
    spec = dict(
        kind=kind,
        n_in=4,
        n_h=5,
        n_out=2,
        tau_syn=5.0,
        reset=reset,
        refractory=2.0,
        scale_input=False,
        het=True,
        recurrent=True,
        sparse=False,
        delay=1,
        dt=1.0,
        seed=seed,
    )
    net = make(spec)
    x = np.random.default_rng(seed).random((60, 2, 4)) < 0.6
    rec = run(net, x)
    assert rec["h"]["z"].sum() >= 10
    _check_step_semantics(net, x, rec, 1e-12)
