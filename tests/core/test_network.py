"""The network graph: validation, and its materialisation into float64 arrays from one seed."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom.distributions import rng_for


def small(seed=0, **lif):
    return sl.Network(
        [sl.SpikeInput("inp", 6), sl.LIF("hid", 5, **lif), sl.LI("out", 3)],
        [sl.Connection("inp", "hid"), sl.Connection("hid", "out")],
        seed=seed,
    )


# -- validation ---------------------------------------------------------------------------------


def test_minimal_network():
    net = sl.Network([sl.SpikeInput("i", 2)])
    assert net.connections == () and net.dt == 1.0 and net.seed == 0
    assert net.populations == (sl.SpikeInput("i", 2),)


@pytest.mark.parametrize(
    "populations, message",
    [
        ([], r"Network.populations is empty"),
        (sl.LIF("h", 2), r"Network.populations must be a list of Population objects"),
        ("hidden", r"Network.populations must be a list of Population objects"),
        (None, r"Network.populations must be a list"),
        ([sl.LIF("h", 2), "out"], r"Network.populations must hold Population objects, got 'out'"),
        ([sl.LIF("h", 2), sl.LI("h", 3)], r"Network.populations: duplicate population names \['h'\]"),
    ],
)
def test_population_list_validation(populations, message):
    with pytest.raises(ValueError, match=message):
        sl.Network(populations)


def test_populations_may_be_any_iterable():
    net = sl.Network(p for p in [sl.SpikeInput("i", 2), sl.LIF("h", 2)])
    assert [p.name for p in net.populations] == ["i", "h"]


@pytest.mark.parametrize(
    "connections, message",
    [
        (sl.Connection("i", "h"), r"Network.connections must be a list of Connection objects"),
        ([("i", "h")], r"Network.connections must hold Connection objects"),
        (
            [sl.Connection("i", "h"), sl.Connection("i", "h")],
            r"Network.connections: duplicate connection names \['i_to_h'\]",
        ),
        (
            [sl.Connection("x", "h")],
            r"Connection 'x_to_h': unknown source population 'x'; known populations are \['h', 'i', 'o'\]",
        ),
        ([sl.Connection("i", "y")], r"Connection 'i_to_y': unknown target population 'y'"),
        ([sl.Connection("h", "i")], r"Connection 'h_to_i': target 'i' is a SpikeInput, which takes no input"),
        ([sl.Connection("o", "h")], r"Connection 'o_to_h': source 'o' is an LI readout, which never spikes"),
    ],
)
def test_connection_list_validation(connections, message):
    pops = [sl.SpikeInput("i", 2), sl.LIF("h", 3), sl.LI("o", 2)]
    with pytest.raises(ValueError, match=message):
        sl.Network(pops, connections)


def test_parallel_connections_need_distinct_names():
    pops = [sl.SpikeInput("i", 2), sl.LIF("h", 3)]
    net = sl.Network(pops, [sl.Connection("i", "h"), sl.Connection("i", "h", name="slow", delay=4)])
    assert [c.name for c in net.built.connections] == ["i_to_h", "slow"]


@pytest.mark.parametrize(
    "dt, message",
    [
        (0.0, r"Network.dt must be a finite number of ms > 0, got 0.0"),
        (-1.0, r"Network.dt must be a finite number of ms > 0"),
        (float("nan"), r"Network.dt must be a finite number of ms > 0"),
        (float("inf"), r"Network.dt must be a finite number of ms > 0"),
        ("1.0", r"Network.dt must be a number of ms"),
        (True, r"Network.dt must be a number of ms"),
        (None, r"Network.dt must be a number of ms"),
    ],
)
def test_dt_validation(dt, message):
    with pytest.raises(ValueError, match=message):
        sl.Network([sl.SpikeInput("i", 1)], dt=dt)


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, True, "3", None])
def test_seed_validation(seed):
    with pytest.raises(ValueError, match=r"Network.seed must be an integer >= 0"):
        sl.Network([sl.SpikeInput("i", 1)], seed=seed)


def test_dt_and_seed_are_normalised():
    net = sl.Network([sl.SpikeInput("i", 1)], dt=np.float32(0.5), seed=np.uint32(7))
    assert net.dt == 0.5 and type(net.dt) is float
    assert net.seed == 7 and type(net.seed) is int
    assert sl.Network([sl.SpikeInput("i", 1)], dt=2).dt == 2.0
    assert sl.Network([sl.SpikeInput("i", 1)], seed=2**70).seed == 2**70


def test_population_lookup():
    net = small()
    assert net.population("hid") is net.populations[1]
    with pytest.raises(ValueError, match=r"unknown population 'nope'; known populations are \['inp', 'hid', 'out'\]"):
        net.population("nope")


def test_invalid_networks_fail_at_construction():
    # the Explicit index is only checked against population sizes when materialised
    with pytest.raises(ValueError, match=r"Connection 'inp_to_hid': Explicit.post index 5 out of range"):
        sl.Network([sl.SpikeInput("inp", 2), sl.LIF("hid", 5)], [sl.Connection("inp", "hid", connectivity=([0], [5]))])


def test_network_value_semantics():
    a, b = small(seed=3), small(seed=3)
    assert a == b and hash(a) == hash(b)
    assert a != small(seed=4)
    assert a != small(seed=3, tau_mem=10.0)
    assert a != sl.Network(a.populations, a.connections, dt=0.5, seed=3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.seed = 5


# -- materialisation: seeds and random streams ------------------------------------------------------


def random_net(seed=0, extra_population=False, hidden_name="hid", conn_weight=None):
    pops = [sl.SpikeInput("inp", 20)]
    if extra_population:
        pops.append(sl.LIF("other", 7, tau_mem=sl.Gamma(15.0)))
    pops += [
        sl.ALIF(
            hidden_name,
            30,
            tau_mem=sl.Gamma(20.0),
            tau_syn=sl.Gamma(20.0),
            v_thresh=sl.Normal(1.0, 0.05),
            refractory=sl.Uniform(0.0, 3.0),
            tau_adapt=sl.Uniform(100.0, 200.0),
        ),
        sl.LI("out", 4),
    ]
    conns = [
        sl.Connection(
            "inp", hidden_name, weight=conn_weight or sl.Normal(0.0, 0.1), connectivity=sl.FixedProbability(0.3)
        ),
        sl.Connection(hidden_name, hidden_name, connectivity=sl.FixedProbability(0.3)),
        sl.Connection(hidden_name, "out"),
    ]
    return sl.Network(pops, conns, seed=seed)


def _arrays(built, pop):
    p = built.populations[pop]
    return {k: v for k, v in p.params.items()}


def test_same_seed_gives_identical_arrays():
    a, b = random_net(seed=11).built, random_net(seed=11).built
    for field, values in _arrays(a, "hid").items():
        np.testing.assert_array_equal(values, b.populations["hid"].params[field])
    for ca, cb in zip(a.connections, b.connections, strict=True):
        np.testing.assert_array_equal(ca.mask, cb.mask)
        np.testing.assert_array_equal(ca.weight, cb.weight)


def test_different_seeds_give_different_draws():
    a, b = random_net(seed=1).built, random_net(seed=2).built
    for field in ("tau_mem", "tau_syn", "v_thresh", "refractory", "tau_adapt"):
        assert not np.array_equal(a.populations["hid"].params[field], b.populations["hid"].params[field]), field
    for ca, cb in zip(a.connections, b.connections, strict=True):
        assert not np.array_equal(ca.weight, cb.weight), ca.name
    assert not np.array_equal(a.connections[0].mask, b.connections[0].mask)


def test_each_draw_has_its_own_stream():
    b = random_net(seed=5).built
    hid = b.populations["hid"].params
    # tau_mem and tau_syn have the same spec but independent streams
    assert not np.array_equal(hid["tau_mem"], hid["tau_syn"])
    # the two FixedProbability(0.3) connections onto 'hid' differ although their specs match
    assert not np.array_equal(b.connections[0].mask[:20, :], b.connections[1].mask[:20, :])


def test_adding_a_population_does_not_change_other_draws():
    a, b = random_net(seed=9).built, random_net(seed=9, extra_population=True).built
    for field, values in _arrays(a, "hid").items():
        np.testing.assert_array_equal(values, b.populations["hid"].params[field])
    for ca, cb in zip(a.connections, b.connections, strict=True):
        np.testing.assert_array_equal(ca.mask, cb.mask)
        np.testing.assert_array_equal(ca.weight, cb.weight)


def test_draws_are_keyed_by_name():
    a, b = random_net(seed=9).built, random_net(seed=9, hidden_name="hid2").built
    assert not np.array_equal(a.populations["hid"].params["tau_mem"], b.populations["hid2"].params["tau_mem"])


def test_weight_spec_does_not_change_the_mask():
    a = random_net(seed=4).built
    b = random_net(seed=4, conn_weight=sl.Uniform(-1.0, 1.0)).built
    np.testing.assert_array_equal(a.connections[0].mask, b.connections[0].mask)
    assert not np.array_equal(a.connections[0].weight, b.connections[0].weight)


def test_stream_keys_are_documented_strings():
    b = random_net(seed=21).built
    expected = sl.Gamma(20.0).sample(rng_for(21, "population/hid/tau_mem"), 30)
    np.testing.assert_array_equal(b.populations["hid"].params["tau_mem"], expected)
    mask = rng_for(21, "connection/inp_to_hid/connectivity").random((20, 30)) < 0.3
    np.testing.assert_array_equal(b.connections[0].mask, mask)


_DRAW_SCRIPT = """
import json, spikeloom as sl
net = sl.Network(
    [sl.SpikeInput("inp", 20), sl.LIF("hid", 30, tau_mem=sl.Gamma(20.0))],
    [sl.Connection("inp", "hid", weight=sl.Normal(0.0, 0.1), connectivity=sl.FixedProbability(0.3))],
    seed=3,
)
b = net.built
print(json.dumps([b.populations["hid"].params["tau_mem"].tolist(), b.connections[0].weight.tolist()]))
"""


def test_draws_are_the_same_in_another_process():
    # string hashing is randomised per process; the streams must not depend on it
    out = subprocess.run(
        [sys.executable, "-c", _DRAW_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    tau, w = json.loads(out.stdout)
    b = random_net(seed=3).built
    assert tau == b.populations["hid"].params["tau_mem"].tolist()
    assert w == b.connections[0].weight.tolist()


# -- materialisation: masks, self-synapses, explicit indices, weights --------------------------------


def two(n_pre=4, n_post=3, **conn):
    return sl.Network([sl.SpikeInput("a", n_pre), sl.LIF("b", n_post)], [sl.Connection("a", "b", **conn)], seed=1)


def rec(n=5, **conn):
    return sl.Network([sl.SpikeInput("i", 2), sl.LIF("h", n)], [sl.Connection("h", "h", **conn)], seed=1)


def test_dense_scalar_weight():
    c = two(weight=0.5).built.connections[0]
    assert c.mask.shape == (4, 3) and c.mask.all() and c.dense
    assert c.n_synapses == 12
    np.testing.assert_array_equal(c.weight, np.full((4, 3), 0.5))
    assert c.weight.dtype == np.float64


def test_fixed_probability_weights_are_zero_outside_the_mask():
    c = two(n_pre=40, n_post=50, weight=sl.Normal(1.0, 0.1), connectivity=sl.FixedProbability(0.2)).built.connections[0]
    assert not c.dense
    assert 0.15 < c.mask.mean() < 0.25
    assert c.n_synapses == int(c.mask.sum())
    assert np.all(c.weight[~c.mask] == 0)
    assert np.all(c.weight[c.mask] > 0.3)  # N(1, 0.1) draws on every synapse


def test_fixed_probability_one_is_dense():
    c = two(connectivity=sl.FixedProbability(1.0)).built.connections[0]
    assert c.dense


def test_recurrent_connection_excludes_self_synapses():
    c = rec(weight=0.3).built.connections[0]
    assert not np.any(np.diag(c.mask))
    assert c.n_synapses == 5 * 4
    np.testing.assert_array_equal(c.weight, 0.3 * (1 - np.eye(5)))


def test_recurrent_fixed_probability_excludes_self_synapses():
    c = rec(n=30, weight=1.0, connectivity=sl.FixedProbability(1.0)).built.connections[0]
    assert not np.any(np.diag(c.mask)) and c.n_synapses == 30 * 29


def test_allow_self_keeps_self_synapses():
    c = rec(weight=0.3, allow_self=True).built.connections[0]
    assert c.mask.all()
    np.testing.assert_array_equal(c.weight, np.full((5, 5), 0.3))


def test_square_feedforward_connection_keeps_its_diagonal():
    net = sl.Network([sl.SpikeInput("i", 4), sl.LIF("h", 4)], [sl.Connection("i", "h", weight=1.0)])
    assert net.built.connections[0].mask.all()


def test_recurrent_weight_array_must_be_zero_on_the_diagonal():
    with pytest.raises(
        ValueError, match=r"Connection 'h_to_h': weight array has non-zero entries where the connectivity"
    ):
        rec(n=3, weight=np.ones((3, 3)))
    w = np.ones((3, 3)) - np.eye(3)
    np.testing.assert_array_equal(rec(n=3, weight=w).built.connections[0].weight, w)
    np.testing.assert_array_equal(rec(n=3, weight=np.ones((3, 3)), allow_self=True).built.connections[0].weight, 1.0)


def test_recurrent_explicit_self_synapses():
    with pytest.raises(
        ValueError, match=r"Connection 'h_to_h': Explicit connectivity of a recurrent connection lists self-synapses"
    ):
        rec(n=3, connectivity=([0, 1], [1, 1]))
    c = rec(n=3, weight=2.0, connectivity=([0, 1], [1, 1]), allow_self=True).built.connections[0]
    assert c.mask[1, 1] and c.mask[0, 1] and c.n_synapses == 2


def test_explicit_indices_scalar_weight():
    c = two(weight=0.5, connectivity=sl.Explicit([0, 3, 3], [2, 0, 1])).built.connections[0]
    expected = np.zeros((4, 3), dtype=bool)
    expected[0, 2] = expected[3, 0] = expected[3, 1] = True
    np.testing.assert_array_equal(c.mask, expected)
    np.testing.assert_array_equal(c.weight, 0.5 * expected)


def test_explicit_one_d_weights_follow_synapse_order():
    c = two(weight=[0.1, 0.2, 0.3], connectivity=sl.Explicit([3, 0, 3], [0, 2, 1])).built.connections[0]
    expected = np.zeros((4, 3))
    expected[3, 0], expected[0, 2], expected[3, 1] = 0.1, 0.2, 0.3
    np.testing.assert_array_equal(c.weight, expected)


def test_explicit_one_d_weights_of_the_wrong_length():
    with pytest.raises(
        ValueError, match=r"Connection 'a_to_b': a 1-d weight array needs one value per Explicit synapse \(2\), got 3"
    ):
        two(weight=[0.1, 0.2, 0.3], connectivity=([0, 1], [0, 1]))


def test_explicit_two_d_weights_must_be_zero_off_the_synapses():
    w = np.zeros((4, 3))
    w[0, 0] = 1.0
    np.testing.assert_array_equal(two(weight=w, connectivity=([0], [0])).built.connections[0].weight, w)
    w[1, 1] = 1.0
    with pytest.raises(
        ValueError,
        match=r"Connection 'a_to_b': weight array has non-zero entries where the connectivity has no synapse",
    ):
        two(weight=w, connectivity=([0], [0]))


def test_explicit_random_weights_only_on_synapses():
    c = two(weight=sl.Normal(5.0, 0.1), connectivity=([1, 2], [2, 0])).built.connections[0]
    assert np.count_nonzero(c.weight) == 2
    assert c.weight[1, 2] > 4 and c.weight[2, 0] > 4


@pytest.mark.parametrize(
    "conn, message",
    [
        (
            dict(connectivity=([4], [0])),
            r"Connection 'a_to_b': Explicit.pre index 4 out of range for a source of 4 neurons",
        ),
        (
            dict(connectivity=([0], [3])),
            r"Connection 'a_to_b': Explicit.post index 3 out of range for a target of 3 neurons",
        ),
        (
            dict(weight=np.ones((3, 4))),
            r"Connection 'a_to_b': weight array must have shape \[N_pre, N_post\] = \[4, 3\], got \[3, 4\]",
        ),
        (
            dict(weight=np.ones((4, 3)), connectivity=sl.FixedProbability(0.5)),
            r"Connection 'a_to_b': weight array has non-zero entries",
        ),
    ],
)
def test_shape_and_range_errors(conn, message):
    with pytest.raises(ValueError, match=message):
        two(**conn)


def test_kaiming_uniform_bound_dense():
    c = two(n_pre=64, n_post=40).built.connections[0]  # the default weight is KaimingUniform()
    bound = 1 / math.sqrt(64)
    assert np.abs(c.weight).max() <= bound
    assert np.abs(c.weight).max() > 0.98 * bound
    assert c.weight.min() < -0.9 * bound


def test_kaiming_uniform_gain():
    c = two(n_pre=64, n_post=40, weight=sl.KaimingUniform(gain=3.0)).built.connections[0]
    assert 0.98 * 3 / 8 < np.abs(c.weight).max() <= 3 / 8


def test_kaiming_uniform_recurrent_fan_in_excludes_self():
    c = rec(n=30).built.connections[0]
    bound = 1 / math.sqrt(29)
    assert np.abs(c.weight).max() <= bound
    assert np.abs(c.weight).max() > 1 / math.sqrt(30)


def test_kaiming_uniform_sparse_fan_in_is_the_mean_synapse_count():
    c = two(n_pre=400, n_post=50, connectivity=sl.FixedProbability(0.25)).built.connections[0]
    bound = 1 / math.sqrt(c.n_synapses / 50)
    assert np.abs(c.weight).max() <= bound
    assert np.abs(c.weight).max() > 0.98 * bound
    assert np.abs(c.weight).max() > 1.5 / math.sqrt(400)  # not the dense fan-in


# -- materialisation: per-neuron parameters ------------------------------------------------------------


def test_scalar_and_array_parameters():
    net = sl.Network([sl.LIF("h", 3, tau_mem=[10.0, 20.0, 30.0], v_thresh=0.5)])
    p = net.built.populations["h"]
    np.testing.assert_array_equal(p.params["tau_mem"], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(p.params["v_thresh"], [0.5, 0.5, 0.5])
    assert all(v.dtype == np.float64 and v.shape == (3,) for v in p.params.values())


def test_distributed_parameters_are_drawn_per_neuron():
    net = sl.Network(
        [
            sl.ALIF(
                "h",
                4000,
                tau_mem=sl.Gamma(20.0, shape=3),
                tau_syn=sl.Gamma(10.0),
                v_thresh=sl.Normal(1.0, 0.1),
                refractory=sl.Uniform(1.0, 3.0),
                beta=sl.Uniform(0.0, 0.1),
            )
        ],
        seed=42,
    )
    p = net.built.populations["h"].params
    assert p["tau_mem"].shape == (4000,)
    assert abs(p["tau_mem"].mean() - 20.0) < 0.6
    assert abs(p["tau_mem"].var() - 20.0**2 / 3) < 0.1 * 20.0**2 / 3
    assert abs(p["tau_syn"].mean() - 10.0) < 0.3
    assert abs(p["v_thresh"].mean() - 1.0) < 0.01 and abs(p["v_thresh"].std() - 0.1) < 0.01
    assert p["refractory"].min() >= 1.0 and p["refractory"].max() < 3.0
    assert p["beta"].min() >= 0.0 and p["beta"].max() < 0.1
    assert len(np.unique(p["tau_mem"])) == 4000


def test_li_bias_may_be_drawn_negative():
    b = sl.Network([sl.LI("o", 50, bias=sl.Normal(0.0, 1.0))], seed=1).built.populations["o"].params["bias"]
    assert b.min() < 0 < b.max()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(tau_mem=sl.Normal(1.0, 5.0)),
            r"ALIF 'h': tau_mem drawn from Normal\(mean=1.0, std=5.0\) has \d+ values that are not > 0",
        ),
        (dict(tau_syn=sl.Uniform(-1.0, 1.0)), r"ALIF 'h': tau_syn drawn from Uniform.* that are not > 0"),
        (dict(tau_adapt=sl.Normal(0.0, 1.0)), r"ALIF 'h': tau_adapt drawn from .* not > 0"),
        (dict(v_thresh=sl.Uniform(-2.0, -1.0)), r"ALIF 'h': v_thresh drawn from .* has 100 values that are not > 0"),
        (dict(refractory=sl.Uniform(-2.0, -1.0)), r"ALIF 'h': refractory drawn from .* not >= 0"),
        (dict(beta=sl.Normal(0.0, 1.0)), r"ALIF 'h': beta drawn from .* not >= 0"),
    ],
)
def test_drawn_values_out_of_range_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sl.Network([sl.ALIF("h", 100, **kwargs)], seed=0)


def test_drawn_tau_rejection_on_li():
    with pytest.raises(ValueError, match=r"LI 'o': tau_mem drawn from"):
        sl.Network([sl.LI("o", 100, tau_mem=sl.Normal(0.0, 1.0))])


def test_zero_width_distribution_is_a_constant():
    p = sl.Network([sl.LIF("h", 5, tau_mem=sl.Normal(20.0, 0.0))]).built.populations["h"].params
    np.testing.assert_array_equal(p["tau_mem"], np.full(5, 20.0))


def test_decay_factors_are_exact_exponentials():
    net = sl.Network(
        [sl.ALIF("h", 3, tau_mem=[0.5, 10.0, 20.0], tau_syn=[2.0, 0.5, 8.0], tau_adapt=[0.5, 100.0, 2000.0])], dt=0.5
    )
    p = net.built.populations["h"]
    np.testing.assert_allclose(p.alpha_mem, [math.exp(-1.0), math.exp(-0.05), math.exp(-0.025)], rtol=1e-15)
    np.testing.assert_allclose(p.alpha_syn, [math.exp(-0.25), math.exp(-1.0), math.exp(-1 / 16)], rtol=1e-15)
    np.testing.assert_allclose(p.rho, [math.exp(-1.0), math.exp(-0.005), math.exp(-0.00025)], rtol=1e-15)
    assert p.alpha_mem[0] != 1 - 0.5 / 0.5  # not forward Euler
    assert p.alpha_mem.dtype == np.float64


def test_delta_synapse_has_zero_alpha_syn():
    p = sl.Network([sl.LIF("h", 3)]).built.populations["h"]
    assert p.synapse == "delta"
    np.testing.assert_array_equal(p.alpha_syn, np.zeros(3))
    assert p.rho is None
    assert sl.Network([sl.LIF("h", 3, tau_syn=5.0)]).built.populations["h"].synapse == "exponential"


def test_readout_and_input_have_no_spiking_constants():
    b = sl.Network([sl.SpikeInput("i", 2), sl.LI("o", 2, tau_syn=4.0)]).built
    o, i = b.populations["o"], b.populations["i"]
    assert o.n_ref is None and o.rho is None and o.reset is None and not o.spiking
    np.testing.assert_allclose(o.alpha_syn, math.exp(-0.25) * np.ones(2), rtol=1e-15)
    assert i.alpha_mem is None and i.alpha_syn is None and i.synapse == "none" and i.is_input


@pytest.mark.parametrize(
    "dt, refractory, n_ref",
    [
        (1.0, [0.0, 0.4, 0.5, 1.49, 2.5, 5.0], [0, 0, 1, 1, 3, 5]),  # half steps round up, not to even
        (0.5, [1.2, 0.25, 0.2, 0.75], [2, 1, 0, 2]),
        (0.1, [5.0, 0.04, 0.05], [50, 0, 1]),
    ],
)
def test_refractory_steps(dt, refractory, n_ref):
    p = sl.Network([sl.LIF("h", len(refractory), refractory=refractory)], dt=dt).built.populations["h"]
    assert p.n_ref.dtype == np.int64
    np.testing.assert_array_equal(p.n_ref, n_ref)


# -- the built network ------------------------------------------------------------------------------------


def test_built_is_cached_and_read_only():
    net = random_net()
    b = net.built
    assert net.built is b and b.network is net and b.dt == net.dt
    hid = b.populations["hid"]
    for arr in (
        hid.params["tau_mem"],
        hid.alpha_mem,
        hid.alpha_syn,
        hid.rho,
        hid.n_ref,
        b.connections[0].mask,
        b.connections[0].weight,
    ):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    with pytest.raises(TypeError):
        b.populations["x"] = hid
    with pytest.raises(TypeError):
        hid.params["tau_mem"] = np.zeros(30)


def test_built_graph_queries():
    b = random_net().built
    assert list(b.populations) == ["inp", "hid", "out"]
    assert [p.name for p in b.inputs] == ["inp"]
    assert [p.name for p in b.neuron_populations] == ["hid", "out"]
    assert [c.name for c in b.incoming("hid")] == ["inp_to_hid", "hid_to_hid"]
    assert [c.name for c in b.outgoing("hid")] == ["hid_to_hid", "hid_to_out"]
    assert b.incoming("inp") == ()


def test_initial_params_and_trainable_names():
    net = sl.Network(
        [
            sl.SpikeInput("i", 2),
            sl.LIF("h", 3, tau_syn=5.0, train_tau_mem=True, train_tau_syn=True),
            sl.LI("o", 2, bias=[0.5, -0.5]),
        ],
        [sl.Connection("i", "h", trainable=False, weight=0.1), sl.Connection("h", "o")],
    )
    b = net.built
    params = b.initial_params()
    assert set(params) == {"i_to_h.weight", "h_to_o.weight", "h.alpha_mem", "h.alpha_syn", "o.bias"}
    assert b.trainable_names() == ("h_to_o.weight", "h.alpha_mem", "h.alpha_syn", "o.bias")
    np.testing.assert_array_equal(params["o.bias"], [0.5, -0.5])
    np.testing.assert_array_equal(params["h.alpha_mem"], b.populations["h"].alpha_mem)
    params["i_to_h.weight"][:] = 7.0  # fresh copies
    assert np.all(b.connections[0].weight == 0.1)
