"""Exact round trip of networks to dicts and JSON files, and clear errors on malformed files."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import spikeloom as sl
from spikeloom.serialization import FORMAT, VERSION

# float64 values whose shortest repr matters: neighbours of round numbers, a subnormal, extremes
TRICKY = np.array(
    [
        0.1 + 1e-17,
        np.nextafter(0.1, 1.0),
        np.nextafter(0.1, 0.0),
        1 / 3,
        -0.0,
        5e-324,
        np.finfo(np.float64).max,
        -np.finfo(np.float64).tiny,
        2.0**-40,
        123456789.12345679,
    ]
)


def rich_network() -> sl.Network:
    tau_mem = np.array([20.0, np.nextafter(20.0, np.inf), 0.1 + 1e-17, 1 / 3, 1e-300])
    pops = [
        sl.SpikeInput("inp", 4),
        sl.LIF(
            "hid",
            5,
            tau_mem=tau_mem,
            tau_syn=sl.Gamma(10.0, shape=2.5),
            v_thresh=sl.Normal(1.0, 0.01),
            refractory=2.5,
            reset="zero",
            scale_input=True,
            train_tau_mem=True,
            train_tau_syn=True,
        ),
        sl.ALIF(
            "ad",
            3,
            tau_adapt=sl.Uniform(100.0, 200.0),
            beta=np.array([0.0, np.nextafter(0.0174, 1.0), 0.5]),
            v_thresh=0.6,
            refractory=5.0,
        ),
        sl.LI("out", 2, bias=np.array([0.1 + 1e-17, -0.0]), tau_syn=5.0),
    ]
    w_ff = np.zeros((4, 5))
    w_ff.ravel()[: TRICKY.size] = TRICKY
    conns = [
        sl.Connection("inp", "hid", weight=w_ff, delay=2, name="ff"),
        sl.Connection("hid", "hid", weight=sl.Normal(0.0, 0.1), connectivity=sl.FixedProbability(0.5)),
        sl.Connection(
            "inp",
            "ad",
            weight=np.array([np.nextafter(1.0, 0.0), -(0.1 + 1e-17), 7.0]),
            connectivity=sl.Explicit([0, 1, 3], [2, 0, 1]),
            trainable=False,
        ),
        sl.Connection(
            "ad", "ad", weight=sl.KaimingUniform(gain=2.0), connectivity=([0, 1, 2], [0, 2, 1]), allow_self=True
        ),
        sl.Connection("hid", "out", weight=0.1 + 1e-17),
        sl.Connection("ad", "out", weight=sl.Uniform(-0.5, 0.5), delay=3),
    ]
    return sl.Network(pops, conns, dt=0.1 + 1e-17, seed=2**40 + 3)


def assert_bitwise_equal_built(a: sl.Network, b: sl.Network) -> None:
    ba, bb = a.built, b.built
    assert list(ba.populations) == list(bb.populations)
    for name, pa in ba.populations.items():
        pb = bb.populations[name]
        assert set(pa.params) == set(pb.params)
        for field in pa.params:
            assert pa.params[field].tobytes() == pb.params[field].tobytes(), (name, field)
        for attr in ("alpha_mem", "alpha_syn", "rho", "n_ref"):
            va, vb = getattr(pa, attr), getattr(pb, attr)
            assert (va is None and vb is None) or va.tobytes() == vb.tobytes(), (name, attr)
    for ca, cb in zip(ba.connections, bb.connections, strict=True):
        assert ca.weight.tobytes() == cb.weight.tobytes(), ca.name
        assert ca.mask.tobytes() == cb.mask.tobytes(), ca.name
        assert (ca.delay, ca.trainable) == (cb.delay, cb.trainable)


# -- round trips ------------------------------------------------------------------------------


def test_dict_round_trip_is_exact():
    net = rich_network()
    back = sl.Network.from_dict(net.to_dict())
    assert back == net
    assert_bitwise_equal_built(net, back)


def test_dict_is_plain_json():
    d = rich_network().to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert d["format"] == FORMAT == "spikeloom.network" and d["version"] == VERSION == 1
    assert d["seed"] == 2**40 + 3 and d["dt"] == 0.1 + 1e-17


def test_json_file_round_trip_is_exact(tmp_path):
    net = rich_network()
    path = tmp_path / "net.json"
    net.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("{") and text.endswith("\n")
    back = sl.Network.load(path)
    assert back == net
    assert_bitwise_equal_built(net, back)
    # and again: saving the loaded network gives the same file
    path2 = tmp_path / "again.json"
    back.save(str(path2))
    assert path2.read_text(encoding="utf-8") == text


def test_round_trip_keeps_kinds_specs_and_flags(tmp_path):
    net = rich_network()
    net.save(tmp_path / "n.json")
    back = sl.Network.load(tmp_path / "n.json")
    hid, ad, out = back.population("hid"), back.population("ad"), back.population("out")
    assert type(hid) is sl.LIF and type(ad) is sl.ALIF and type(out) is sl.LI
    assert hid.tau_syn == sl.Gamma(10.0, shape=2.5) and isinstance(hid.tau_syn, sl.Gamma)
    assert hid.v_thresh == sl.Normal(1.0, 0.01)
    assert ad.tau_adapt == sl.Uniform(100.0, 200.0)
    assert (hid.reset, hid.scale_input, hid.train_tau_mem, hid.train_tau_syn) == ("zero", True, True, True)
    assert hid.tau_mem.dtype == np.float64 and hid.tau_mem.tobytes() == net.population("hid").tau_mem.tobytes()
    assert np.signbit(out.bias[1])  # -0.0 survives
    conns = {c.name: c for c in back.connections}
    assert conns["ad_to_ad"].weight == sl.KaimingUniform(gain=2.0)
    assert conns["ad_to_ad"].allow_self is True
    assert conns["hid_to_hid"].connectivity == sl.FixedProbability(0.5)
    e = conns["inp_to_ad"].connectivity
    assert isinstance(e, sl.Explicit) and e.pre.dtype == np.int64
    np.testing.assert_array_equal(e.pre, [0, 1, 3])
    np.testing.assert_array_equal(e.post, [2, 0, 1])
    assert conns["inp_to_ad"].trainable is False
    assert conns["ff"].delay == 2 and conns["ad_to_out"].delay == 3
    assert conns["hid_to_out"].weight == 0.1 + 1e-17
    assert conns["ff"].weight.tobytes() == net.connections[0].weight.tobytes()


def test_minimal_dict_uses_defaults():
    net = sl.Network.from_dict(
        {
            "format": FORMAT,
            "version": VERSION,
            "populations": [{"kind": "SpikeInput", "name": "i", "n": 2}, {"kind": "LIF", "name": "h", "n": 3}],
            "connections": [{"source": "i", "target": "h"}],
        }
    )
    assert net == sl.Network([sl.SpikeInput("i", 2), sl.LIF("h", 3)], [sl.Connection("i", "h")])
    assert net.dt == 1.0 and net.seed == 0


def test_numpy_scalars_serialise():
    net = sl.Network(
        [sl.SpikeInput("i", np.int64(2)), sl.LIF("h", np.int32(3), tau_mem=np.float32(5.0))],
        [sl.Connection("i", "h", delay=np.int64(2), weight=np.float64(0.5))],
        seed=np.int64(4),
    )
    text = json.dumps(net.to_dict(), allow_nan=False)
    assert sl.Network.from_dict(json.loads(text)) == net


def test_lists_in_hand_written_json_are_accepted():
    d = {
        "format": FORMAT,
        "version": VERSION,
        "populations": [
            {"kind": "SpikeInput", "name": "i", "n": 2},
            {"kind": "LIF", "name": "h", "n": 2, "tau_mem": [5.0, 6.0]},
        ],
        "connections": [{"source": "i", "target": "h", "weight": [[0.1, 0.2], [0.3, 0.4]]}],
    }
    net = sl.Network.from_dict(d)
    np.testing.assert_array_equal(net.population("h").tau_mem, [5.0, 6.0])
    np.testing.assert_array_equal(net.built.connections[0].weight, [[0.1, 0.2], [0.3, 0.4]])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(allow_nan=False, allow_infinity=False, width=64)))
def test_any_finite_float64_array_round_trips_bitwise(values):
    n = values.size
    net = sl.Network(
        [sl.SpikeInput("i", n), sl.LI("o", n, bias=values)], [sl.Connection("i", "o", weight=np.diag(values))]
    )
    back = sl.Network.from_dict(json.loads(json.dumps(net.to_dict(), allow_nan=False)))
    assert back.population("o").bias.tobytes() == values.tobytes()
    assert back.connections[0].weight.tobytes() == np.diag(values).tobytes()


# -- malformed input ----------------------------------------------------------------------------


def base_dict() -> dict:
    net = sl.Network(
        [
            sl.SpikeInput("inp", 3),
            sl.LIF("hid", 4, tau_mem=sl.Gamma(20.0), v_thresh=[1.0, 1.0, 1.0, 1.0]),
            sl.LI("out", 2),
        ],
        [
            sl.Connection("inp", "hid", weight=sl.KaimingUniform(), connectivity=sl.FixedProbability(0.5)),
            sl.Connection("hid", "out", weight=np.ones((4, 2))),
        ],
    )
    return net.to_dict()


def _set(path, value):
    def mutate(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value

    return mutate


def _delete(path):
    def mutate(d):
        *head, last = path
        for k in head:
            d = d[k]
        del d[last]

    return mutate


MALFORMED = [
    ("extra top-level key", _set(["extra"], 1), r"network: unknown keys \['extra'\]"),
    ("missing format", _delete(["format"]), r"network: missing keys \['format'\]"),
    ("missing populations", _delete(["populations"]), r"network: missing keys \['populations'\]"),
    ("wrong format", _set(["format"], "nir"), r"network: 'format' must be 'spikeloom.network', got 'nir'"),
    ("wrong version", _set(["version"], 2), r"network: format version 2 is not supported \(this spikeloom reads 1\)"),
    ("version as string", _set(["version"], "1"), r"network: format version '1' is not supported"),
    (
        "populations not a list",
        _set(["populations"], {"inp": 3}),
        r"network: 'populations' and 'connections' must be lists",
    ),
    (
        "connections not a list",
        _set(["connections"], "none"),
        r"network: 'populations' and 'connections' must be lists",
    ),
    (
        "unknown population kind",
        _set(["populations", 1, "kind"], "Izhikevich"),
        r"populations\[1\]: 'kind' must be one of \['ALIF', 'LI', 'LIF', 'SpikeInput'\]",
    ),
    ("missing population kind", _delete(["populations", 0, "kind"]), r"populations\[0\]: 'kind' must be one of"),
    ("population not a dict", _set(["populations", 2], ["LI", "out", 2]), r"populations\[2\]: 'kind' must be one of"),
    ("unknown population key", _set(["populations", 1, "tau"], 5.0), r"populations\[1\]: unknown keys \['tau'\]"),
    (
        "input with a neuron parameter",
        _set(["populations", 0, "tau_mem"], 5.0),
        r"populations\[0\]: unknown keys \['tau_mem'\]",
    ),
    ("missing n", _delete(["populations", 2, "n"]), r"populations\[2\]: missing keys \['n'\]"),
    ("bad n", _set(["populations", 2, "n"], "2"), r"LI 'out': n must be an integer >= 1"),
    ("bad reset", _set(["populations", 1, "reset"], "hard"), r"LIF 'hid': reset must be one of"),
    (
        "unknown distribution",
        _set(["populations", 1, "tau_mem"], {"distribution": "Cauchy", "loc": 1}),
        r"populations\[1\].tau_mem: unknown distribution 'Cauchy'; choose one of \['Gamma', 'Normal', 'Uniform'\]",
    ),
    (
        "distribution bad argument",
        _set(["populations", 1, "tau_mem", "scale"], 2.0),
        r"populations\[1\].tau_mem: bad arguments for Gamma",
    ),
    (
        "distribution missing argument",
        _set(["populations", 1, "tau_mem"], {"distribution": "Gamma"}),
        r"populations\[1\].tau_mem: bad arguments for Gamma",
    ),
    ("distribution bad value", _set(["populations", 1, "tau_mem", "mean"], "twenty"), r"Gamma.mean must be a number"),
    (
        "undecodable parameter",
        _set(["populations", 1, "tau_mem"], {"value": 3}),
        r"populations\[1\].tau_mem: cannot decode",
    ),
    ("parameter string", _set(["populations", 1, "tau_mem"], "20"), r"LIF 'hid': tau_mem: expected a number"),
    (
        "array missing key",
        _delete(["populations", 1, "v_thresh", "array", "shape"]),
        r"populations\[1\].v_thresh: an array must be stored as \{'dtype', 'shape', 'data'\}",
    ),
    (
        "array unknown dtype",
        _set(["populations", 1, "v_thresh", "array", "dtype"], "quux"),
        r"populations\[1\].v_thresh: unknown array dtype 'quux'",
    ),
    (
        "array complex dtype",
        _set(["populations", 1, "v_thresh", "array", "dtype"], "complex128"),
        r"populations\[1\].v_thresh: unsupported array dtype 'complex128'",
    ),
    (
        "array shape mismatch",
        _set(["populations", 1, "v_thresh", "array", "shape"], [5]),
        r"populations\[1\].v_thresh: 4 values do not fill shape \(5,\)",
    ),
    (
        "array shape not a list",
        _set(["populations", 1, "v_thresh", "array", "shape"], 4),
        r"populations\[1\].v_thresh: array shape must be a list of integers >= 0",
    ),
    (
        "array negative shape",
        _set(["populations", 1, "v_thresh", "array", "shape"], [-2, -2]),
        r"populations\[1\].v_thresh: array shape must be a list of integers >= 0",
    ),
    (
        "array nested data",
        _set(["populations", 1, "v_thresh", "array", "data"], [[1.0, 1.0], [1.0, 1.0]]),
        r"populations\[1\].v_thresh: 4 values do not fill shape \(4,\) \(data must be a flat list\)",
    ),
    (
        "array bad data",
        _set(["populations", 1, "v_thresh", "array", "data"], ["a", "b", "c", "d"]),
        r"populations\[1\].v_thresh: array data cannot be read as float64",
    ),
    (
        "array wrong length for n",
        _set(["populations", 1, "v_thresh"], {"array": {"dtype": "float64", "shape": [3], "data": [1.0, 1.0, 1.0]}}),
        r"LIF 'hid': v_thresh has 3 values but the population has n=4",
    ),
    (
        "unknown connection key",
        _set(["connections", 0, "probability"], 0.5),
        r"connections\[0\]: unknown keys \['probability'\]",
    ),
    ("missing target", _delete(["connections", 1, "target"]), r"connections\[1\]: missing keys \['target'\]"),
    ("connection not a dict", _set(["connections", 0], "inp->hid"), r"connections\[0\]: expected a dict, got str"),
    (
        "unknown connectivity kind",
        _set(["connections", 0, "connectivity"], {"kind": "ring"}),
        r"connections\[0\].connectivity: connectivity must be a dict with kind in "
        r"\['dense', 'explicit', 'fixed_probability'\]",
    ),
    (
        "connectivity bad argument",
        _set(["connections", 0, "connectivity", "q"], 0.5),
        r"connections\[0\].connectivity: bad connectivity arguments",
    ),
    (
        "connectivity bad value",
        _set(["connections", 0, "connectivity", "p"], 1.5),
        r"FixedProbability.p must be in \(0, 1\]",
    ),
    (
        "unknown initializer",
        _set(["connections", 0, "weight"], {"initializer": "Xavier"}),
        r"connections\[0\].weight: unknown initializer 'Xavier'; choose one of \['KaimingUniform'\]",
    ),
    (
        "initializer bad argument",
        _set(["connections", 0, "weight", "mode"], "fan_out"),
        r"connections\[0\].weight: bad arguments for KaimingUniform",
    ),
    (
        "undecodable weight",
        _set(["connections", 1, "weight"], {"values": [1, 2]}),
        r"connections\[1\].weight: cannot decode",
    ),
    (
        "weight array wrong shape",
        _set(["connections", 1, "weight", "array", "shape"], [2, 4]),
        r"Connection 'hid_to_out': weight array must have shape \[N_pre, N_post\] = \[4, 2\], got \[2, 4\]",
    ),
    ("bad delay", _set(["connections", 1, "delay"], 0), r"delay must be an integer >= 1"),
    ("bad trainable", _set(["connections", 1, "trainable"], "yes"), r"trainable must be True or False"),
    (
        "unknown endpoint",
        _set(["connections", 1, "target"], "readout"),
        r"Connection 'hid_to_out': unknown target population 'readout'",
    ),
    ("bad dt", _set(["dt"], "1ms"), r"Network.dt must be a number of ms"),
    ("bad seed", _set(["seed"], -1), r"Network.seed must be an integer >= 0"),
]


@pytest.mark.parametrize("mutate, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_load_rejects_malformed_networks(tmp_path, mutate, message):
    d = copy.deepcopy(base_dict())
    sl.Network.from_dict(copy.deepcopy(d))  # the unmodified dict is fine
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        sl.Network.load(path)
    with pytest.raises(ValueError, match=message):
        sl.Network.from_dict(d)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"format": "spikeloom.network",', b"\xff\xfe\x00\x01garbage", b"[1, 2"],
    ids=["syntax", "empty", "truncated", "binary", "open list"],
)
def test_load_rejects_malformed_json(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"broken.json: not a valid network JSON file"):
        sl.Network.load(path)


@pytest.mark.parametrize("top", ["[]", "null", "3", '"network"'])
def test_load_rejects_a_non_object(tmp_path, top):
    path = tmp_path / "n.json"
    path.write_text(top)
    with pytest.raises(ValueError, match=r"network: expected a dict, got"):
        sl.Network.load(path)


def test_load_rejects_nan_in_arrays(tmp_path):
    text = json.dumps(base_dict()).replace('"data": [1.0, 1.0, 1.0, 1.0]', '"data": [1.0, NaN, 1.0, 1.0]')
    assert "NaN" in text
    path = tmp_path / "n.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"LIF 'hid': v_thresh: contains NaN or inf"):
        sl.Network.load(path)


def test_load_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        sl.Network.load(tmp_path / "nope.json")
