"""Surrogate derivatives (SPEC §5): values at hand-computed points, derivative identities, validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import spikeloom as sl
from spikeloom.surrogates import SURROGATES, surrogate_from_dict


def ev(surrogate, x, v_thresh=1.0, dtype=np.float64):
    return surrogate(np.asarray(x, dtype=dtype), v_thresh)


# -- SuperSpike: 1 / (beta |x| + 1)^2 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "beta, x, expected",
    [
        (10.0, 0.0, 1.0),
        (10.0, 0.1, 0.25),  # 1/(1+1)^2
        (10.0, -0.1, 0.25),
        (10.0, -0.3, 1.0 / 16.0),  # 1/(3+1)^2
        (10.0, 2.0, 1.0 / 441.0),  # 1/(20+1)^2
        (100.0, 0.01, 0.25),
        (100.0, -0.04, 1.0 / 25.0),
        (0.5, 2.0, 0.25),
    ],
)
def test_superspike_values(beta, x, expected):
    got = ev(sl.SuperSpike(beta), [x])
    assert got[0] == pytest.approx(expected, rel=1e-14, abs=0)


def test_superspike_default_beta_and_ignores_threshold():
    s = sl.SuperSpike()
    assert s.beta == 10.0
    x = np.array([-0.7, 0.0, 0.2, 3.0])
    np.testing.assert_allclose(s(x, 1.0), s(x, 0.3), rtol=0, atol=0)
    np.testing.assert_allclose(s(x, 1.0), [1 / 64, 1.0, 1 / 9, 1 / 961], rtol=1e-14)


# -- Triangle: (gamma / v_thresh) max(0, 1 - |x| / v_thresh) ------------------------------------------


@pytest.mark.parametrize(
    "gamma, v_thresh, x, expected",
    [
        (0.3, 1.0, 0.0, 0.3),
        (0.3, 1.0, 0.5, 0.15),
        (0.3, 1.0, -0.25, 0.225),
        (0.3, 1.0, 1.0, 0.0),  # edge of the support
        (0.3, 1.0, -1.0, 0.0),
        (0.3, 1.0, 1.5, 0.0),  # beyond the support
        (0.3, 1.0, -7.0, 0.0),
        (0.3, 0.5, 0.0, 0.6),  # gamma / v_thresh
        (0.3, 0.5, 0.25, 0.3),
        (0.3, 0.5, -0.125, 0.45),
        (0.3, 0.5, 0.5, 0.0),
        (0.3, 0.5, 0.6, 0.0),  # inside v_thresh=1's support, outside this one
        (0.3, 0.5, -0.9, 0.0),
        (1.0, 2.0, 1.0, 0.25),  # (1/2)(1 - 1/2)
        (1.0, 2.0, -3.0, 0.0),
        (0.6, 0.6, 0.3, 0.5),  # (0.6/0.6)(1 - 0.5)
    ],
)
def test_triangle_values(gamma, v_thresh, x, expected):
    got = ev(sl.Triangle(gamma), [x], v_thresh)
    assert got[0] == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert got[0] >= 0.0


def test_triangle_default_gamma():
    assert sl.Triangle().gamma == 0.3


def test_triangle_per_neuron_threshold_broadcasts():
    x = np.array([[0.0, 0.25, 0.6], [-0.1, 1.5, -0.2]])
    v_thresh = np.array([1.0, 0.5, 2.0])
    got = sl.Triangle(0.3)(x, v_thresh)
    expected = np.empty_like(x)
    for i in range(2):
        for j in range(3):
            vt = v_thresh[j]
            expected[i, j] = (0.3 / vt) * max(0.0, 1.0 - abs(x[i, j]) / vt)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)
    # spot values by hand
    assert got[0, 1] == pytest.approx(0.3)  # 0.6 * (1 - 0.5)
    assert got[1, 1] == 0.0
    assert got[0, 2] == pytest.approx(0.15 * 0.7)


# -- Sigmoid: d/dx sigmoid(slope x) ------------------------------------------------------------------


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_sigmoid_values_by_hand():
    s = sl.Sigmoid()
    assert s.slope == 25.0
    assert ev(s, [0.0])[0] == pytest.approx(25.0 / 4.0, rel=1e-14)
    # at slope*x = 1: slope * e^-1 / (1 + e^-1)^2
    e = math.exp(-1.0)
    assert ev(s, [0.04])[0] == pytest.approx(25.0 * e / (1.0 + e) ** 2, rel=1e-12)
    assert ev(s, [-0.04])[0] == pytest.approx(25.0 * e / (1.0 + e) ** 2, rel=1e-12)
    assert ev(sl.Sigmoid(2.0), [0.0])[0] == pytest.approx(0.5, rel=1e-14)


@pytest.mark.parametrize("slope", [1.0, 5.0, 25.0, 100.0])
@pytest.mark.parametrize("x", [-0.3, -0.05, 0.0, 0.013, 0.2, 0.7])
def test_sigmoid_is_derivative_of_sigmoid_central_difference(slope, x):
    h = 1e-6 / slope
    # sigmoid(z) - sigmoid(z') == sigmoid(-z') - sigmoid(-z): difference the small tail for accuracy
    if x > 0:
        fd = (_sig(-slope * (x - h)) - _sig(-slope * (x + h))) / (2 * h)
    else:
        fd = (_sig(slope * (x + h)) - _sig(slope * (x - h))) / (2 * h)
    got = ev(sl.Sigmoid(slope), [x], v_thresh=0.37)[0]
    assert got == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_sigmoid_is_symmetric_and_ignores_threshold():
    x = np.linspace(-0.5, 0.5, 11)
    s = sl.Sigmoid(25.0)
    np.testing.assert_allclose(s(x, 1.0), s(-x, 1.0), rtol=1e-9)
    np.testing.assert_array_equal(s(x, 1.0), s(x, 0.4))


@pytest.mark.parametrize("dtype, x", [(np.float32, -5.0), (np.float64, -40.0)])
def test_sigmoid_far_below_threshold_is_finite_without_warnings(dtype, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ev(sl.Sigmoid(25.0), [x, -x], dtype=dtype)
    assert np.all(np.isfinite(got)) and np.all(got >= 0) and np.all(got < 1e-30)


# -- Atan: d/dx (1/pi) arctan(pi/2 alpha x) --------------------------------------------------------


def test_atan_values_by_hand():
    a = sl.Atan()
    assert a.alpha == 2.0
    assert ev(a, [0.0])[0] == pytest.approx(1.0, rel=1e-14)  # alpha / 2
    # pi/2 * 2 * (1/pi) = 1  ->  1 / (1 + 1)
    assert ev(a, [1.0 / math.pi])[0] == pytest.approx(0.5, rel=1e-14)
    assert ev(a, [-3.0 / math.pi])[0] == pytest.approx(0.1, rel=1e-14)  # 1 / (1 + 9)
    assert ev(sl.Atan(4.0), [0.0])[0] == pytest.approx(2.0, rel=1e-14)
    # alpha=4, x=1/(2 pi): pi/2 * 4 / (2 pi) = 1  ->  2 / 2
    assert ev(sl.Atan(4.0), [1.0 / (2 * math.pi)])[0] == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 10.0])
@pytest.mark.parametrize("x", [-1.0, -0.1, 0.0, 0.05, 0.4, 3.0])
def test_atan_is_derivative_of_arctan_central_difference(alpha, x):
    def f(u):
        return math.atan(math.pi / 2 * alpha * u) / math.pi

    h = 1e-6
    fd = (f(x + h) - f(x - h)) / (2 * h)
    got = ev(sl.Atan(alpha), [x], v_thresh=0.6)[0]
    assert got == pytest.approx(fd, rel=1e-7, abs=1e-10)


# -- common behaviour ---------------------------------------------------------------------------------


@pytest.mark.parametrize("surrogate", [sl.SuperSpike(), sl.Triangle(), sl.Sigmoid(), sl.Atan()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_keeps_shape_and_dtype(surrogate, dtype):
    x = np.linspace(-2, 2, 24, dtype=dtype).reshape(2, 3, 4)
    got = surrogate(x, 1.0)
    assert got.shape == x.shape and got.dtype == dtype
    # elementwise: each entry equals the surrogate of that entry alone
    for idx in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        assert got[idx] == pytest.approx(surrogate(np.array([x[idx]], dtype=dtype), 1.0)[0], rel=1e-6)
    assert np.all(got >= 0) and np.all(np.isfinite(got))


@pytest.mark.parametrize(
    "cls, field",
    [(sl.SuperSpike, "beta"), (sl.Triangle, "gamma"), (sl.Sigmoid, "slope"), (sl.Atan, "alpha")],
)
@pytest.mark.parametrize("bad", [0, 0.0, -1.0, -1e-9, float("nan"), float("inf"), -float("inf")])
def test_invalid_parameters_raise_naming_the_field(cls, field, bad):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}"):
        cls(bad)
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}"):
        cls(**{field: bad})


def test_parameters_are_converted_to_float():
    s = sl.SuperSpike(100)
    assert isinstance(s.beta, float) and s.beta == 100.0
    assert sl.Triangle(np.float32(0.5)).gamma == 0.5


# -- dict round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surrogate, expected",
    [
        (sl.SuperSpike(100.0), {"kind": "superspike", "beta": 100.0}),
        (sl.Triangle(0.5), {"kind": "triangle", "gamma": 0.5}),
        (sl.Sigmoid(7.0), {"kind": "sigmoid", "slope": 7.0}),
        (sl.Atan(3.0), {"kind": "atan", "alpha": 3.0}),
    ],
)
def test_to_dict_and_round_trip(surrogate, expected):
    d = surrogate.to_dict()
    assert d == expected
    back = surrogate_from_dict(d)
    assert back == surrogate and type(back) is type(surrogate)
    x = np.array([-0.4, 0.0, 0.3])
    np.testing.assert_array_equal(back(x, 0.8), surrogate(x, 0.8))


def test_surrogates_registry():
    assert set(SURROGATES) == {"superspike", "triangle", "sigmoid", "atan"}


def test_from_dict_defaults_when_only_kind_given():
    assert surrogate_from_dict({"kind": "superspike"}) == sl.SuperSpike(10.0)
    assert surrogate_from_dict({"kind": "triangle"}) == sl.Triangle(0.3)
    assert surrogate_from_dict({"kind": "sigmoid"}) == sl.Sigmoid(25.0)
    assert surrogate_from_dict({"kind": "atan"}) == sl.Atan(2.0)


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "heaviside"},
        {"kind": "SuperSpike"},
        {"beta": 10.0},
        {},
        {"kind": None},
        "superspike",
        None,
        [("kind", "superspike")],
    ],
)
def test_from_dict_bad_kind(obj):
    with pytest.raises(ValueError, match="kind"):
        surrogate_from_dict(obj)


def test_from_dict_unhashable_kind_is_a_value_error():
    with pytest.raises(ValueError, match="kind"):
        surrogate_from_dict({"kind": ["superspike"]})


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"kind": "triangle", "width": 1.0}, "triangle"),
        ({"kind": "superspike", "gamma": 0.3}, "superspike"),
        ({"kind": "superspike", "beta": -1.0}, r"SuperSpike\.beta"),
        ({"kind": "atan", "alpha": 0.0}, r"Atan\.alpha"),
        ({"kind": "sigmoid", "slope": float("nan")}, r"Sigmoid\.slope"),
    ],
)
def test_from_dict_bad_fields(obj, match):
    with pytest.raises(ValueError, match=match):
        surrogate_from_dict(obj)


def test_surrogates_are_frozen_values():
    s = sl.SuperSpike(10.0)
    assert s == sl.SuperSpike(10) and s != sl.SuperSpike(11.0) and hash(s) == hash(sl.SuperSpike(10.0))
    with pytest.raises(AttributeError):
        s.beta = 5.0  # type: ignore[misc]
