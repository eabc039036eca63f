"""Adam (SPEC §6): the update against a hand loop, defaults, validation and its saved state."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spikeloom as sl


def hand_adam(params, grad_seq, *, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """The SPEC's Adam, one scalar at a time in Python floats."""
    out = []
    state = {k: (np.asarray(p, dtype=np.float64).ravel().tolist()) for k, p in params.items()}
    m = {k: [0.0] * len(v) for k, v in state.items()}
    v = {k: [0.0] * len(x) for k, x in state.items()}
    for t, grads in enumerate(grad_seq, start=1):
        for k, g in grads.items():
            flat = np.asarray(g, dtype=np.float64).ravel().tolist()
            for i, gi in enumerate(flat):
                m[k][i] = b1 * m[k][i] + (1 - b1) * gi
                v[k][i] = b2 * v[k][i] + (1 - b2) * gi * gi
                mhat = m[k][i] / (1 - b1**t)
                vhat = v[k][i] / (1 - b2**t)
                state[k][i] = state[k][i] - lr * mhat / (math.sqrt(vhat) + eps)
        out.append({k: np.array(x).reshape(np.shape(params[k])) for k, x in state.items()})
    return out


def make_problem(seed=0, steps=6):
    rng = np.random.default_rng(seed)
    params = {"a.weight": rng.normal(size=(3, 4)), "b.bias": rng.normal(size=(5,))}
    grads = [
        {k: rng.normal(scale=10.0 ** rng.integers(-4, 2), size=v.shape) for k, v in params.items()}
        for _ in range(steps)
    ]
    return params, grads


def test_defaults_follow_the_spec():
    opt = sl.Adam()
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert opt.t == 0 and opt.m == {} and opt.v == {}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"lr": 0.05}, {"lr": 0.3, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3}, {"beta1": 0.0}],
)
def test_matches_hand_loop_over_several_steps(kwargs):
    params, grads = make_problem(1, steps=7)
    hk = {
        "lr": kwargs.get("lr", 1e-3),
        "b1": kwargs.get("beta1", 0.9),
        "b2": kwargs.get("beta2", 0.999),
        "eps": kwargs.get("eps", 1e-8),
    }
    expected = hand_adam(params, grads, **hk)
    opt = sl.Adam(**kwargs)
    live = {k: v.copy() for k, v in params.items()}
    for t, g in enumerate(grads):
        opt.step(live, g)
        assert opt.t == t + 1
        for k in live:
            np.testing.assert_allclose(live[k], expected[t][k], rtol=0, atol=1e-15)
            assert live[k].dtype == np.float64 and live[k].shape == params[k].shape


def test_first_step_moves_each_entry_by_about_lr():
    # with bias correction the first step is lr * g / (|g| + eps): almost exactly lr * sign(g)
    params = {"w": np.zeros(4)}
    g = np.array([3.0, -0.01, 1e-3, -200.0])
    opt = sl.Adam(lr=0.1)
    opt.step(params, {"w": g})
    np.testing.assert_allclose(params["w"], -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(params["w"], -0.1 * np.sign(g), rtol=1e-5)


def test_moments_are_stored_per_parameter():
    params, grads = make_problem(2, steps=2)
    opt = sl.Adam()
    opt.step({k: v.copy() for k, v in params.items()}, grads[0])
    opt.step({k: v.copy() for k, v in params.items()}, grads[1])
    for k in params:
        m = 0.9 * (0.1 * grads[0][k]) + 0.1 * grads[1][k]
        v = 0.999 * (0.001 * grads[0][k] ** 2) + 0.001 * grads[1][k] ** 2
        np.testing.assert_allclose(opt.m[k], m, rtol=1e-14)
        np.testing.assert_allclose(opt.v[k], v, rtol=1e-14)


def test_parameters_without_gradient_are_untouched_and_inputs_not_mutated():
    params, grads = make_problem(3, steps=1)
    params["frozen"] = np.arange(3.0)
    frozen = params["frozen"]
    originals = {k: v.copy() for k, v in params.items()}
    arrays_before = dict(params)
    opt = sl.Adam(lr=0.1)
    opt.step(params, grads[0])
    assert params["frozen"] is frozen and np.array_equal(frozen, originals["frozen"])
    assert "frozen" not in opt.m
    for k in grads[0]:
        # entries are replaced by new arrays; the old arrays keep their values
        assert np.array_equal(arrays_before[k], originals[k])
        assert not np.array_equal(params[k], originals[k])


def test_zero_gradients_leave_masked_entries_exactly_zero():
    rng = np.random.default_rng(4)
    mask = rng.random((6, 5)) < 0.4
    w = np.where(mask, rng.normal(size=(6, 5)), 0.0)
    params = {"c.weight": w}
    opt = sl.Adam(lr=0.5)
    for _ in range(20):
        g = np.where(mask, rng.normal(size=(6, 5)), 0.0)
        opt.step(params, {"c.weight": g})
    out = params["c.weight"]
    assert np.all(out[~mask] == 0.0)
    assert not np.any(np.signbit(out[~mask]))
    assert np.all(opt.m["c.weight"][~mask] == 0.0) and np.all(opt.v["c.weight"][~mask] == 0.0)
    assert np.all(out[mask] != w[mask])


def test_all_zero_gradient_changes_nothing():
    params = {"w": np.array([1.5, -2.0, 0.0])}
    opt = sl.Adam(lr=1.0)
    for _ in range(3):
        opt.step(params, {"w": np.zeros(3)})
    np.testing.assert_array_equal(params["w"], [1.5, -2.0, 0.0])


def test_float32_parameters_stay_float32():
    params = {"w": np.ones(4, dtype=np.float32)}
    opt = sl.Adam(lr=0.01)
    opt.step(params, {"w": np.array([1, -1, 2, 0], dtype=np.float32)})
    assert params["w"].dtype == np.float32
    np.testing.assert_allclose(params["w"], [0.99, 1.01, 0.99, 1.0], rtol=1e-6)


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, bad",
    [
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("eps", 0.0),
        ("eps", -1e-8),
        ("eps", float("nan")),
        ("beta1", 1.0),
        ("beta1", -0.1),
        ("beta1", 1.5),
        ("beta1", float("nan")),
        ("beta2", 1.0),
        ("beta2", -1e-9),
        ("beta2", float("inf")),
    ],
)
def test_bad_hyper_parameters(field, bad):
    with pytest.raises(ValueError, match=rf"Adam\.{field}"):
        sl.Adam(**{field: bad})


def test_boundary_hyper_parameters_are_accepted():
    opt = sl.Adam(lr=1e-12, beta1=0.0, beta2=0.0, eps=1e-300)
    assert opt.beta1 == 0.0 and opt.beta2 == 0.0


# -- saved state ----------------------------------------------------------------------------------------


def test_state_dict_contents():
    params, grads = make_problem(5, steps=3)
    opt = sl.Adam(lr=0.02, beta1=0.8)
    for g in grads:
        opt.step(params, g)
    scalars, arrays = opt.state_dict()
    assert scalars == {"lr": 0.02, "beta1": 0.8, "beta2": 0.999, "eps": 1e-8, "t": 3}
    assert set(arrays) == {"m/a.weight", "v/a.weight", "m/b.bias", "v/b.bias"}
    for k in params:
        np.testing.assert_array_equal(arrays[f"m/{k}"], opt.m[k])
        np.testing.assert_array_equal(arrays[f"v/{k}"], opt.v[k])
        assert isinstance(arrays[f"m/{k}"], np.ndarray)


def test_state_dict_round_trip_continues_identically():
    params, grads = make_problem(6, steps=8)
    a = sl.Adam(lr=0.05, beta2=0.99)
    pa = {k: v.copy() for k, v in params.items()}
    for g in grads[:4]:
        a.step(pa, g)
    scalars, arrays = a.state_dict()
    # a fresh optimiser with other settings takes everything from the state
    b = sl.Adam(lr=0.9, beta1=0.1)
    b.load_state_dict(dict(scalars), {k: v.copy() for k, v in arrays.items()})
    assert (b.lr, b.beta1, b.beta2, b.eps, b.t) == (0.05, 0.9, 0.99, 1e-8, 4)
    pb = {k: v.copy() for k, v in pa.items()}
    for g in grads[4:]:
        a.step(pa, g)
        b.step(pb, g)
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    # and both still agree with the hand loop over all eight steps
    expected = hand_adam(params, grads, lr=0.05, b2=0.99)[-1]
    for k in pa:
        np.testing.assert_allclose(pb[k], expected[k], rtol=0, atol=1e-15)


def test_load_with_from_host_and_empty_state():
    opt = sl.Adam()
    opt.step({"w": np.zeros(2)}, {"w": np.ones(2)})
    seen = []

    def from_host(a):
        seen.append(a.shape)
        return a * 1.0

    opt.load_state_dict({"t": 0}, {}, from_host)
    assert opt.t == 0 and opt.m == {} and opt.v == {} and seen == []
    opt.load_state_dict({"t": 2}, {"m/w": np.ones(2), "v/w": np.ones(2)}, from_host)
    assert seen == [(2,), (2,)] and opt.t == 2


@pytest.mark.parametrize(
    "scalars, arrays, match",
    [
        ({"t": -1}, {}, "'t'"),
        ({"t": 2.0}, {}, "'t'"),
        ({"t": True}, {}, "'t'"),
        ({"t": "3"}, {}, "'t'"),
        ({"t": None}, {}, "'t'"),
        ({"lr": 0.0, "t": 1}, {}, r"Adam\.lr"),
        ({"lr": -1.0, "t": 1}, {}, r"Adam\.lr"),
        ({"beta1": 1.0, "t": 1}, {}, r"Adam\.beta1"),
        ({"beta2": float("nan"), "t": 1}, {}, r"Adam\.beta2"),
        ({"eps": 0.0, "t": 1}, {}, r"Adam\.eps"),
        ({"t": 1}, {"w": np.zeros(2)}, "unexpected array"),
        ({"t": 1}, {"x/w": np.zeros(2)}, "unexpected array"),
        ({"t": 1}, {"m/": np.zeros(2)}, "unexpected array"),
        ({"t": 1}, {"m/w": np.zeros(2)}, "moments"),
        ({"t": 1}, {"m/w": np.zeros(2), "v/u": np.zeros(2)}, "moments"),
    ],
)
def test_malformed_state_raises(scalars, arrays, match):
    with pytest.raises(ValueError, match=match):
        sl.Adam().load_state_dict(scalars, arrays)


def test_malformed_scalar_type_is_a_value_error():
    with pytest.raises(ValueError, match=r"lr"):
        sl.Adam().load_state_dict({"lr": None, "t": 1}, {})
