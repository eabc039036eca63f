"""Capabilities: the declaration's own validation, and compile refusing anything undeclared."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom.capabilities import ALL_MODELS, device_kind, requirements


class LimitedBackend(sl.Backend):
    """Declares exactly the capabilities it is given; compiling returns the validated request."""

    name = "limited"
    version = "0.0.1"

    def __init__(self, caps: sl.Capabilities, available: bool = True) -> None:
        self._caps = caps
        self._available = available

    def capabilities(self) -> sl.Capabilities:
        return self._caps

    def availability(self) -> sl.Availability:
        return sl.Availability(self._available, "no accelerator here")

    def _compile(self, request):
        return request


FULL = sl.Capabilities(
    dtypes={"float32", "float64"},
    devices={"cpu", "cuda"},
    rules={"bptt", "eprop"},
    surrogates={"superspike", "triangle", "sigmoid", "atan"},
    readouts={"per_step", "max", "mean", "last"},
    trainable_time_constants=True,
)


def net(hidden=None, *, conn=None, n_in=4):
    hidden = hidden if hidden is not None else sl.LIF("hid", 8)
    return sl.Network(
        [sl.SpikeInput("inp", n_in), hidden, sl.LI("out", 2)],
        [sl.Connection("inp", "hid", **(conn or {})), sl.Connection("hid", "out")],
    )


# -- the declaration ---------------------------------------------------------------------------


def test_defaults():
    c = sl.Capabilities()
    assert c.models == ALL_MODELS == frozenset({"LIF", "ALIF", "LI"})
    assert c.synapses == {"delta", "exponential"} and c.resets == {"subtract", "zero"}
    assert c.connectivity == {"dense", "fixed_probability", "explicit"}
    assert c.dtypes == {"float32"} and c.devices == {"cpu"}
    assert c.rules == c.surrogates == c.readouts == frozenset()
    assert c.refractory and c.heterogeneous and c.scale_input and not c.trainable_time_constants
    assert c.max_delay is None and c.max_neurons is None


def test_collections_become_frozensets():
    c = sl.Capabilities(models=["LIF", "LIF"], dtypes=("float64",), rules=iter(["bptt"]))
    assert c.models == frozenset({"LIF"}) and isinstance(c.models, frozenset)
    assert c.dtypes == frozenset({"float64"}) and c.rules == frozenset({"bptt"})


@pytest.mark.parametrize(
    "field, value",
    [
        ("models", {"HH"}),
        ("synapses", {"alpha"}),
        ("resets", {"none"}),
        ("connectivity", {"ring"}),
        ("dtypes", {"float16"}),
        ("rules", {"stdp"}),
        ("surrogates", {"erf"}),
        ("readouts", {"sum"}),
        ("models", {"LIF", "lif"}),
    ],
)
def test_unknown_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=rf"Capabilities.{field}: unknown values \['{sorted(value - {'LIF'})[0]}'\]"):
        sl.Capabilities(**{field: value})


def test_devices_are_extensible():
    assert sl.Capabilities(devices={"cpu", "tpu"}).devices == {"cpu", "tpu"}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("models", "LIF", r"Capabilities.models must be a collection of strings, got the string 'LIF'"),
        ("dtypes", 32, r"Capabilities.dtypes must be a collection of strings, got 32"),
        ("devices", None, r"Capabilities.devices must be a collection of strings"),
        ("rules", [1], r"Capabilities.rules must hold strings"),
        ("devices", {"cpu", 0}, r"Capabilities.devices must hold strings"),
    ],
)
def test_sets_must_be_collections_of_strings(field, value, message):
    with pytest.raises(ValueError, match=message):
        sl.Capabilities(**{field: value})


@pytest.mark.parametrize("field", ["refractory", "heterogeneous", "trainable_time_constants", "scale_input"])
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_flags_must_be_bool(field, value):
    with pytest.raises(ValueError, match=rf"Capabilities.{field} must be True or False"):
        sl.Capabilities(**{field: value})


@pytest.mark.parametrize("field", ["max_delay", "max_neurons"])
@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, "3"])
def test_limits_must_be_none_or_positive_ints(field, value):
    with pytest.raises(ValueError, match=rf"Capabilities.{field} must be None \(no limit\) or an integer >= 1"):
        sl.Capabilities(**{field: value})


def test_capabilities_are_frozen_hashable_values():
    a = sl.Capabilities(dtypes={"float32", "float64"}, max_delay=4)
    b = sl.Capabilities(dtypes=["float64", "float32"], max_delay=4)
    assert a == b and hash(a) == hash(b)
    assert a != sl.Capabilities(dtypes={"float32", "float64"}, max_delay=5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.max_delay = 1


def test_to_dict_is_sorted_json():
    d = sl.Capabilities(dtypes={"float64", "float32"}, max_delay=3).to_dict()
    assert d["dtypes"] == ["float32", "float64"]
    assert d["models"] == ["ALIF", "LI", "LIF"]
    assert d["max_delay"] == 3 and d["max_neurons"] is None and d["refractory"] is True
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {f.name for f in attrs.fields(sl.Capabilities)}


def test_device_kind():
    assert device_kind("cuda:1") == "cuda" and device_kind("cpu") == "cpu"


# -- what a network needs ---------------------------------------------------------------------------


def test_requirements_of_a_plain_network():
    needs = list(requirements(net().built, dtype="float32", device="cuda:0"))
    assert ("dtypes", "float32") in needs and ("devices", "cuda") in needs
    assert ("models", "LIF") in needs and ("models", "LI") in needs
    assert ("synapses", "delta") in needs and ("resets", "subtract") in needs
    assert ("connectivity", "dense") in needs and ("max_delay", 1) in needs
    assert ("max_neurons", 4 + 8 + 2) in needs
    fields = {f for f, _ in needs}
    assert not fields & {"refractory", "heterogeneous", "scale_input", "trainable_time_constants", "rules"}


def test_check_reports_the_first_missing_feature():
    caps = sl.Capabilities(max_delay=2)
    caps.check("b", iter([("max_delay", 2), ("models", "LIF")]))
    with pytest.raises(
        sl.UnsupportedFeature, match=r"backend 'b' does not support max_delay=3; it declares max_delay=2"
    ):
        caps.check("b", iter([("models", "LIF"), ("max_delay", 3)]))


# -- compile refuses what is not declared ------------------------------------------------------------


CASES = [
    # (id, network, compile kwargs, declared capabilities, feature, value)
    ("ALIF", lambda: net(sl.ALIF("hid", 8)), {}, dict(models={"LIF", "LI"}), "models", "ALIF"),
    ("LI readout", lambda: net(), {}, dict(models={"LIF", "ALIF"}), "models", "LI"),
    ("float64", lambda: net(), dict(dtype="float64"), dict(dtypes={"float32"}), "dtypes", "float64"),
    ("float32", lambda: net(), {}, dict(dtypes={"float64"}), "dtypes", "float32"),
    ("refractory", lambda: net(sl.LIF("hid", 8, refractory=2.0)), {}, dict(refractory=False), "refractory", True),
    ("delay", lambda: net(conn=dict(delay=2)), {}, dict(max_delay=1), "max_delay", 2),
    (
        "exponential synapse",
        lambda: net(sl.LIF("hid", 8, tau_syn=5.0)),
        {},
        dict(synapses={"delta"}),
        "synapses",
        "exponential",
    ),
    ("delta synapse", lambda: net(), {}, dict(synapses={"exponential"}), "synapses", "delta"),
    ("zero reset", lambda: net(sl.LIF("hid", 8, reset="zero")), {}, dict(resets={"subtract"}), "resets", "zero"),
    (
        "sparse",
        lambda: net(conn=dict(connectivity=sl.FixedProbability(0.5))),
        {},
        dict(connectivity={"dense"}),
        "connectivity",
        "fixed_probability",
    ),
    (
        "explicit",
        lambda: net(conn=dict(connectivity=([0, 1], [2, 3]))),
        {},
        dict(connectivity={"dense", "fixed_probability"}),
        "connectivity",
        "explicit",
    ),
    ("device", lambda: net(), dict(device="cuda:1"), dict(devices={"cpu", "tpu"}), "devices", "cuda"),
    (
        "heterogeneous drawn",
        lambda: net(sl.LIF("hid", 8, tau_mem=sl.Gamma(20.0))),
        {},
        dict(heterogeneous=False),
        "heterogeneous",
        True,
    ),
    (
        "heterogeneous array",
        lambda: net(sl.LIF("hid", 8, v_thresh=np.linspace(0.5, 1.0, 8))),
        {},
        dict(heterogeneous=False),
        "heterogeneous",
        True,
    ),
    ("scale_input", lambda: net(sl.LIF("hid", 8, scale_input=True)), {}, dict(scale_input=False), "scale_input", True),
    (
        "trainable tau",
        lambda: net(sl.LIF("hid", 8, train_tau_mem=True)),
        {},
        dict(trainable_time_constants=False),
        "trainable_time_constants",
        True,
    ),
    ("max_neurons", lambda: net(), {}, dict(max_neurons=13), "max_neurons", 14),
    (
        "rule",
        lambda: net(),
        dict(rule=sl.BPTT(), readout=sl.Readout("out", "max")),
        dict(rules={"eprop"}),
        "rules",
        "bptt",
    ),
    (
        "surrogate",
        lambda: net(),
        dict(rule=sl.BPTT(), readout=sl.Readout("out", "max")),
        dict(surrogates={"triangle"}),
        "surrogates",
        "superspike",
    ),
    (
        "readout",
        lambda: net(),
        dict(rule=sl.BPTT(), readout=sl.Readout("out", "max")),
        dict(readouts={"per_step"}),
        "readouts",
        "max",
    ),
]


@pytest.mark.parametrize(
    "make_net, kwargs, declared, feature, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_compile_raises_unsupported_feature_naming_it(make_net, kwargs, declared, feature, value):
    network = make_net()
    caps = attrs.evolve(FULL, **declared)
    backend = LimitedBackend(caps)
    with pytest.raises(sl.UnsupportedFeature, match=rf"backend 'limited' does not support {feature}={value!r}") as info:
        backend.compile(network, **kwargs)
    err = info.value
    assert (err.backend, err.feature, err.value) == ("limited", feature, value)
    assert isinstance(err, NotImplementedError) and isinstance(err, sl.SpikeloomError)
    assert feature in str(err)
    # the same request compiles on a backend that declares everything
    request = LimitedBackend(FULL).compile(network, **kwargs)
    assert request.network is network


def test_features_within_the_declaration_compile():
    caps = sl.Capabilities(models={"LIF", "LI"}, dtypes={"float32"}, refractory=False, max_delay=1, heterogeneous=False)
    request = LimitedBackend(caps).compile(net(sl.LIF("hid", 8, refractory=0.4)))  # 0.4 ms rounds to 0 steps
    assert request.dtype == np.dtype("float32") and request.device == "cpu"
    assert request.built is request.network.built


def test_a_per_neuron_readout_bias_is_not_heterogeneity():
    network = sl.Network([sl.SpikeInput("inp", 2), sl.LI("out", 2, bias=[0.5, -0.5])], [sl.Connection("inp", "out")])
    LimitedBackend(sl.Capabilities(heterogeneous=False)).compile(network)


def test_the_limit_is_inclusive():
    LimitedBackend(sl.Capabilities(max_delay=3)).compile(net(conn=dict(delay=3)))
    LimitedBackend(sl.Capabilities(max_neurons=14)).compile(net())


def test_capabilities_are_checked_before_availability():
    backend = LimitedBackend(sl.Capabilities(models={"LIF", "LI"}), available=False)
    with pytest.raises(sl.UnsupportedFeature):
        backend.compile(net(sl.ALIF("hid", 8)))
    with pytest.raises(sl.BackendUnavailable, match=r"backend 'limited' is not available: no accelerator here"):
        backend.compile(net())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dtype="int32"), r"dtype"),
        (dict(dtype="not-a-dtype"), r"dtype"),
        (dict(device="GPU 0"), r"device"),
        (dict(device=0), r"device"),
        (dict(batch_size=0), r"batch_size"),
        (dict(batch_size=2.0), r"batch_size"),
    ],
)
def test_malformed_compile_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LimitedBackend(FULL).compile(net(), **kwargs)


def test_compile_needs_a_network():
    with pytest.raises(ValueError, match=r"network must be a spikeloom.Network"):
        LimitedBackend(FULL).compile(net().to_dict())


def test_the_reference_declares_float64_and_refuses_cuda():
    ref = sl.get_backend("numpy")
    caps = ref.capabilities()
    assert {"float32", "float64"} <= caps.dtypes
    assert caps.refractory and caps.heterogeneous and caps.max_delay is None
    with pytest.raises(sl.UnsupportedFeature) as info:
        ref.compile(net(), device="cuda:0")
    assert info.value.feature == "devices" and info.value.value == "cuda"
