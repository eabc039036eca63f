"""Fluctuation-driven, data-dependent initialisation (SPEC §7)."""

from __future__ import annotations

import json
import math

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom.data.dataset import ArrayDataset
from spikeloom.fluctuation import (
    KERNEL_TAUS,
    FluctuationConfig,
    fluctuation_init,
    psp_integrals,
    psp_kernel,
    variance_shares,
    weight_moments,
)

NUMPY = sl.get_backend("numpy")


def poisson(rng, T, B, n, rate_hz, dt=1.0):
    """Bernoulli spikes ``[T, B, n]`` at ``rate_hz`` per channel."""
    return rng.random((T, B, n)) < rate_hz * dt / 1000.0


def free_membrane(network, population, x, *, skip):
    """V ``[T - skip, B, n]`` of ``population`` with its threshold out of reach (no spike, no reset)."""
    pops = [attrs.evolve(p, v_thresh=1e12) if p.name == population and p.spiking else p for p in network.populations]
    net = sl.Network(pops, network.connections, dt=network.dt, seed=network.seed)
    rec = NUMPY.compile(net, dtype="float64").simulate(x, record={population: ("V",)})
    return rec[population]["V"][skip:]


def membrane_stats(v):
    """(mean over everything, RMS over neurons of each neuron's std over steps and batch)."""
    flat = v.reshape(-1, v.shape[-1])
    return float(flat.mean()), float(np.sqrt(np.mean(flat.var(axis=0))))


# -- the PSP kernel and its integrals -------------------------------------------------------------


def _built(pop, dt=1.0):
    net = sl.Network([sl.SpikeInput("inp", 1), pop], [sl.Connection("inp", pop.name)], dt=dt, seed=0)
    return net.built.populations[pop.name], net


@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("scale_input", [False, True])
def test_delta_synapse_integrals_are_truncated_geometric_sums(dt, scale_input):
    pop, _ = _built(sl.LIF("h", 3, tau_mem=np.array([10.0, 20.0, 35.0]), scale_input=scale_input), dt)
    eps_bar, eps_hat = psp_integrals(pop, dt)
    a = np.exp(-dt / np.array([10.0, 20.0, 35.0]))
    g = 1 - a if scale_input else np.ones(3)
    L = np.ceil(KERNEL_TAUS * np.array([10.0, 20.0, 35.0]) / dt)
    np.testing.assert_allclose(eps_bar, dt * g * (1 - a**L) / (1 - a), rtol=1e-12)
    np.testing.assert_allclose(eps_hat, dt * g**2 * (1 - a ** (2 * L)) / (1 - a**2), rtol=1e-12)


def _exp_sums(am, as_, L):
    """Finite sums of eps[t] = (am^(t+1) - as^(t+1)) / (am - as) and of its square over t < L."""

    def geo(r):
        return r * (1 - r**L) / (1 - r)

    s1 = (geo(am) - geo(as_)) / (am - as_)
    s2 = (geo(am * am) - 2 * geo(am * as_) + geo(as_ * as_)) / (am - as_) ** 2
    return s1, s2


@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_exponential_synapse_integrals_match_the_closed_form(dt):
    tau_mem, tau_syn = np.array([20.0, 15.0, 5.0]), np.array([5.0, 10.0, 30.0])
    pop, _ = _built(sl.LIF("h", 3, tau_mem=tau_mem, tau_syn=tau_syn), dt)
    eps_bar, eps_hat = psp_integrals(pop, dt)
    am, as_ = np.exp(-dt / tau_mem), np.exp(-dt / tau_syn)
    L = np.ceil(KERNEL_TAUS * np.maximum(tau_mem, tau_syn) / dt)
    s1, s2 = _exp_sums(am, as_, L)
    np.testing.assert_allclose(eps_bar, dt * s1, rtol=1e-10)
    np.testing.assert_allclose(eps_hat, dt * s2, rtol=1e-10)
    # and the untruncated integrals are within e^-10 of them
    inf_bar = dt / ((1 - am) * (1 - as_))
    np.testing.assert_allclose(eps_bar, inf_bar, rtol=1e-3)
    assert np.all(eps_bar < inf_bar)


def test_the_kernel_is_the_reference_backends_response_to_one_spike():
    pop = sl.LIF("h", 2, tau_mem=np.array([20.0, 7.0]), tau_syn=np.array([5.0, 12.0]), scale_input=True)
    bpop, net = _built(attrs.evolve(pop, v_thresh=1e12))
    net = attrs.evolve(net, connections=[sl.Connection("inp", "h", weight=np.ones((1, 2)))])
    x = np.zeros((60, 1, 1))
    x[0, 0, 0] = 1.0
    v = NUMPY.compile(net, dtype="float64").simulate(x, record={"h": ("V",)})["h"]["V"][:, 0]
    kernel = psp_kernel(bpop.alpha_mem, bpop.alpha_syn, 1 - bpop.alpha_mem, 59)
    np.testing.assert_allclose(v[1:], kernel, rtol=1e-12, atol=1e-15)  # delay 1: the spike lands at step 1
    assert v[0].tolist() == [0.0, 0.0]


# -- the weight statistics ------------------------------------------------------------------------


def test_variance_shares():
    np.testing.assert_allclose(variance_shares([False, False, True], 0.9), [0.45, 0.45, 0.1])
    np.testing.assert_allclose(variance_shares([False, True, True], 0.8), [0.8, 0.1, 0.1])
    np.testing.assert_allclose(variance_shares([False, False], 0.9), [0.5, 0.5])
    np.testing.assert_allclose(variance_shares([True], 0.9), [1.0])


def test_weight_moments_reduce_to_the_single_afferent_formula():
    N, nu, eps_bar, eps_hat, mu_u, theta, xi = 200.0, 0.015, 30.0, 12.0, 0.3, 1.0, 2.0
    mu_w, var = weight_moments([[N]], [nu], [1.0], np.array([eps_bar]), np.array([eps_hat]), mu_u, (theta - mu_u) / xi)
    assert mu_w[0] == pytest.approx(mu_u / (N * nu * eps_bar), rel=1e-14)
    assert var[0, 0] == pytest.approx(((theta - mu_u) / xi) ** 2 / (N * nu * eps_hat) - mu_w[0] ** 2, rel=1e-14)


# -- free membrane potential on Poisson input -------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        sl.LIF("h", 400, tau_mem=20.0, tau_syn=5.0),
        sl.LIF("h", 400, tau_mem=20.0),  # delta synapse
        sl.LIF("h", 400, tau_mem=10.0, tau_syn=3.0, scale_input=True),
        sl.LIF("h", 400, tau_mem=sl.Gamma(20.0), tau_syn=sl.Gamma(10.0)),  # heterogeneous
        sl.ALIF("h", 400, tau_mem=20.0, tau_syn=5.0, v_thresh=0.6),
    ],
    ids=["exponential", "delta", "scaled", "heterogeneous", "alif"],
)
@pytest.mark.parametrize("mu_u,xi", [(0.0, 1.5), (0.3, 2.0)])
def test_free_membrane_potential_meets_the_targets(hidden, mu_u, xi):
    rng = np.random.default_rng(5)
    net = sl.Network([sl.SpikeInput("inp", 300), hidden], [sl.Connection("inp", "h")], seed=11)
    x = poisson(rng, 500, 4, 300, 20.0)
    new, report = fluctuation_init(net, x, FluctuationConfig(xi=xi, mu_u=mu_u))
    theta = float(np.mean(new.built.populations["h"].params["v_thresh"]))
    sigma_u = (theta - mu_u) / xi
    np.testing.assert_allclose(report.populations["h"].sigma_u, sigma_u)
    tau_max = np.max(
        np.maximum(net.built.populations["h"].params["tau_mem"], net.built.populations["h"].params["tau_syn"])
    )
    mean, std = membrane_stats(free_membrane(new, "h", x, skip=int(min(5 * tau_max, 200))))
    assert abs(mean - mu_u) <= 0.1 * max(abs(mu_u), sigma_u), (mean, mu_u)
    assert std == pytest.approx(sigma_u, rel=0.1)


def test_the_input_rate_is_measured_from_the_sample():
    rng = np.random.default_rng(0)
    net = sl.Network([sl.SpikeInput("inp", 100), sl.LIF("h", 20, tau_syn=5.0)], [sl.Connection("inp", "h")], seed=1)
    x = poisson(rng, 200, 8, 100, 30.0)
    _, report = fluctuation_init(net, x)
    assert report.input_rates_hz["inp"] == pytest.approx(1000.0 * x.mean(), rel=1e-12)
    # twice the input rate: the same targets need weights 1/sqrt(2) as spread (centred: mu_w = 0)
    x2 = poisson(rng, 200, 8, 100, 60.0)
    _, report2 = fluctuation_init(net, x2)
    ratio = report2.input_rates_hz["inp"] / report.input_rates_hz["inp"]
    assert ratio == pytest.approx(2.0, rel=0.05)
    s1 = report.populations["h"].afferents[0].sigma_w
    s2 = report2.populations["h"].afferents[0].sigma_w
    np.testing.assert_allclose(s2, s1 / math.sqrt(ratio), rtol=1e-12)


# -- several afferents ------------------------------------------------------------------------------


def test_multi_afferent_split_shares_mu_w_and_splits_the_variance():
    rng = np.random.default_rng(1)
    net = sl.Network(
        [sl.SpikeInput("a", 100), sl.SpikeInput("b", 300), sl.LIF("h", 250, tau_syn=5.0)],
        [sl.Connection("a", "h"), sl.Connection("b", "h"), sl.Connection("h", "h")],
        seed=2,
    )
    x = {"a": poisson(rng, 300, 4, 100, 40.0), "b": poisson(rng, 300, 4, 300, 10.0)}
    cfg = FluctuationConfig(xi=2.0, mu_u=0.2, alpha=0.9, recurrent_rate_hz=12.0)
    new, report = fluctuation_init(net, x, cfg)
    p = report.populations["h"]
    by = {a.connection: a for a in p.afferents}
    assert [by[k].variance_share for k in ("a_to_h", "b_to_h", "h_to_h")] == pytest.approx([0.45, 0.45, 0.1])
    assert not by["a_to_h"].recurrent and not by["b_to_h"].recurrent and by["h_to_h"].recurrent
    assert by["h_to_h"].rate_hz == 12.0 and not by["h_to_h"].rate_measured
    nu = {"a": x["a"].mean(), "b": x["b"].mean(), "h": 0.012}  # per ms (dt = 1 ms)
    assert p.n_total == 100 + 300 + 249
    drive = 100 * nu["a"] + 300 * nu["b"] + 249 * nu["h"]
    eps_bar, eps_hat = psp_integrals(net.built.populations["h"], 1.0)
    mu_w = 0.2 / (eps_bar[0] * drive)
    sigma_u2 = ((1.0 - 0.2) / 2.0) ** 2
    np.testing.assert_allclose(p.mu_w, mu_w, rtol=1e-12)
    for conn, n, share, src in (("a_to_h", 100, 0.45, "a"), ("b_to_h", 300, 0.45, "b"), ("h_to_h", 249, 0.1, "h")):
        sigma = math.sqrt(share * sigma_u2 / (n * nu[src] * eps_hat[0]) - mu_w**2)
        np.testing.assert_allclose(by[conn].sigma_w, sigma, rtol=1e-12)
        w = {c.name: c.weight for c in new.built.connections}[conn]
        mask = new.built.connections[[c.name for c in new.built.connections].index(conn)].mask
        assert w[mask].mean() == pytest.approx(mu_w, abs=4 * sigma / math.sqrt(mask.sum()))
        assert w[mask].std() == pytest.approx(sigma, rel=0.03)
    assert np.all(np.diag({c.name: c.weight for c in new.built.connections}["h_to_h"]) == 0)


def test_two_feed_forward_afferents_meet_the_targets_together():
    rng = np.random.default_rng(2)
    net = sl.Network(
        [sl.SpikeInput("a", 150), sl.SpikeInput("b", 250), sl.LIF("h", 300, tau_syn=5.0)],
        [sl.Connection("a", "h"), sl.Connection("b", "h", delay=3)],
        seed=4,
    )
    x = {"a": poisson(rng, 500, 4, 150, 30.0), "b": poisson(rng, 500, 4, 250, 8.0)}
    new, _ = fluctuation_init(net, x, FluctuationConfig(xi=2.0, mu_u=0.3))
    mean, std = membrane_stats(free_membrane(new, "h", x, skip=100))
    assert mean == pytest.approx(0.3, rel=0.1)
    assert std == pytest.approx(0.35, rel=0.1)


def test_sparse_connectivity_uses_each_neurons_own_fan_in():
    rng = np.random.default_rng(3)
    net = sl.Network(
        [sl.SpikeInput("inp", 400), sl.LIF("h", 300, tau_syn=5.0)],
        [sl.Connection("inp", "h", connectivity=sl.FixedProbability(0.3))],
        seed=5,
    )
    x = poisson(rng, 500, 4, 400, 20.0)
    new, report = fluctuation_init(net, x, FluctuationConfig(xi=2.0, mu_u=0.3))
    fan_in = net.built.connections[0].mask.sum(axis=0)
    assert report.populations["h"].n_total == pytest.approx(fan_in.mean())
    assert np.all(new.built.connections[0].weight[~new.built.connections[0].mask] == 0)
    mean, std = membrane_stats(free_membrane(new, "h", x, skip=100))
    assert mean == pytest.approx(0.3, rel=0.1)
    assert std == pytest.approx(0.35, rel=0.1)


# -- layer by layer -------------------------------------------------------------------------------------


def _deep(n_layers=3, tau_syn=5.0, n=120, readout=True):
    pops = [sl.SpikeInput("inp", 200)] + [sl.LIF(f"h{i}", n, tau_syn=tau_syn) for i in range(n_layers)]
    if readout:
        pops.append(sl.LI("out", 5, tau_syn=5.0))
    conns = [sl.Connection(pops[i].name, pops[i + 1].name) for i in range(len(pops) - 1)]
    return sl.Network(pops, conns, seed=7)


def test_rates_are_measured_layer_by_layer_after_the_layers_before_were_initialised():
    rng = np.random.default_rng(4)
    net = _deep()
    x = poisson(rng, 300, 8, 200, 20.0)
    new, report = fluctuation_init(net, x, FluctuationConfig(xi=1.5))
    assert report.order == ("h0", "h1", "h2")
    # each layer's rate is what the final network fires at on the sample (later layers do not feed back)
    rec = NUMPY.compile(new, dtype="float64").simulate(x, record={f"h{i}": ("z",) for i in range(3)})
    for i in range(3):
        assert report.populations[f"h{i}"].rate_hz == pytest.approx(1000 * rec[f"h{i}"]["z"].mean(), rel=1e-12)
        assert report.populations[f"h{i}"].rate_hz > 1.0
    # and each deeper layer's weights were drawn from the rate measured for the layer before it
    for i in (1, 2):
        aff = report.populations[f"h{i}"].afferents[0]
        assert aff.source == f"h{i - 1}" and aff.rate_measured
        assert aff.rate_hz == report.populations[f"h{i - 1}"].rate_hz
        p = report.populations[f"h{i}"]
        expected = p.sigma_u / np.sqrt(aff.n_pre * aff.rate_hz / 1000.0 * p.eps_hat)
        np.testing.assert_allclose(aff.sigma_w, expected, rtol=1e-12)
    # the readout keeps its own weights by default
    np.testing.assert_array_equal(new.built.connections[-1].weight, net.built.connections[-1].weight)
    assert "out" not in report.populations
    rates = report.rates_hz()
    assert set(rates) == {"inp", "h0", "h1", "h2"}
    json.dumps(report.to_dict())
    assert "h2" in report.summary()


def test_deep_rates_stay_in_a_working_range_where_the_default_init_does_not():
    rng = np.random.default_rng(6)
    net = _deep(n_layers=4, readout=False)
    x = poisson(rng, 300, 8, 200, 20.0)
    _, report = fluctuation_init(net, x)
    rates = [report.populations[f"h{i}"].rate_hz for i in range(4)]
    assert all(2.0 < r < 40.0 for r in rates), rates


def test_a_readout_can_be_initialised_too():
    rng = np.random.default_rng(8)
    net = _deep(n_layers=1, n=300)
    x = poisson(rng, 400, 4, 200, 20.0)
    new, report = fluctuation_init(net, x, FluctuationConfig(readout_sigma_u=0.5))
    assert report.order == ("h0", "out")
    out = report.populations["out"]
    assert out.rate_hz is None and out.kind == "LI"
    np.testing.assert_allclose(out.mu_w, 0.0)
    assert out.afferents[0].rate_hz == report.populations["h0"].rate_hz
    v = NUMPY.compile(new, dtype="float64").simulate(x, record={"out": ("V",)})["out"]["V"][100:]
    # the readout's membrane is free by nature; its spread matches the target (5 neurons: 20 %)
    mean, std = membrane_stats(v)
    assert std == pytest.approx(0.5, rel=0.2)


def test_a_self_connection_is_drawn_again_with_the_populations_own_measured_rate():
    rng = np.random.default_rng(9)
    net = sl.Network(
        [sl.SpikeInput("inp", 100), sl.LIF("h", 50, tau_syn=5.0)],
        [sl.Connection("inp", "h"), sl.Connection("h", "h")],
        seed=3,
    )
    x = poisson(rng, 200, 4, 100, 25.0)
    new, report = fluctuation_init(net, x)
    ff, rec = report.populations["h"].afferents
    assert rec.recurrent and rec.rate_measured and not ff.recurrent
    # the self-connection's rate is h's own rate after a first draw that assumed the input's rate
    first = fluctuation_init(net, x, FluctuationConfig(recurrent_rate_hz=ff.rate_hz))[1].populations["h"]
    assert first.afferents[1].rate_hz == pytest.approx(ff.rate_hz) and not first.afferents[1].rate_measured
    assert rec.rate_hz == pytest.approx(first.rate_hz, rel=1e-12)
    assert rec.rate_hz != pytest.approx(ff.rate_hz, rel=0.05)
    # and the reported rate of h is what the returned network fires at
    z = NUMPY.compile(new, dtype="float64").simulate(x, record={"h": ("z",)})["h"]["z"]
    assert report.populations["h"].rate_hz == pytest.approx(1000 * z.mean(), rel=1e-12)


def test_feedback_connections_count_as_recurrent():
    rng = np.random.default_rng(10)
    net = sl.Network(
        [sl.SpikeInput("inp", 100), sl.LIF("a", 40, tau_syn=5.0), sl.LIF("b", 40, tau_syn=5.0)],
        [sl.Connection("inp", "a"), sl.Connection("a", "b"), sl.Connection("b", "a")],
        seed=3,
    )
    _, report = fluctuation_init(net, poisson(rng, 200, 4, 100, 25.0), FluctuationConfig(recurrent_rate_hz=5.0))
    assert report.order == ("a", "b")
    by = {x.connection: x for x in report.populations["a"].afferents}
    assert by["b_to_a"].recurrent and by["b_to_a"].rate_hz == 5.0
    assert by["inp_to_a"].variance_share == pytest.approx(0.9)
    assert not report.populations["b"].afferents[0].recurrent


def test_a_dataset_is_sampled():
    rng = np.random.default_rng(11)
    spikes = poisson(rng, 100, 40, 50, 30.0).transpose(1, 0, 2)  # [S, T, N]
    ds = ArrayDataset(spikes, np.arange(40) % 2)
    net = sl.Network([sl.SpikeInput("inp", 50), sl.LIF("h", 10, tau_syn=5.0)], [sl.Connection("inp", "h")], seed=1)
    new, report = fluctuation_init(net, ds, FluctuationConfig(sample_size=10))
    idx = np.sort(sl.distributions.rng_for(1, "fluctuation/sample").choice(40, size=10, replace=False))
    assert report.input_rates_hz["inp"] == pytest.approx(1000 * spikes[idx].mean(), rel=1e-12)
    new_all, report_all = fluctuation_init(net, ds, FluctuationConfig(sample_size=1000))
    assert report_all.input_rates_hz["inp"] == pytest.approx(1000 * spikes.mean(), rel=1e-12)


def test_seeded_reproducibility():
    rng = np.random.default_rng(12)
    x = poisson(rng, 200, 4, 200, 20.0)
    net = _deep(n_layers=2)
    a, _ = fluctuation_init(net, x)
    b, _ = fluctuation_init(net, x)
    for ca, cb in zip(a.built.connections, b.built.connections, strict=True):
        np.testing.assert_array_equal(ca.weight, cb.weight)
    c, _ = fluctuation_init(attrs.evolve(net, seed=8), x)
    assert not np.array_equal(a.built.connections[0].weight, c.built.connections[0].weight)
    # the result is an ordinary network: it round-trips through JSON with its explicit weights
    assert sl.Network.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_another_backend_can_measure_the_rates():
    pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x = poisson(rng, 200, 4, 200, 20.0)
    net = _deep(n_layers=2, readout=False)
    _, ref = fluctuation_init(net, x)
    _, other = fluctuation_init(net, x, backend=sl.get_backend("torch"), dtype="float64")
    for name in ("h0", "h1"):
        assert other.populations[name].rate_hz == pytest.approx(ref.populations[name].rate_hz, rel=1e-6)


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("xi", [1.0, 3.0, 0.5, -2.0, float("nan"), float("inf")])
def test_xi_must_lie_between_1_and_3(xi):
    with pytest.raises(ValueError, match=r"FluctuationConfig.xi .* strictly between 1 and 3"):
        FluctuationConfig(xi=xi)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"xi": "2"}, r"FluctuationConfig.xi must be a number"),
        ({"mu_u": float("nan")}, r"FluctuationConfig.mu_u must be finite"),
        ({"mu_u": True}, r"FluctuationConfig.mu_u must be a number"),
        ({"alpha": 1.5}, r"FluctuationConfig.alpha .* must lie in \[0, 1\]"),
        ({"alpha": -0.1}, r"FluctuationConfig.alpha"),
        ({"sample_size": 0}, r"FluctuationConfig.sample_size must be an integer >= 1"),
        ({"sample_size": 2.0}, r"FluctuationConfig.sample_size"),
        ({"readout_sigma_u": 0.0}, r"FluctuationConfig.readout_sigma_u must be None or a finite number > 0"),
        ({"recurrent_rate_hz": -1.0}, r"FluctuationConfig.recurrent_rate_hz"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FluctuationConfig(**kwargs)


def _one_layer(**kwargs):
    return sl.Network([sl.SpikeInput("inp", 100), sl.LIF("h", 20, tau_syn=5.0, **kwargs)], [sl.Connection("inp", "h")])


def test_a_silent_input_is_an_error():
    x = np.zeros((100, 2, 100), dtype=bool)
    with pytest.raises(ValueError, match=r"LIF 'h': its afferent 'inp' .* fired at 0 Hz on the data sample"):
        fluctuation_init(_one_layer(), x)


def test_a_silent_hidden_layer_upstream_is_an_error():
    rng = np.random.default_rng(14)
    net = _deep(n_layers=2, readout=False)
    # h0's only synapse comes from input channel 0, which is silent, so h0 stays silent
    conns = [attrs.evolve(net.connections[0], connectivity=sl.Explicit([0], [0])), net.connections[1]]
    net = sl.Network(net.populations, conns, seed=7)
    x = poisson(rng, 50, 2, 200, 20.0)
    x[:, :, 0] = False
    with pytest.raises(ValueError, match=r"LIF 'h1': its afferent 'h0' \(connection 'h0_to_h1'\) fired at 0 Hz"):
        fluctuation_init(net, x)


def test_mu_u_must_lie_below_the_threshold():
    x = poisson(np.random.default_rng(0), 50, 2, 100, 20.0)
    with pytest.raises(ValueError, match=r"LIF 'h': FluctuationConfig.mu_u=1 must lie below the threshold"):
        fluctuation_init(_one_layer(), x, FluctuationConfig(mu_u=1.0))


def test_unreachable_targets_are_an_error():
    x = poisson(np.random.default_rng(0), 50, 2, 100, 20.0)
    with pytest.raises(ValueError, match=r"targets cannot be met for connection 'inp_to_h'.*lower \|mu_u\|"):
        fluctuation_init(_one_layer(), x, FluctuationConfig(mu_u=0.9, xi=2.9))


def test_populations_cut_off_from_the_inputs_are_an_error():
    net = sl.Network(
        [sl.SpikeInput("inp", 10), sl.LIF("h", 5), sl.LIF("a", 5), sl.LIF("b", 5)],
        [sl.Connection("inp", "h"), sl.Connection("a", "b"), sl.Connection("b", "a")],
    )
    x = poisson(np.random.default_rng(0), 50, 2, 10, 50.0)
    with pytest.raises(ValueError, match=r"populations \['a', 'b'\] receive nothing from any SpikeInput"):
        fluctuation_init(net, x)


def test_a_source_without_input_is_an_error():
    net = sl.Network(
        [sl.SpikeInput("inp", 10), sl.LIF("lonely", 5), sl.LIF("h", 5)],
        [sl.Connection("inp", "h"), sl.Connection("lonely", "h")],
    )
    x = poisson(np.random.default_rng(0), 50, 2, 10, 50.0)
    with pytest.raises(ValueError, match=r"LIF 'lonely' has no incoming connection, so it never fires, yet it feeds"):
        fluctuation_init(net, x)


def test_an_empty_dataset_is_an_error():
    class Empty:
        n_inputs, n_classes, n_steps = 100, 2, 10

        def __len__(self):
            return 0

        def batch(self, indices):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match=r"fluctuation_init: the data set is empty"):
        fluctuation_init(_one_layer(), Empty())


@pytest.mark.parametrize(
    "args,match",
    [
        (("not a network", np.zeros((5, 1, 100))), r"network must be a spikeloom.Network"),
        ((_one_layer(), np.zeros((5, 1, 100)), {"xi": 2}), r"config must be a FluctuationConfig"),
        ((_one_layer(), np.zeros((5, 1, 7))), r"sample_x: .*expected N=100 input channels"),
        ((_one_layer(), np.zeros((5, 100))), r"sample_x: .*expected shape \[T, B, N\]"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        fluctuation_init(*args)
