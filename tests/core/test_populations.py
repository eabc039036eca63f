"""Populations (SPEC §1) and the distribution specs of per-neuron parameters."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom.populations import POPULATION_KINDS, RESETS

ALL_KINDS = [sl.SpikeInput, sl.LIF, sl.ALIF, sl.LI]
NEURON_KINDS = [sl.LIF, sl.ALIF, sl.LI]


# -- names and sizes --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_KINDS)
@pytest.mark.parametrize("name", ["", "1st", "a-b", "a b", "a.b", "a/b", "a\n", "\u00e4", None, 3, b"abc"])
def test_name_must_be_an_identifier(cls, name):
    with pytest.raises(ValueError, match=f"{cls.__name__} name must be an identifier"):
        cls(name, 3)


@pytest.mark.parametrize("name", ["a", "_x", "hidden_2", "L1", "A_b_C"])
def test_identifier_names_are_accepted(name):
    assert sl.LIF(name, 2).name == name


@pytest.mark.parametrize("cls", ALL_KINDS)
@pytest.mark.parametrize("n", [0, -1, 2.0, 2.5, "3", True, None, np.float64(3.0)])
def test_n_must_be_a_positive_integer(cls, n):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p': n must be an integer >= 1"):
        cls("p", n)


def test_numpy_integer_n_becomes_a_python_int():
    pop = sl.LIF("h", np.int64(7))
    assert pop.n == 7 and type(pop.n) is int


# -- defaults (SPEC §1) -----------------------------------------------------------------------


def test_lif_defaults():
    p = sl.LIF("h", 4)
    assert (p.tau_mem, p.tau_syn, p.v_thresh, p.refractory) == (20.0, 0.0, 1.0, 0.0)
    assert p.reset == "subtract"
    assert p.scale_input is False and p.train_tau_mem is False and p.train_tau_syn is False
    assert p.synapse == "delta"
    assert not p.heterogeneous


def test_alif_defaults_extend_lif():
    p = sl.ALIF("a", 4)
    assert (p.tau_mem, p.tau_syn, p.v_thresh, p.refractory) == (20.0, 0.0, 1.0, 0.0)
    assert p.tau_adapt == 2000.0
    assert p.beta == 0.0174
    assert p.reset == "subtract"


def test_li_defaults():
    p = sl.LI("out", 3)
    assert (p.tau_mem, p.tau_syn, p.bias) == (20.0, 0.0, 0.0)
    assert p.scale_input is False
    assert not hasattr(p, "v_thresh") and not hasattr(p, "reset")


def test_kinds_state_vars_and_spiking():
    assert POPULATION_KINDS == {"SpikeInput": sl.SpikeInput, "LIF": sl.LIF, "ALIF": sl.ALIF, "LI": sl.LI}
    assert sl.SpikeInput.state_vars == ()
    assert sl.LIF.state_vars == ("V", "I", "z")
    assert sl.ALIF.state_vars == ("V", "I", "a", "z")
    assert sl.LI.state_vars == ("V", "I")
    assert [c.spiking for c in ALL_KINDS] == [True, True, True, False]
    assert set(sl.ALIF.param_fields) == {"tau_mem", "tau_syn", "v_thresh", "refractory", "tau_adapt", "beta"}
    assert set(sl.LI.param_fields) == {"tau_mem", "tau_syn", "bias"}
    assert RESETS == ("subtract", "zero")


def test_optional_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        sl.LIF("h", 3, 10.0)


# -- parameter values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, field, value, message",
    [
        (sl.LIF, "tau_mem", 0.0, r"LIF 'p': tau_mem must be > 0, got 0.0"),
        (sl.LIF, "tau_mem", -5, r"LIF 'p': tau_mem must be > 0, got -5.0"),
        (sl.LIF, "tau_syn", -1.0, r"LIF 'p': tau_syn must be > 0, got -1.0 \(tau_syn=0 as a scalar selects a delta"),
        (sl.LIF, "tau_syn", [1.0, 0.0, 2.0], r"LIF 'p': tau_syn must be > 0, got an array with 1 such values"),
        (sl.LIF, "v_thresh", 0.0, r"LIF 'p': v_thresh must be > 0"),
        (sl.LIF, "v_thresh", [1.0, -1.0, -2.0], r"LIF 'p': v_thresh must be > 0, got an array with 2 such values"),
        (sl.LIF, "refractory", -0.1, r"LIF 'p': refractory must be >= 0"),
        (sl.ALIF, "tau_adapt", 0.0, r"ALIF 'p': tau_adapt must be > 0"),
        (sl.ALIF, "beta", -0.01, r"ALIF 'p': beta must be >= 0"),
        (sl.ALIF, "tau_mem", [20.0, 20.0, -1.0], r"ALIF 'p': tau_mem must be > 0"),
        (sl.LI, "tau_mem", -20.0, r"LI 'p': tau_mem must be > 0"),
        (sl.LI, "tau_syn", [0.0, 0.0, 0.0], r"LI 'p': tau_syn must be > 0, got an array with 3 such values"),
    ],
)
def test_parameter_bounds(cls, field, value, message):
    with pytest.raises(ValueError, match=message):
        cls("p", 3, **{field: value})


@pytest.mark.parametrize(
    "cls, field, value",
    [
        (sl.LIF, "tau_syn", 0.0),
        (sl.LIF, "refractory", 0.0),
        (sl.ALIF, "beta", 0.0),
        (sl.LI, "bias", -3.5),
        (sl.LI, "bias", [-1.0, 0.0, 1e300]),
        (sl.LIF, "tau_mem", 1e-300),
    ],
)
def test_parameter_boundary_values_are_accepted(cls, field, value):
    pop = cls("p", 3, **{field: value})
    got = getattr(pop, field)
    np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("cls", NEURON_KINDS)
@pytest.mark.parametrize(
    "value, message",
    [
        (True, r"tau_mem: expected a number, an array or a distribution, got a bool"),
        ("20", r"tau_mem: expected a number, an array or a distribution"),
        (None, r"tau_mem: expected a number"),
        ({"mean": 20}, r"tau_mem: expected a number"),
        (float("nan"), r"tau_mem: must be finite, got nan"),
        (float("inf"), r"tau_mem: must be finite, got inf"),
        ([20.0, float("nan"), 20.0], r"tau_mem: contains NaN or inf"),
        ([[20.0, 20.0, 20.0]], r"tau_mem: expected a 1-d array, got shape \(1, 3\)"),
        ([20.0, 20.0], r"tau_mem has 2 values but the population has n=3"),
        (np.full(4, 20.0), r"tau_mem has 4 values but the population has n=3"),
        (["a", "b", "c"], r"tau_mem: cannot be read as an array of float64"),
        (1 + 2j, r"tau_mem: expected a number|tau_mem: cannot be read"),
    ],
)
def test_bad_parameter_values_name_the_field(cls, value, message):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p': {message}"):
        cls("p", 3, tau_mem=value)


def test_numbers_become_python_floats():
    p = sl.LIF("h", 2, tau_mem=np.float32(10.0), v_thresh=2, refractory=np.int64(3))
    assert type(p.tau_mem) is float and p.tau_mem == 10.0
    assert type(p.v_thresh) is float and p.v_thresh == 2.0
    assert type(p.refractory) is float and p.refractory == 3.0


def test_arrays_are_float64_readonly_copies():
    source = np.array([5, 10, 15])
    p = sl.LIF("h", 3, tau_mem=source)
    assert p.tau_mem.dtype == np.float64
    assert not p.tau_mem.flags.writeable
    source[0] = 99
    np.testing.assert_array_equal(p.tau_mem, [5.0, 10.0, 15.0])
    with pytest.raises(ValueError, match="read-only"):
        p.tau_mem[0] = 1.0


def test_list_parameters_become_arrays():
    p = sl.ALIF("a", 2, beta=[0.0, 0.5])
    assert isinstance(p.beta, np.ndarray)
    np.testing.assert_array_equal(p.beta, [0.0, 0.5])


def test_distributions_are_kept_as_specs():
    g = sl.Gamma(20.0)
    p = sl.LIF("h", 5, tau_mem=g, v_thresh=sl.Normal(1.0, 0.1), refractory=sl.Uniform(0.0, 2.0))
    assert p.tau_mem is g
    assert isinstance(p.v_thresh, sl.Normal) and isinstance(p.refractory, sl.Uniform)


def test_distribution_specs_are_not_range_checked_until_drawn():
    # a Normal can draw negative values; that is checked on the drawn values when the network is built
    p = sl.LIF("h", 3, tau_mem=sl.Normal(-5.0, 1.0))
    assert isinstance(p.tau_mem, sl.Normal)


@pytest.mark.parametrize("cls", [sl.LIF, sl.ALIF])
@pytest.mark.parametrize("reset", ["none", "Subtract", "", None, 0])
def test_reset_must_be_known(cls, reset):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p': reset must be one of \('subtract', 'zero'\)"):
        cls("p", 2, reset=reset)


@pytest.mark.parametrize("cls", NEURON_KINDS)
@pytest.mark.parametrize("field", ["scale_input", "train_tau_mem", "train_tau_syn"])
@pytest.mark.parametrize("value", [1, 0, "yes", None, np.bool_(True)])
def test_flags_must_be_bool(cls, field, value):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p': {field} must be True or False"):
        cls("p", 2, tau_syn=5.0, **{field: value})


@pytest.mark.parametrize("cls", NEURON_KINDS)
def test_training_tau_syn_of_a_delta_synapse_is_an_error(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p': train_tau_syn=True needs an exponential synapse"):
        cls("p", 2, train_tau_syn=True)


@pytest.mark.parametrize("tau_syn", [5.0, [5.0, 6.0], sl.Gamma(10.0)])
def test_training_tau_syn_of_an_exponential_synapse_is_fine(tau_syn):
    assert sl.LIF("p", 2, tau_syn=tau_syn, train_tau_syn=True).train_tau_syn


@pytest.mark.parametrize(
    "tau_syn, synapse",
    [
        (0.0, "delta"),
        (0, "delta"),
        (-0.0, "delta"),
        (5.0, "exponential"),
        ([1.0, 2.0], "exponential"),
        (sl.Gamma(5.0), "exponential"),
        (sl.Uniform(1.0, 2.0), "exponential"),
    ],
)
def test_synapse_kind(tau_syn, synapse):
    assert sl.LIF("h", 2, tau_syn=tau_syn).synapse == synapse
    assert sl.LI("o", 2, tau_syn=tau_syn).synapse == synapse


def test_heterogeneous_flag():
    assert not sl.LIF("h", 2, tau_mem=10.0, refractory=2.0).heterogeneous
    assert sl.LIF("h", 2, tau_mem=[10.0, 11.0]).heterogeneous
    assert sl.LIF("h", 2, v_thresh=sl.Normal(1.0, 0.1)).heterogeneous
    assert sl.ALIF("a", 2, beta=[0.0, 0.1]).heterogeneous
    assert sl.LI("o", 2, tau_mem=[10.0, 20.0]).heterogeneous
    assert not sl.LI("o", 2, bias=[0.0, 1.0]).heterogeneous  # a per-neuron bias is a trained parameter anyway
    assert not sl.SpikeInput("i", 2).heterogeneous


# -- value semantics -----------------------------------------------------------------------------


def test_populations_are_frozen():
    p = sl.LIF("h", 3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.tau_mem = 5.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.n = 4


def test_equality_compares_arrays_by_value():
    a = sl.LIF("h", 3, tau_mem=[10.0, 20.0, 30.0])
    b = sl.LIF("h", 3, tau_mem=np.array([10, 20, 30]))
    assert a == b
    assert a != sl.LIF("h", 3, tau_mem=[10.0, 20.0, np.nextafter(30.0, 31.0)])
    assert a != sl.LIF("h", 3, tau_mem=20.0)
    assert sl.LIF("h", 3, tau_mem=20.0) != sl.LIF("h", 3, tau_mem=[20.0, 20.0, 20.0])
    assert a != sl.ALIF("h", 3, tau_mem=[10.0, 20.0, 30.0])
    assert sl.LIF("h", 3) != sl.LIF("g", 3)


def test_populations_are_hashable_and_equal_ones_hash_equal():
    a = sl.LIF("h", 3, tau_mem=[10.0, 20.0, 30.0], v_thresh=sl.Normal(1.0, 0.1))
    b = sl.LIF("h", 3, tau_mem=[10.0, 20.0, 30.0], v_thresh=sl.Normal(1.0, 0.1))
    assert hash(a) == hash(b)
    assert len({a, b, sl.LI("o", 2), sl.SpikeInput("i", 1)}) == 3


# -- distribution specs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sl.Gamma(0.0), r"Gamma.mean must be a finite number > 0"),
        (lambda: sl.Gamma(-1.0), r"Gamma.mean must be a finite number > 0"),
        (lambda: sl.Gamma(float("inf")), r"Gamma.mean must be a finite number > 0"),
        (lambda: sl.Gamma(float("nan")), r"Gamma.mean must be a finite number > 0"),
        (lambda: sl.Gamma(10.0, shape=0.0), r"Gamma.shape must be a finite number > 0"),
        (lambda: sl.Gamma("abc"), r"Gamma.mean must be a number, got 'abc'"),
        (lambda: sl.Gamma([1.0, 2.0]), r"Gamma.mean must be a number"),
        (lambda: sl.Gamma(True), r"Gamma.mean must be a number"),
        (lambda: sl.Gamma(None), r"Gamma.mean must be a number"),
        (lambda: sl.Normal(0.0, -1.0), r"Normal.std must be >= 0"),
        (lambda: sl.Normal(float("inf"), 1.0), r"Normal.mean must be finite"),
        (lambda: sl.Normal(0.0, float("nan")), r"Normal.std must be finite"),
        (lambda: sl.Normal("0", 1.0), r"Normal.mean must be a number"),
        (lambda: sl.Uniform(1.0, 1.0), r"Uniform needs low < high"),
        (lambda: sl.Uniform(2.0, 1.0), r"Uniform needs low < high"),
        (lambda: sl.Uniform(0.0, float("inf")), r"Uniform.high must be finite"),
        (lambda: sl.Uniform(float("-inf"), 0.0), r"Uniform.low must be finite"),
        (lambda: sl.Uniform(0.0, "1"), r"Uniform.high must be a number"),
    ],
)
def test_distribution_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_distribution_defaults_and_values():
    assert sl.Gamma(20).shape == 3.0 and sl.Gamma(20).mean == 20.0
    assert (sl.Normal().mean, sl.Normal().std) == (0.0, 1.0)
    assert (sl.Uniform().low, sl.Uniform().high) == (0.0, 1.0)
    assert sl.Normal(1.0, 0.0).std == 0.0
    assert sl.Gamma(np.float32(2.5)).mean == 2.5


def test_distribution_samples_have_the_requested_moments():
    rng = np.random.default_rng(0)
    g = sl.Gamma(20.0, shape=3.0).sample(rng, 20000)
    assert g.shape == (20000,) and g.dtype == np.float64 and g.min() > 0
    assert abs(g.mean() - 20.0) < 0.5
    assert abs(g.var() - 20.0**2 / 3.0) < 0.08 * 20.0**2 / 3.0
    u = sl.Uniform(-2.0, 3.0).sample(rng, 20000)
    assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.05
    n = sl.Normal(5.0, 0.5).sample(rng, 20000)
    assert abs(n.mean() - 5.0) < 0.02 and abs(n.std() - 0.5) < 0.02
