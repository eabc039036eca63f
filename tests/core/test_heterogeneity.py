"""Heterogeneous time constants (SPEC §8): the four configurations, training of decay factors, the plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spikeloom as sl
from spikeloom.heterogeneity import (
    CONFIGURATIONS,
    HET_INIT_HET_TR,
    HET_INIT_STD_TR,
    HOM_INIT_HET_TR,
    HOM_INIT_STD_TR,
    Heterogeneity,
    alpha_from_tau,
    apply_heterogeneity,
    as_heterogeneity,
    heterogeneous_network,
    tau_from_alpha,
    time_constants,
)
from spikeloom.rules import ALPHA_CLIP

# -- the configurations -----------------------------------------------------------------------------


def test_the_four_configurations_and_their_names():
    assert list(CONFIGURATIONS) == ["HomInit-StdTr", "HetInit-StdTr", "HomInit-HetTr", "HetInit-HetTr"]
    assert CONFIGURATIONS["HomInit-StdTr"] == HOM_INIT_STD_TR == Heterogeneity(het_init=False, het_train=False)
    assert CONFIGURATIONS["HetInit-StdTr"] == HET_INIT_STD_TR == Heterogeneity(het_init=True, het_train=False)
    assert CONFIGURATIONS["HomInit-HetTr"] == HOM_INIT_HET_TR == Heterogeneity(het_init=False, het_train=True)
    assert CONFIGURATIONS["HetInit-HetTr"] == HET_INIT_HET_TR == Heterogeneity(het_init=True, het_train=True)
    assert str(HET_INIT_HET_TR) == "HetInit-HetTr"


@pytest.mark.parametrize("name", ["HetInit-HetTr", "hetinit_hettr", "HETINIT HETTR", "hetinit-hettr"])
def test_names_are_read_loosely(name):
    assert as_heterogeneity(name) is HET_INIT_HET_TR


@pytest.mark.parametrize("bad", ["het", "HetInit", "", None, 3, "HetInit-HetTrx"])
def test_unknown_configurations_are_an_error(bad):
    with pytest.raises(ValueError, match=r"heterogeneity: unknown configuration .* choose one of \['HomInit-StdTr'"):
        as_heterogeneity(bad)


@pytest.mark.parametrize("field", ["het_init", "het_train"])
def test_heterogeneity_fields_are_bools(field):
    kwargs = {"het_init": False, "het_train": False, field: 1}
    with pytest.raises(ValueError, match=f"Heterogeneity.{field} must be True or False"):
        Heterogeneity(**kwargs)


# -- applying a configuration -------------------------------------------------------------------------


def test_hom_init_std_tr_keeps_constants_and_trains_nothing():
    pop = apply_heterogeneity(sl.LIF("h", 10, tau_mem=20.0, tau_syn=10.0, train_tau_mem=True), "HomInit-StdTr")
    assert (pop.tau_mem, pop.tau_syn, pop.train_tau_mem, pop.train_tau_syn) == (20.0, 10.0, False, False)
    assert not pop.heterogeneous


def test_het_init_draws_gamma_with_shape_3_around_the_mean():
    pop = apply_heterogeneity(sl.LIF("h", 4000, tau_mem=20.0, tau_syn=10.0), "HetInit-StdTr")
    assert pop.tau_mem == sl.Gamma(20.0, shape=3.0) and pop.tau_syn == sl.Gamma(10.0, shape=3.0)
    assert not pop.train_tau_mem and not pop.train_tau_syn
    net = sl.Network([sl.SpikeInput("i", 1), pop], [sl.Connection("i", "h")], seed=3)
    tau = net.built.populations["h"].params["tau_mem"]
    assert tau.mean() == pytest.approx(20.0, rel=0.03)
    assert tau.var() == pytest.approx(20.0**2 / 3, rel=0.1)  # Gamma(k=3, scale=mean/3): var = mean^2/k
    assert len(np.unique(tau)) == tau.size


def test_het_tr_flags_training_and_hom_init_keeps_one_value():
    pop = apply_heterogeneity(sl.ALIF("h", 5, tau_mem=sl.Gamma(25.0), tau_syn=8.0), "HomInit-HetTr")
    assert isinstance(pop, sl.ALIF)
    assert (pop.tau_mem, pop.tau_syn, pop.train_tau_mem, pop.train_tau_syn) == (25.0, 8.0, True, True)
    pop = apply_heterogeneity(sl.LIF("h", 5, tau_mem=np.array([10.0, 20, 30, 40, 50]), tau_syn=5.0), "HetInit-HetTr")
    assert pop.tau_mem == sl.Gamma(30.0) and pop.train_tau_mem and pop.train_tau_syn


def test_explicit_means_shape_and_which():
    pop = apply_heterogeneity(
        sl.LIF("h", 5, tau_syn=5.0), HET_INIT_HET_TR, tau_mem=15.0, tau_syn=7.0, shape=5.0, which=["tau_syn"]
    )
    assert pop.tau_mem == 20.0 and not pop.train_tau_mem
    assert pop.tau_syn == sl.Gamma(7.0, shape=5.0) and pop.train_tau_syn


def test_a_delta_synapse_keeps_its_delta_by_default():
    pop = apply_heterogeneity(sl.LIF("h", 5), "HetInit-HetTr")
    assert pop.synapse == "delta" and pop.tau_syn == 0.0 and not pop.train_tau_syn
    assert pop.tau_mem == sl.Gamma(20.0) and pop.train_tau_mem
    # a tau_syn mean turns it into an exponential synapse that the configuration governs
    pop = apply_heterogeneity(sl.LIF("h", 5), "HomInit-HetTr", tau_syn=10.0)
    assert pop.synapse == "exponential" and pop.tau_syn == 10.0 and pop.train_tau_syn


@pytest.mark.parametrize("config", list(CONFIGURATIONS))
def test_naming_tau_syn_of_a_delta_synapse_is_an_error(config):
    with pytest.raises(ValueError, match=r"LIF 'h' has a delta synapse \(tau_syn=0\), so tau_syn cannot be"):
        apply_heterogeneity(sl.LIF("h", 5), config, which=("tau_mem", "tau_syn"))


def test_populations_enforce_the_delta_rule_too():
    with pytest.raises(ValueError, match=r"train_tau_syn=True needs an exponential synapse"):
        sl.LIF("h", 3, train_tau_syn=True)


def test_readouts_can_be_heterogeneous():
    pop = apply_heterogeneity(sl.LI("out", 3, tau_mem=30.0), "HetInit-HetTr")
    assert pop.tau_mem == sl.Gamma(30.0) and pop.train_tau_mem and pop.bias == 0.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tau_mem": 0.0}, r"tau_mem must be None or a mean time constant in ms > 0"),
        ({"tau_syn": -1.0}, r"tau_syn must be None or a mean time constant in ms > 0"),
        ({"tau_mem": True}, r"tau_mem must be None"),
        ({"shape": 0.0}, r"shape \(of the Gamma distribution\) must be a number > 0"),
        ({"which": ("tau_adapt",)}, r"which must name some of \['tau_mem', 'tau_syn'\]"),
        ({"which": ()}, r"which must name some of"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        apply_heterogeneity(sl.LIF("h", 5, tau_syn=5.0), "HetInit-HetTr", **kwargs)


def test_inputs_have_no_time_constants():
    with pytest.raises(ValueError, match=r"SpikeInput 'i' has no time constants"):
        apply_heterogeneity(sl.SpikeInput("i", 3), "HetInit-StdTr")


def test_heterogeneous_network_touches_spiking_populations_only():
    net = sl.Network(
        [sl.SpikeInput("i", 4), sl.LIF("a", 5, tau_syn=5.0), sl.ALIF("b", 5), sl.LI("out", 2)],
        [sl.Connection("i", "a"), sl.Connection("a", "b"), sl.Connection("b", "out")],
        seed=2,
    )
    new = heterogeneous_network(net, "HetInit-HetTr")
    a, b, out = (new.population(n) for n in ("a", "b", "out"))
    assert a.heterogeneous and a.train_tau_mem and a.train_tau_syn
    assert b.heterogeneous and b.train_tau_mem and not b.train_tau_syn  # delta synapse
    assert out == net.population("out")
    assert new.connections == net.connections and new.seed == 2
    only = heterogeneous_network(net, "HomInit-HetTr", populations=["out"])
    assert only.population("out").train_tau_mem and only.population("a") == net.population("a")
    with pytest.raises(ValueError, match=r"heterogeneous_network: unknown populations \['zz'\]"):
        heterogeneous_network(net, "HomInit-HetTr", populations=["zz"])
    with pytest.raises(ValueError, match=r"heterogeneous_network: network must be a spikeloom.Network"):
        heterogeneous_network("net", "HomInit-HetTr")


def test_alpha_and_tau_conversions():
    tau = np.array([3.5, 20.0, 150.0])
    np.testing.assert_allclose(tau_from_alpha(alpha_from_tau(tau, 0.5), 0.5), tau, rtol=1e-13)
    assert tau_from_alpha(ALPHA_CLIP[0], 1.0) == pytest.approx(1 / (1 - math.log(2)))  # about 3.26 ms
    assert tau_from_alpha(ALPHA_CLIP[1], 1.0) == pytest.approx(199.5, abs=0.01)
    with pytest.raises(ValueError, match=r"tau_from_alpha: decay factors must lie strictly between 0 and 1"):
        tau_from_alpha([0.5, 1.0], 1.0)


def test_time_constants_reads_alpha_and_tau_entries():
    params = {
        "h.alpha_mem": np.exp(-1.0 / np.array([10.0, 20.0])),
        "h.alpha_syn": np.exp(-1.0 / np.array([5.0, 6.0])),
        "g.tau_mem": np.array([7.0]),
        "in_to_h.weight": np.ones((2, 2)),
    }
    taus = time_constants(params, 1.0)
    assert set(taus) == {("h", "tau_mem"), ("h", "tau_syn"), ("g", "tau_mem")}
    np.testing.assert_allclose(taus[("h", "tau_mem")], [10.0, 20.0])
    np.testing.assert_allclose(taus[("h", "tau_syn")], [5.0, 6.0])


# -- training decay factors ----------------------------------------------------------------------------


def _tiny_task(seed=0):
    rng = np.random.default_rng(seed)
    T, B, n_in = 40, 8, 6
    labels = np.arange(B) % 2
    x = np.zeros((T, B, n_in), dtype=bool)
    for b, k in enumerate(labels):
        x[:, b, 3 * k : 3 * k + 3] = rng.random((T, 3)) < 0.2
    return x, labels


def test_training_moves_decay_factors_and_keeps_them_clipped():
    x, labels = _tiny_task()
    hidden = apply_heterogeneity(sl.LIF("h", 12, tau_mem=20.0, tau_syn=10.0), "HetInit-HetTr")
    out = apply_heterogeneity(sl.LI("out", 2, tau_mem=20.0), "HomInit-HetTr")
    net = sl.Network(
        [sl.SpikeInput("inp", 6), hidden, out],
        [sl.Connection("inp", "h", weight=sl.Normal(0.0, 0.5)), sl.Connection("h", "out")],
        seed=4,
    )
    compiled = sl.get_backend("numpy").compile(net, rule=sl.BPTT(), readout=sl.Readout("out", "max"), dtype="float64")
    before = compiled.get_params()
    names = ("h.alpha_mem", "h.alpha_syn", "out.alpha_mem")
    assert all(n in compiled.trainable_names() for n in names)
    assert len(np.unique(before["h.alpha_mem"])) == 12  # heterogeneous start
    optimizer = sl.Adam(lr=0.05)  # large steps: the clip bounds are reached within a few steps
    for _ in range(15):
        compiled.train_step(x, labels, optimizer)
        params = compiled.get_params()
        for n in names:
            assert np.all(params[n] >= ALPHA_CLIP[0]) and np.all(params[n] <= ALPHA_CLIP[1]), n
    after = compiled.get_params()
    for n in names:
        assert np.max(np.abs(after[n] - before[n])) > 0.05, n
    stacked = np.concatenate([after[n] for n in names])
    assert np.any(np.isclose(stacked, ALPHA_CLIP[0], rtol=0, atol=1e-15)) or np.any(
        np.isclose(stacked, ALPHA_CLIP[1], rtol=0, atol=1e-15)
    ), "no decay factor reached a clip bound: the clip was not exercised"


def test_std_tr_leaves_time_constants_untrained():
    hidden = apply_heterogeneity(sl.LIF("h", 4, tau_mem=20.0, tau_syn=10.0), "HetInit-StdTr")
    net = sl.Network(
        [sl.SpikeInput("inp", 6), hidden, sl.LI("out", 2)], [sl.Connection("inp", "h"), sl.Connection("h", "out")]
    )
    compiled = sl.get_backend("numpy").compile(net, rule=sl.BPTT(), readout=sl.Readout("out", "max"))
    assert not any(n.endswith((".alpha_mem", ".alpha_syn")) for n in compiled.trainable_names())


# -- the plot --------------------------------------------------------------------------------------------


def test_plot_time_constants_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from spikeloom.plotting import plot_time_constants

    rng = np.random.default_rng(0)
    before = {"h.alpha_mem": alpha_from_tau(rng.gamma(3, 20 / 3, 50) + 4, 1.0), "h.alpha_syn": np.full(50, 0.9)}
    after = {k: np.clip(v + rng.normal(0, 0.01, 50), *ALPHA_CLIP) for k, v in before.items()}
    after["out.tau_mem"] = np.full(3, 25.0)
    path = tmp_path / "taus.png"
    plot_time_constants(before, after, path, dt=1.0)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_plot_time_constants_needs_time_constants(tmp_path):
    from spikeloom.plotting import plot_time_constants

    with pytest.raises(ValueError, match=r"plot_time_constants: no '<pop>.alpha_mem'"):
        plot_time_constants({"a.weight": np.ones(2)}, {}, tmp_path / "x.png")
