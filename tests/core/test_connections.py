"""Connections, connectivity kinds and weight initialisers (SPEC §2, §7) as values."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom.connectivity import CONNECTIVITY_KINDS, connectivity_from_dict


def _no_rng():
    raise AssertionError("this connectivity must not draw random numbers")


# -- Connection ---------------------------------------------------------------------------------


def test_defaults():
    c = sl.Connection("a", "b")
    assert c.name == "a_to_b"
    assert c.weight == sl.KaimingUniform()
    assert c.connectivity == sl.Dense()
    assert c.delay == 1
    assert c.trainable is True and c.allow_self is False
    assert not c.recurrent
    assert sl.Connection("h", "h").recurrent


@pytest.mark.parametrize("role", ["source", "target"])
@pytest.mark.parametrize("name", ["", "1a", "a-b", "a b", None, 5, "x\n"])
def test_endpoint_names_must_be_identifiers(role, name):
    kwargs = {"source": "a", "target": "b", role: name}
    with pytest.raises(ValueError, match=f"Connection {role} name must be an identifier"):
        sl.Connection(kwargs["source"], kwargs["target"])


@pytest.mark.parametrize("name", ["", "a-b", "a.weight", 3])
def test_connection_name_must_be_an_identifier(name):
    with pytest.raises(ValueError, match="Connection name must be an identifier"):
        sl.Connection("a", "b", name=name)


def test_explicit_name():
    assert sl.Connection("a", "b", name="ff2").name == "ff2"


@pytest.mark.parametrize(
    "weight, message",
    [
        (True, r"Connection.weight: expected a number, an array, a distribution or an initializer, got a bool"),
        (float("nan"), r"Connection.weight must be finite, got nan"),
        (float("-inf"), r"Connection.weight must be finite"),
        ("0.5", r"Connection.weight: expected a number, an array, a distribution \(Normal, Uniform\)"),
        (None, r"Connection.weight: expected a number"),
        ({"mean": 0.0}, r"Connection.weight: expected a number"),
        (np.zeros((2, 2, 2)), r"Connection.weight array must be \[N_pre, N_post\].*got shape \(2, 2, 2\)"),
        (np.array(0.5), r"Connection.weight array must be \[N_pre, N_post\]"),
        (np.array([[0.0, np.nan]]), r"Connection.weight: contains NaN or inf"),
        ([["a", "b"]], r"Connection.weight: cannot be read as an array of float64"),
        (np.zeros(3), r"Connection 'a_to_b': a 1-d weight array needs Explicit connectivity"),
    ],
)
def test_bad_weights_name_the_field(weight, message):
    with pytest.raises(ValueError, match=message):
        sl.Connection("a", "b", weight=weight)


def test_weight_kinds_are_normalised():
    assert sl.Connection("a", "b", weight=1).weight == 1.0
    assert type(sl.Connection("a", "b", weight=np.float32(0.25)).weight) is float
    w = np.array([[1, 2], [3, 4]])
    c = sl.Connection("a", "b", weight=w)
    assert c.weight.dtype == np.float64 and not c.weight.flags.writeable
    w[0, 0] = 100
    assert c.weight[0, 0] == 1.0
    spec = sl.Normal(0.0, 0.1)
    assert sl.Connection("a", "b", weight=spec).weight is spec
    assert sl.Connection("a", "b", weight=sl.KaimingUniform(gain=2)).weight.gain == 2.0


def test_one_d_weight_with_explicit_is_accepted():
    c = sl.Connection("a", "b", weight=[0.1, 0.2], connectivity=sl.Explicit([0, 1], [1, 0]))
    np.testing.assert_array_equal(c.weight, [0.1, 0.2])


@pytest.mark.parametrize("conn", ["dense", [np.array([0]), np.array([1])], None, 0.5, (np.array([0]),)])
def test_bad_connectivity(conn):
    with pytest.raises(ValueError, match=r"Connection.connectivity must be Dense\(\), FixedProbability\(p\), Explicit"):
        sl.Connection("a", "b", connectivity=conn)


def test_tuple_connectivity_becomes_explicit():
    c = sl.Connection("a", "b", connectivity=([0, 2], [1, 1]))
    assert c.connectivity == sl.Explicit(np.array([0, 2]), np.array([1, 1]))


@pytest.mark.parametrize("delay", [0, -1, 1.0, 1.5, True, "2", None])
def test_delay_must_be_an_integer_of_at_least_one_step(delay):
    with pytest.raises(ValueError, match=r"Connection a->b: delay must be an integer >= 1 \(steps\)"):
        sl.Connection("a", "b", delay=delay)


def test_numpy_integer_delay_becomes_int():
    c = sl.Connection("a", "b", delay=np.int32(3))
    assert c.delay == 3 and type(c.delay) is int


@pytest.mark.parametrize("field", ["trainable", "allow_self"])
@pytest.mark.parametrize("value", [1, 0, "no", None])
def test_flags_must_be_bool(field, value):
    with pytest.raises(ValueError, match=rf"Connection a->b: {field} must be True or False"):
        sl.Connection("a", "b", **{field: value})


def test_connections_are_frozen_hashable_values():
    a = sl.Connection("a", "b", weight=np.ones((2, 3)), connectivity=sl.Dense(), delay=2)
    b = sl.Connection("a", "b", weight=np.ones((2, 3)), connectivity=sl.Dense(), delay=2)
    assert a == b and hash(a) == hash(b)
    assert a != sl.Connection("a", "b", weight=np.ones((2, 3)), delay=3)
    assert a != sl.Connection("a", "b", weight=np.full((2, 3), np.nextafter(1.0, 2.0)), delay=2)
    assert a != sl.Connection("a", "b", weight=1.0, delay=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.delay = 5


# -- connectivity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, -0.1, 1.0000001, 2, float("nan"), float("inf")])
def test_fixed_probability_range(p):
    with pytest.raises(ValueError, match=r"FixedProbability.p must be in \(0, 1\]"):
        sl.FixedProbability(p)


@pytest.mark.parametrize("p", ["0.5", None, True, [0.5]])
def test_fixed_probability_type(p):
    with pytest.raises(ValueError, match=r"FixedProbability.p must be a number"):
        sl.FixedProbability(p)


def test_fixed_probability_accepts_one():
    assert sl.FixedProbability(1).p == 1.0


def test_dense_mask_and_fixed_probability_mask():
    m = sl.Dense().mask(3, 4, _no_rng, "c")
    assert m.shape == (3, 4) and m.dtype == bool and m.all()
    fp = sl.FixedProbability(0.25)
    m1 = fp.mask(60, 50, lambda: np.random.default_rng(1), "c")
    m2 = fp.mask(60, 50, lambda: np.random.default_rng(1), "c")
    np.testing.assert_array_equal(m1, m2)
    assert m1.dtype == bool and m1.shape == (60, 50)
    assert 0.2 < m1.mean() < 0.3
    assert not np.array_equal(m1, fp.mask(60, 50, lambda: np.random.default_rng(2), "c"))


@pytest.mark.parametrize(
    "pre, post, message",
    [
        ([[0, 1]], [0, 1], r"Explicit.pre must be a 1-d array of neuron indices, got shape \(1, 2\)"),
        ([0, 1], 3, r"Explicit.post must be a 1-d array of neuron indices, got shape \(\)"),
        ([0.5, 1.0], [0, 1], r"Explicit.pre must hold integers, got dtype float64"),
        ([0.0, np.nan], [0, 1], r"Explicit.pre must hold integers"),
        ([True, False], [0, 1], r"Explicit.pre must hold integers, got dtype bool"),
        ([0, 1], ["a", "b"], r"Explicit.post must hold integers"),
        ([0, 1], [0], r"Explicit.pre and Explicit.post must have equal length, got 2 and 1"),
        ([], [], r"Explicit connectivity needs at least one synapse"),
        ([0, -1], [0, 1], r"Explicit.pre and Explicit.post must be >= 0"),
        ([0, 1], [-3, 1], r"Explicit.pre and Explicit.post must be >= 0"),
        ([0, 1, 0], [2, 2, 2], r"Explicit connectivity lists a \(pre, post\) pair more than once"),
    ],
)
def test_explicit_validation(pre, post, message):
    with pytest.raises(ValueError, match=message):
        sl.Explicit(pre, post)


def test_explicit_indices_are_int64_readonly_copies():
    pre = np.array([0.0, 2.0])
    e = sl.Explicit(pre, np.array([1, 0], dtype=np.uint8))
    assert e.pre.dtype == np.int64 and e.post.dtype == np.int64
    assert not e.pre.flags.writeable
    pre[0] = 5
    np.testing.assert_array_equal(e.pre, [0, 2])


def test_explicit_same_pre_different_post_is_not_a_duplicate():
    e = sl.Explicit([0, 0, 1], [0, 1, 0])
    assert e.pre.size == 3


def test_explicit_mask_and_range_checks():
    e = sl.Explicit([0, 2, 1], [1, 0, 1])
    m = e.mask(3, 2, _no_rng, "Connection 'c'")
    expected = np.zeros((3, 2), dtype=bool)
    expected[[0, 2, 1], [1, 0, 1]] = True
    np.testing.assert_array_equal(m, expected)
    with pytest.raises(
        ValueError, match=r"Connection 'c': Explicit.pre index 2 out of range for a source of 2 neurons"
    ):
        e.mask(2, 2, _no_rng, "Connection 'c'")
    with pytest.raises(
        ValueError, match=r"Connection 'c': Explicit.post index 1 out of range for a target of 1 neurons"
    ):
        e.mask(3, 1, _no_rng, "Connection 'c'")


def test_connectivity_to_dict_and_back():
    for c in (sl.Dense(), sl.FixedProbability(0.3), sl.Explicit([3, 1], [0, 2])):
        d = c.to_dict()
        assert d["kind"] in CONNECTIVITY_KINDS
        assert connectivity_from_dict(d, "c") == c
    assert sl.Explicit([3, 1], [0, 2]).to_dict() == {"kind": "explicit", "pre": [3, 1], "post": [0, 2]}
    assert sl.FixedProbability(0.3).to_dict() == {"kind": "fixed_probability", "p": 0.3}


@pytest.mark.parametrize(
    "obj, message",
    [
        (
            {"kind": "ring"},
            r"where: connectivity must be a dict with kind in \['dense', 'explicit', 'fixed_probability'\]",
        ),
        ("dense", r"where: connectivity must be a dict"),
        ({"kind": "dense", "p": 0.5}, r"where: bad connectivity arguments"),
        ({"kind": "fixed_probability"}, r"where: bad connectivity arguments"),
        ({"kind": "fixed_probability", "p": 0.0}, r"FixedProbability.p must be in"),
    ],
)
def test_connectivity_from_dict_errors(obj, message):
    with pytest.raises(ValueError, match=message):
        connectivity_from_dict(obj, "where")


# -- initialisers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [0.0, -1.0, float("nan"), float("inf")])
def test_kaiming_gain_range(gain):
    with pytest.raises(ValueError, match=r"KaimingUniform.gain must be a finite number > 0"):
        sl.KaimingUniform(gain)


@pytest.mark.parametrize("gain", ["2", True, None])
def test_kaiming_gain_type(gain):
    with pytest.raises(ValueError, match=r"KaimingUniform.gain must be a number"):
        sl.KaimingUniform(gain)


@pytest.mark.parametrize("fan_in, gain", [(1.0, 1.0), (16.0, 1.0), (100.0, 3.0), (7.5, 0.5)])
def test_kaiming_sample_bound(fan_in, gain):
    w = sl.KaimingUniform(gain).sample(np.random.default_rng(0), 5000, fan_in=fan_in)
    bound = gain / math.sqrt(fan_in)
    assert w.shape == (5000,)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert w.min() < -0.9 * bound  # symmetric, not U(0, bound)


def test_kaiming_fan_in_below_one_is_clamped():
    w = sl.KaimingUniform().sample(np.random.default_rng(0), 1000, fan_in=0.0)
    assert np.abs(w).max() <= 1.0 and np.abs(w).max() > 0.99


def test_kaiming_to_dict():
    assert sl.KaimingUniform(2.0).to_dict() == {"initializer": "KaimingUniform", "gain": 2.0}
