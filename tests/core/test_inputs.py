"""Bad input to a compiled network (spikes, record requests, parameters), through the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl


@pytest.fixture(scope="module")
def compiled():
    net = sl.Network(
        [
            sl.SpikeInput("inp", 3),
            sl.ALIF("hid", 4, tau_syn=5.0, train_tau_mem=True, train_tau_syn=True),
            sl.LI("out", 2),
        ],
        [sl.Connection("inp", "hid", weight=0.6), sl.Connection("hid", "hid", weight=0.1), sl.Connection("hid", "out")],
        seed=1,
    )
    return sl.get_backend("numpy").compile(net, dtype="float64")


@pytest.fixture(scope="module")
def two_inputs():
    net = sl.Network(
        [sl.SpikeInput("a", 3), sl.SpikeInput("b", 2), sl.LIF("h", 4)],
        [sl.Connection("a", "h"), sl.Connection("b", "h")],
    )
    return sl.get_backend("numpy").compile(net, dtype="float32")


@pytest.fixture
def fresh(compiled):
    """The module's compiled network with its parameters restored after the test."""
    saved = compiled.get_params()
    yield compiled
    compiled.set_params(saved)


def spikes(T=5, B=2, N=3, seed=0):
    return (np.random.default_rng(seed).random((T, B, N)) < 0.5).astype(np.float64)


# -- good input, as the baseline the errors are measured against ---------------------------------


def test_good_input_records_every_state_by_default(compiled):
    rec = compiled.simulate(spikes())
    assert set(rec) == {"hid", "out"}
    assert set(rec["hid"]) == {"V", "I", "a", "z"} and set(rec["out"]) == {"V", "I"}
    assert rec["hid"]["V"].shape == (5, 2, 4) and rec["out"]["V"].shape == (5, 2, 2)
    assert rec["hid"]["V"].dtype == np.float64


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint16, np.int64, np.float32, np.float64])
def test_bool_integer_and_float_spikes_are_equivalent(compiled, dtype):
    x = spikes()
    expected = compiled.simulate(x)["hid"]["V"]
    np.testing.assert_array_equal(compiled.simulate(x.astype(dtype))["hid"]["V"], expected)


def test_nested_lists_are_accepted(compiled):
    x = spikes(T=2, B=1)
    np.testing.assert_array_equal(compiled.simulate(x.tolist())["out"]["V"], compiled.simulate(x)["out"]["V"])


def test_a_dict_for_a_single_input(compiled):
    x = spikes()
    np.testing.assert_array_equal(compiled.simulate({"inp": x})["hid"]["V"], compiled.simulate(x)["hid"]["V"])


# -- bad spikes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((5, 3)), r"x\['inp'\]: expected shape \[T, B, N\] \(time-major\), got 2-d shape \(5, 3\)"),
        (np.zeros(3), r"x\['inp'\]: expected shape \[T, B, N\] \(time-major\), got 1-d"),
        (np.zeros((5, 2, 3, 1)), r"x\['inp'\]: expected shape \[T, B, N\] \(time-major\), got 4-d"),
        (1.0, r"x\['inp'\]: expected shape \[T, B, N\] \(time-major\), got 0-d"),
        (np.zeros((5, 2, 4)), r"x\['inp'\]: expected N=3 input channels in the last axis, got shape \(5, 2, 4\)"),
        (np.zeros((3, 2, 5)), r"x\['inp'\]: expected N=3 input channels"),
        (np.zeros((0, 2, 3)), r"x\['inp'\]: needs at least one step and one batch element"),
        (np.zeros((5, 0, 3)), r"x\['inp'\]: needs at least one step and one batch element"),
        (
            np.zeros((5, 2, 3), dtype=complex),
            r"x\['inp'\]: spikes must be bool, integer or float counts, got dtype complex128",
        ),
        (np.full((5, 2, 3), "1"), r"x\['inp'\]: spikes must be bool, integer or float counts, got dtype <U1"),
        (
            np.zeros((5, 2, 3), dtype=object),
            r"x\['inp'\]: spikes must be bool, integer or float counts, got dtype object",
        ),
        (np.zeros((5, 2, 3), dtype="datetime64[ms]"), r"x\['inp'\]: spikes must be bool, integer or float counts"),
        ("spikes", r"x\['inp'\]: spikes must be bool, integer or float counts"),
        (None, r"x\['inp'\]: spikes must be bool, integer or float counts"),
        ([[[0, 1, 0]], [[1, 0]]], r"x\['inp'\]: cannot be read as an array \[T, B, N\]"),
    ],
)
def test_bad_spike_arrays(compiled, x, message):
    with pytest.raises(ValueError, match=message):
        compiled.simulate(x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int8])
def test_negative_counts(compiled, dtype):
    x = spikes().astype(dtype)
    x[3, 1, 2] = -1
    with pytest.raises(ValueError, match=r"x\['inp'\]: contains negative values; spikes are counts >= 0"):
        compiled.simulate(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_spikes(compiled, bad):
    x = spikes()
    x[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"x\['inp'\]: contains NaN or inf; spike counts must be finite"):
        compiled.simulate(x)


def test_counts_above_one_are_allowed(compiled):
    x = spikes()
    assert compiled.simulate(2 * x)["hid"]["I"][0].sum() == pytest.approx(2 * compiled.simulate(x)["hid"]["I"][0].sum())


def test_the_input_array_is_not_modified(compiled):
    x = spikes()
    before = x.copy()
    compiled.simulate(x)
    np.testing.assert_array_equal(x, before)


# -- several inputs ----------------------------------------------------------------------------------


def test_two_inputs_as_a_dict(two_inputs):
    rec = two_inputs.simulate({"a": spikes(N=3), "b": spikes(N=2, seed=1)})
    assert rec["h"]["V"].shape == (5, 2, 4) and rec["h"]["V"].dtype == np.float32


@pytest.mark.parametrize(
    "x, message",
    [
        (
            lambda: {"a": spikes(T=5), "b": spikes(T=6, N=2)},
            r"x\['b'\]: \[T, B\] = \[6, 2\] differs from the other inputs' \[5, 2\]",
        ),
        (
            lambda: {"a": spikes(B=2), "b": spikes(B=3, N=2)},
            r"x\['b'\]: \[T, B\] = \[5, 3\] differs from the other inputs' \[5, 2\]",
        ),
        (
            lambda: {"a": spikes(), "b": spikes(N=2), "c": spikes()},
            r"x: unknown input populations \['c'\]; the network's inputs are \['a', 'b'\]",
        ),
        (lambda: {"a": spikes(), "b": spikes(N=2), "h": spikes(N=4)}, r"x: unknown input populations \['h'\]"),
        (
            lambda: {"a": spikes(), "b": spikes(N=2), 0: spikes(), "z": spikes()},
            r"x: unknown input populations \['z', 0\]",
        ),
        (lambda: {"a": spikes()}, r"x: no spikes given for input populations \['b'\]"),
        (lambda: {}, r"x: no spikes given for input populations \['a', 'b'\]"),
        (lambda: spikes(), r"x: the network has 2 inputs \['a', 'b'\]; pass a dict name -> \[T, B, N\] array"),
        (lambda: {"a": spikes(), "b": spikes(N=3)}, r"x\['b'\]: expected N=2 input channels"),
    ],
)
def test_bad_input_dicts(two_inputs, x, message):
    with pytest.raises(ValueError, match=message):
        two_inputs.simulate(x())


def test_a_network_without_inputs_cannot_be_driven():
    c = sl.get_backend("numpy").compile(sl.Network([sl.LIF("h", 2)]))
    with pytest.raises(ValueError, match=r"the network has no SpikeInput population"):
        c.simulate(np.zeros((3, 1, 2)))


# -- record requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, expected",
    [
        ("hid", {"hid": {"V", "I", "a", "z"}}),
        (["out"], {"out": {"V", "I"}}),
        ({"hid": "z"}, {"hid": {"z"}}),
        ({"hid": ["V", "a"], "out": ("V",)}, {"hid": {"V", "a"}, "out": {"V"}}),
        ({"hid": ["V", "V"]}, {"hid": {"V"}}),
        ([], {}),
    ],
)
def test_record_requests(compiled, record, expected):
    rec = compiled.simulate(spikes(), record=record)
    assert {k: set(v) for k, v in rec.items()} == expected


@pytest.mark.parametrize(
    "record, message",
    [
        ("nope", r"record: unknown population 'nope'; choose from \['hid', 'out'\]"),
        (["hid", "nope"], r"record: unknown population 'nope'"),
        ({"nope": "V"}, r"record: unknown population 'nope'"),
        ("inp", r"record: unknown population 'inp' \(inputs are not recorded: they are what you pass in\)"),
        ({"inp": "z"}, r"record: unknown population 'inp' \(inputs are not recorded"),
        ({"hid": ["W"]}, r"record\['hid'\]: unknown state variables \['W'\]; ALIF has \['V', 'I', 'a', 'z'\]"),
        ({"out": "z"}, r"record\['out'\]: unknown state variables \['z'\]; LI has \['V', 'I'\]"),
        ({"out": ["V", "a"]}, r"record\['out'\]: unknown state variables \['a'\]"),
        ({"hid": "v"}, r"record\['hid'\]: unknown state variables \['v'\]"),
        (5, r"record: expected None, a population name, a list of names or a dict name -> variables"),
        ({"hid": None}, r"record: expected None, a population name"),
        ([["hid"]], r"record: expected None, a population name"),
        ([5], r"record: unknown population 5"),
    ],
)
def test_bad_record_requests(compiled, record, message):
    with pytest.raises(ValueError, match=message):
        compiled.simulate(spikes(), record=record)


def test_lif_has_no_adaptation_variable(two_inputs):
    with pytest.raises(ValueError, match=r"record\['h'\]: unknown state variables \['a'\]; LIF has \['V', 'I', 'z'\]"):
        two_inputs.simulate({"a": spikes(), "b": spikes(N=2)}, record={"h": "a"})


# -- parameters ----------------------------------------------------------------------------------------


def test_parameter_names(compiled):
    assert set(compiled.get_params()) == {
        "inp_to_hid.weight",
        "hid_to_hid.weight",
        "hid_to_out.weight",
        "hid.alpha_mem",
        "hid.alpha_syn",
        "out.bias",
    }


def test_set_params_round_trip(fresh):
    w = np.full((3, 4), 0.25)
    fresh.set_params({"inp_to_hid.weight": w, "hid.alpha_mem": np.full(4, 0.5), "out.bias": [1, 2]})
    got = fresh.get_params()
    np.testing.assert_array_equal(got["inp_to_hid.weight"], w)
    np.testing.assert_array_equal(got["hid.alpha_mem"], 0.5)
    np.testing.assert_array_equal(got["out.bias"], [1.0, 2.0])


def test_get_params_returns_copies(fresh):
    p = fresh.get_params()
    p["out.bias"][:] = 9.0
    assert np.all(fresh.get_params()["out.bias"] == 0.0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nope.weight": np.zeros((3, 4))}, r"params: unknown parameter 'nope.weight'; known parameters are \["),
        ({"hid.bias": np.zeros(4)}, r"params: unknown parameter 'hid.bias'"),
        (
            {"inp_to_hid.weight": np.zeros((4, 3))},
            r"params\['inp_to_hid.weight'\]: expected shape \[3, 4\], got \[4, 3\]",
        ),
        ({"inp_to_hid.weight": np.zeros(12)}, r"params\['inp_to_hid.weight'\]: expected shape \[3, 4\], got \[12\]"),
        ({"out.bias": 0.0}, r"params\['out.bias'\]: expected shape \[2\], got \[\]"),
        ({"out.bias": [0.0, np.nan]}, r"params\['out.bias'\]: contains NaN or inf"),
        ({"inp_to_hid.weight": np.full((3, 4), np.inf)}, r"params\['inp_to_hid.weight'\]: contains NaN or inf"),
        (
            {"hid_to_hid.weight": np.ones((4, 4))},
            r"params\['hid_to_hid.weight'\]: non-zero weights where the connection has no synapse; keep them 0",
        ),
        ({"hid.alpha_mem": np.zeros(4)}, r"params\['hid.alpha_mem'\]: decay factors must lie in \(0, 1\)"),
        ({"hid.alpha_mem": np.ones(4)}, r"params\['hid.alpha_mem'\]: decay factors must lie in \(0, 1\)"),
        ({"hid.alpha_syn": [0.5, 0.5, 1.5, 0.5]}, r"params\['hid.alpha_syn'\]: decay factors must lie in \(0, 1\)"),
        ({"hid.alpha_syn": [0.5, -0.1, 0.5, 0.5]}, r"params\['hid.alpha_syn'\]: decay factors must lie in \(0, 1\)"),
        ({"out.bias": np.array([1 + 1j, 0])}, r"params\['out.bias'\]: not a numeric array"),
        ({"out.bias": ["1.5", "2"]}, r"params\['out.bias'\]: not a numeric array"),
        ({"out.bias": "ab"}, r"params\['out.bias'\]: not a numeric array"),
        ({"out.bias": None}, r"params\['out.bias'\]: not a numeric array"),
        ({"out.bias": [[1.0], [2.0, 3.0]]}, r"params\['out.bias'\]: not a numeric array"),
        ([("out.bias", np.zeros(2))], r"params: expected a dict name -> array, got list"),
    ],
)
def test_bad_parameters(fresh, params, message):
    before = fresh.get_params()
    with pytest.raises(ValueError, match=message):
        fresh.set_params(params)
    after = fresh.get_params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_rejected_update_changes_nothing(fresh):
    before = fresh.get_params()
    with pytest.raises(ValueError, match=r"params\['out.bias'\]: contains NaN"):
        fresh.set_params({"inp_to_hid.weight": np.full((3, 4), 0.9), "out.bias": [np.nan, 0.0]})
    np.testing.assert_array_equal(fresh.get_params()["inp_to_hid.weight"], before["inp_to_hid.weight"])


def test_zero_diagonal_recurrent_weights_are_accepted(fresh):
    w = np.full((4, 4), 0.2) - 0.2 * np.eye(4)
    fresh.set_params({"hid_to_hid.weight": w})
    np.testing.assert_array_equal(fresh.get_params()["hid_to_hid.weight"], w)


def test_set_params_changes_the_simulation(fresh):
    x = spikes()
    before = fresh.simulate(x, record={"out": "V"})["out"]["V"]
    fresh.set_params({"out.bias": [0.5, -0.5]})
    after = fresh.simulate(x, record={"out": "V"})["out"]["V"]
    assert not np.array_equal(before, after)
