"""Learning-rule values (SPEC §6), the structural checks at compile time, e-prop's feedback matrices
and the clipping of trained decay factors (SPEC §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spikeloom as sl
from spikeloom.rules import ALPHA_CLIP, feedback_matrices, rule_from_dict, trained_populations


def numpy_backend():
    return sl.get_backend("numpy")


def ffnet(seed=0, n_in=4, n_h=5, n_out=3, hidden=None, out=None, conns=None):
    hidden = hidden or sl.LIF("h", n_h, tau_syn=5.0)
    out = out or sl.LI("out", n_out)
    conns = conns or [sl.Connection("inp", "h"), sl.Connection("h", "out")]
    return sl.Network([sl.SpikeInput("inp", n_in), hidden, out], conns, seed=seed)


def spikes(T=12, B=3, N=4, p=0.4, seed=0):
    return (np.random.default_rng(seed).random((T, B, N)) < p).astype(np.float64)


# -- rule values --------------------------------------------------------------------------------------


def test_bptt_defaults():
    r = sl.BPTT()
    assert r.surrogate == sl.SuperSpike(10.0) and type(r.surrogate) is sl.SuperSpike
    assert r.detach_reset is True
    assert r.kind == "bptt"


def test_eprop_defaults():
    r = sl.EProp()
    assert r.surrogate == sl.Triangle(0.3) and type(r.surrogate) is sl.Triangle
    assert r.feedback == "symmetric" and r.c_reg == 0.0 and r.target_rate == 10.0
    assert r.kind == "eprop"


def test_surrogate_given_as_dict():
    assert sl.BPTT({"kind": "atan", "alpha": 3.0}).surrogate == sl.Atan(3.0)
    assert sl.EProp(surrogate={"kind": "superspike", "beta": 100}).surrogate == sl.SuperSpike(100.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: sl.BPTT("superspike"), "surrogate"),
        (lambda: sl.BPTT(None), "surrogate"),
        (lambda: sl.BPTT(sl.SuperSpike, True), "surrogate"),
        (lambda: sl.BPTT({"kind": "relu"}), "kind"),
        (lambda: sl.BPTT(detach_reset=1), r"BPTT\.detach_reset"),
        (lambda: sl.BPTT(detach_reset="yes"), r"BPTT\.detach_reset"),
        (lambda: sl.BPTT(detach_reset=None), r"BPTT\.detach_reset"),
        (lambda: sl.EProp(surrogate=3.0), "surrogate"),
        (lambda: sl.EProp(feedback="Random"), r"EProp\.feedback"),
        (lambda: sl.EProp(feedback="broadcast"), r"EProp\.feedback"),
        (lambda: sl.EProp(feedback=None), r"EProp\.feedback"),
        (lambda: sl.EProp(c_reg=-1.0), r"EProp\.c_reg"),
        (lambda: sl.EProp(c_reg=float("nan")), r"EProp\.c_reg"),
        (lambda: sl.EProp(target_rate=-5.0), r"EProp\.target_rate"),
        (lambda: sl.EProp(target_rate=float("inf")), r"EProp\.target_rate"),
    ],
)
def test_rule_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "rule",
    [
        sl.BPTT(),
        sl.BPTT(sl.Sigmoid(5.0), detach_reset=False),
        sl.EProp(),
        sl.EProp(sl.SuperSpike(3.0), feedback="random", c_reg=0.5, target_rate=20.0),
    ],
)
def test_rule_dict_round_trip(rule):
    d = rule.to_dict()
    assert d["kind"] == rule.kind and d["surrogate"] == rule.surrogate.to_dict()
    assert rule_from_dict(d) == rule


@pytest.mark.parametrize(
    "obj", [{"kind": "sgd"}, {}, "bptt", None, {"kind": "bptt", "lr": 1.0}, {"kind": "eprop", "surrogate": "x"}]
)
def test_rule_from_dict_errors(obj):
    with pytest.raises(ValueError):
        rule_from_dict(obj)


def test_alpha_clip_constant():
    assert ALPHA_CLIP == (2.0 / math.e, 0.995)
    # tau between about 3.3 and 200 steps
    assert -1.0 / math.log(ALPHA_CLIP[0]) == pytest.approx(1 / (1 - math.log(2)))
    assert -1.0 / math.log(ALPHA_CLIP[1]) == pytest.approx(199.5, abs=0.1)


# -- compile-time checks ----------------------------------------------------------------------------


def test_rule_without_readout():
    for rule in (sl.BPTT(), sl.EProp()):
        with pytest.raises(ValueError, match="readout"):
            numpy_backend().compile(ffnet(), rule=rule)
        with pytest.raises(ValueError, match="readout"):
            numpy_backend().compile(ffnet(), rule=rule, readout="out")


def test_rule_of_the_wrong_type():
    with pytest.raises(ValueError, match="rule must be"):
        numpy_backend().compile(ffnet(), rule="bptt", readout=sl.Readout("out"))
    with pytest.raises(ValueError, match="readout must be"):
        numpy_backend().compile(ffnet(), readout={"population": "out"})


@pytest.mark.parametrize("rule", [sl.BPTT(), sl.EProp()])
@pytest.mark.parametrize(
    "population, match",
    [("nope", "unknown population 'nope'"), ("h", "must be an LI population"), ("inp", "must be an LI population")],
)
def test_readout_population_must_be_a_known_li(rule, population, match):
    with pytest.raises(ValueError, match=match):
        numpy_backend().compile(ffnet(), rule=rule, readout=sl.Readout(population))


@pytest.mark.parametrize("mode", ["max", "mean", "last"])
def test_eprop_needs_per_step(mode):
    with pytest.raises(ValueError, match="e-prop needs Readout\\(mode='per_step'\\)"):
        numpy_backend().compile(ffnet(), rule=sl.EProp(), readout=sl.Readout("out", mode))
    # BPTT accepts every mode
    numpy_backend().compile(ffnet(), rule=sl.BPTT(), readout=sl.Readout("out", mode))


def chain_net(inp_to_h1_trainable: bool):
    return sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h1", 5), sl.LIF("h2", 5), sl.LI("out", 3)],
        [
            sl.Connection("inp", "h1", trainable=inp_to_h1_trainable),
            sl.Connection("h1", "h2"),
            sl.Connection("h2", "out"),
        ],
        seed=1,
    )


def test_eprop_trained_population_must_project_to_the_readout():
    with pytest.raises(ValueError, match=r"trained population 'h1' does not project straight to the readout"):
        numpy_backend().compile(chain_net(True), rule=sl.EProp(), readout=sl.Readout("out"))
    # h1 no longer trained: only h2 (which projects to out) is
    c = numpy_backend().compile(chain_net(False), rule=sl.EProp(), readout=sl.Readout("out"))
    assert trained_populations(c.built) == ("h2",)
    # BPTT handles the chain
    numpy_backend().compile(chain_net(True), rule=sl.BPTT(), readout=sl.Readout("out"))


def test_eprop_with_a_skip_connection_to_the_readout_is_fine():
    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h1", 5), sl.LIF("h2", 5), sl.LI("out", 3)],
        [sl.Connection("inp", "h1"), sl.Connection("h1", "h2"), sl.Connection("h2", "out"), sl.Connection("h1", "out")],
        seed=1,
    )
    c = numpy_backend().compile(net, rule=sl.EProp(), readout=sl.Readout("out"))
    assert set(trained_populations(c.built)) == {"h1", "h2"}


@pytest.mark.parametrize(
    "hidden, out, match",
    [
        (sl.LIF("h", 5, train_tau_mem=True), None, "population 'h'"),
        (sl.LIF("h", 5, tau_syn=5.0, train_tau_syn=True), None, "population 'h'"),
        (None, sl.LI("out", 3, train_tau_mem=True), "population 'out'"),
    ],
)
def test_eprop_does_not_train_time_constants(hidden, out, match):
    net = ffnet(hidden=hidden, out=out)
    with pytest.raises(ValueError, match=rf"e-prop does not train time constants \({match}\)"):
        numpy_backend().compile(net, rule=sl.EProp(), readout=sl.Readout("out"))
    numpy_backend().compile(net, rule=sl.BPTT(), readout=sl.Readout("out"))


def test_eprop_rejects_readout_c_reg():
    with pytest.raises(ValueError, match=r"EProp\(c_reg=\.\.\.\)"):
        numpy_backend().compile(ffnet(), rule=sl.EProp(), readout=sl.Readout("out", c_reg=0.1))
    numpy_backend().compile(ffnet(), rule=sl.EProp(c_reg=0.1), readout=sl.Readout("out"))
    numpy_backend().compile(ffnet(), rule=sl.BPTT(), readout=sl.Readout("out", c_reg=0.1))


def test_eprop_rejects_a_second_trained_li():
    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h", 5), sl.LI("out", 3), sl.LI("aux", 2)],
        [sl.Connection("inp", "h"), sl.Connection("h", "out"), sl.Connection("h", "aux")],
    )
    with pytest.raises(ValueError, match="LI population 'aux' is not the readout 'out'"):
        numpy_backend().compile(net, rule=sl.EProp(), readout=sl.Readout("out"))


# -- the training entry points ----------------------------------------------------------------------


def test_loss_and_grads_without_a_rule():
    x, labels = spikes(), [0, 1, 2]
    for readout in (None, sl.Readout("out")):
        c = numpy_backend().compile(ffnet(), readout=readout, dtype="float64")
        with pytest.raises(ValueError, match="compiled without a learning setup"):
            c.loss_and_grads(x, labels)
        with pytest.raises(ValueError, match="compiled without a learning setup"):
            c.train_step(x, labels, sl.Adam())
    # evaluate only needs the readout
    res = c.evaluate(x, labels)
    assert res.grads is None and res.predictions.shape == (3,)


@pytest.mark.parametrize("rule", [sl.BPTT(), sl.EProp()])
@pytest.mark.parametrize(
    "labels, match",
    [
        ([0, 1, 3], "labels must lie in"),
        ([0, -1, 2], "labels must lie in"),
        ([0, 1], "shape"),
        ([0.5, 1, 2], "integers"),
    ],
)
def test_bad_labels_raise_before_any_work(monkeypatch, rule, labels, match):
    c = numpy_backend().compile(ffnet(), rule=rule, readout=sl.Readout("out"), dtype="float64")
    before = c.get_params()
    calls = []
    monkeypatch.setattr(c, "_loss_and_grads", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(c, "_simulate", lambda *a, **k: calls.append(a))
    opt = sl.Adam(lr=0.1)
    with pytest.raises(ValueError, match=match):
        c.loss_and_grads(spikes(), labels)
    with pytest.raises(ValueError, match=match):
        c.train_step(spikes(), labels, opt)
    with pytest.raises(ValueError, match=match):
        c.evaluate(spikes(), labels)
    assert calls == [] and opt.t == 0 and opt.m == {}
    after = c.get_params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_window_longer_than_the_input_raises_before_any_work(monkeypatch):
    c = numpy_backend().compile(ffnet(), rule=sl.BPTT(), readout=sl.Readout("out", "max", (20, None)), dtype="float64")
    monkeypatch.setattr(c, "_loss_and_grads", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match="selects no step"):
        c.loss_and_grads(spikes(T=12), [0, 1, 2])


@pytest.mark.parametrize("rule", [sl.BPTT(), sl.EProp()])
def test_loss_and_grads_shapes(rule):
    c = numpy_backend().compile(ffnet(), rule=rule, readout=sl.Readout("out"), dtype="float64")
    r = c.loss_and_grads(spikes(), [0, 1, 2])
    params = c.get_params()
    assert set(r.grads) == set(c.trainable_names()) == {"inp_to_h.weight", "h_to_out.weight", "out.bias"}
    for k, g in r.grads.items():
        assert isinstance(g, np.ndarray) and g.shape == params[k].shape and np.all(np.isfinite(g))
    assert math.isfinite(r.loss) and r.predictions.shape == (3,)


# -- feedback matrices --------------------------------------------------------------------------------


def feedback_for(seed, feedback, net=None, params=None):
    c = numpy_backend().compile(
        net or ffnet(seed=seed), rule=sl.EProp(feedback=feedback), readout=sl.Readout("out"), dtype="float64"
    )
    if params:
        c.set_params(params)
    return feedback_matrices(c.built, c.request.rule, c.request.readout, c.get_params()), c


def test_symmetric_feedback_is_the_stored_readout_weights():
    B, c = feedback_for(0, "symmetric")
    assert set(B) == {"h_to_out"}
    np.testing.assert_array_equal(B["h_to_out"], c.get_params()["h_to_out.weight"])
    new_w = np.arange(15.0).reshape(5, 3) / 10
    B2, _ = feedback_for(0, "symmetric", params={"h_to_out.weight": new_w})
    np.testing.assert_array_equal(B2["h_to_out"], new_w)


def test_random_feedback_is_reproducible_from_the_seed():
    B1, c1 = feedback_for(3, "random")
    B2, _ = feedback_for(3, "random")
    B3, _ = feedback_for(4, "random")
    assert B1["h_to_out"].shape == (5, 3)
    np.testing.assert_array_equal(B1["h_to_out"], B2["h_to_out"])
    assert not np.allclose(B1["h_to_out"], B3["h_to_out"])
    # a fixed matrix: not the readout weights, and independent of them
    assert not np.allclose(B1["h_to_out"], c1.get_params()["h_to_out.weight"])
    B4, _ = feedback_for(3, "random", params={"h_to_out.weight": np.ones((5, 3))})
    np.testing.assert_array_equal(B1["h_to_out"], B4["h_to_out"])


def test_random_feedback_scale_and_per_connection_draws():
    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("a", 400), sl.LIF("b", 400), sl.LI("out", 50)],
        [sl.Connection("inp", "a"), sl.Connection("inp", "b"), sl.Connection("a", "out"), sl.Connection("b", "out")],
        seed=9,
    )
    B, _ = feedback_for(9, "random", net=net)
    assert set(B) == {"a_to_out", "b_to_out"}
    for m in B.values():
        assert m.shape == (400, 50)
        assert abs(m.mean()) < 0.01
        assert m.std() == pytest.approx(1 / math.sqrt(400), rel=0.03)
    assert not np.allclose(B["a_to_out"], B["b_to_out"])


def test_feedback_skips_untrained_sources():
    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h", 5), sl.LI("out", 3)],
        [sl.Connection("inp", "h"), sl.Connection("h", "out"), sl.Connection("inp", "out")],
    )
    for fb in ("symmetric", "random"):
        B, _ = feedback_for(0, fb, net=net)
        assert set(B) == {"h_to_out"}


def test_random_feedback_changes_hidden_gradients_only():
    x, labels = spikes(T=15, p=0.6, seed=2), [2, 0, 1]
    hidden = sl.LIF("h", 5, tau_syn=5.0, v_thresh=0.3)
    res = {}
    for fb in ("symmetric", "random"):
        c = numpy_backend().compile(
            ffnet(seed=5, hidden=hidden), rule=sl.EProp(feedback=fb), readout=sl.Readout("out"), dtype="float64"
        )
        res[fb] = c.loss_and_grads(x, labels)
    assert res["symmetric"].loss == res["random"].loss
    np.testing.assert_array_equal(res["symmetric"].grads["h_to_out.weight"], res["random"].grads["h_to_out.weight"])
    np.testing.assert_array_equal(res["symmetric"].grads["out.bias"], res["random"].grads["out.bias"])
    assert np.any(res["symmetric"].grads["inp_to_h.weight"] != 0)
    assert not np.allclose(res["symmetric"].grads["inp_to_h.weight"], res["random"].grads["inp_to_h.weight"])


# -- clipping of trained decay factors ------------------------------------------------------------


def hetero_net(seed=0):
    tau_mem = np.array([0.5, 1e4, 20.0, 0.8, 5e3])  # alpha_mem 0.135, 0.9999, 0.951, 0.287, 0.9998
    hidden = sl.LIF("h", 5, tau_mem=tau_mem, tau_syn=5.0, v_thresh=0.3, train_tau_mem=True, train_tau_syn=True)
    out = sl.LI("out", 3, tau_mem=np.array([0.4, 20.0, 1e5]), train_tau_mem=True)
    return ffnet(seed=seed, hidden=hidden, out=out)


@pytest.mark.parametrize("lr", [10.0, 1e-3])
def test_train_step_clips_trained_alphas(lr):
    x, labels = spikes(T=20, p=0.5), [0, 2, 1]

    def make():
        return numpy_backend().compile(hetero_net(), rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float64")

    c = make()
    start = c.get_params()
    assert start["h.alpha_mem"].min() < ALPHA_CLIP[0] and start["h.alpha_mem"].max() > ALPHA_CLIP[1]
    assert start["out.alpha_mem"].min() < ALPHA_CLIP[0] and start["out.alpha_mem"].max() > ALPHA_CLIP[1]

    # expected: one Adam step from the gradients, then the decay factors clipped, nothing else
    grads = make().loss_and_grads(x, labels).grads
    assert any(np.any(grads[k] != 0) for k in ("h.alpha_mem", "h.alpha_syn", "out.alpha_mem"))
    expected = {}
    for k, g in grads.items():
        m, v = 0.1 * g, 0.001 * g * g
        p = start[k] - lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
        expected[k] = np.clip(p, 2.0 / math.e, 0.995) if k.endswith(("alpha_mem", "alpha_syn")) else p

    c.train_step(x, labels, sl.Adam(lr=lr))
    got = c.get_params()
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, atol=1e-15, err_msg=k)
    for k in ("h.alpha_mem", "h.alpha_syn", "out.alpha_mem"):
        assert np.all(got[k] >= ALPHA_CLIP[0]) and np.all(got[k] <= ALPHA_CLIP[1]), k
    assert got["h.alpha_mem"][0] == pytest.approx(2.0 / math.e, abs=1e-12 if lr < 1 else 0.26)
    if lr > 1:
        # the large step moves weights far beyond the clip range: they are not clipped
        assert np.abs(got["inp_to_h.weight"]).max() > 1.0
        assert set(np.unique(got["h.alpha_mem"])) <= {2.0 / math.e, 0.995}
    else:
        assert got["h.alpha_mem"][1] == 0.995 and got["out.alpha_mem"][2] == 0.995


def test_repeated_train_steps_stay_clipped():
    c = numpy_backend().compile(hetero_net(1), rule=sl.BPTT(), readout=sl.Readout("out", "max"), dtype="float32")
    opt = sl.Adam(lr=0.5)
    for s in range(4):
        c.train_step(spikes(T=15, p=0.5, seed=s), [s % 3, 1, 2], opt)
        p = c.get_params()
        for k in ("h.alpha_mem", "h.alpha_syn", "out.alpha_mem"):
            assert p[k].dtype == np.float32
            assert np.all(p[k] >= np.float32(ALPHA_CLIP[0])) and np.all(p[k] <= np.float32(ALPHA_CLIP[1])), k
    assert opt.t == 4


def test_readout_is_validated_without_a_rule():
    net = sl.Network(
        [sl.SpikeInput("inp", 2), sl.LIF("h", 3), sl.LI("out", 2)],
        [sl.Connection("inp", "h"), sl.Connection("h", "out")],
    )
    with pytest.raises(ValueError, match="unknown population 'nope'"):
        sl.get_backend("numpy").compile(net, readout=sl.Readout("nope"))
    with pytest.raises(ValueError, match="must be an LI population"):
        sl.get_backend("numpy").compile(net, readout=sl.Readout("h"))


def test_evaluate_includes_the_activity_regulariser():
    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h", 5, tau_syn=5.0), sl.LI("out", 3)],
        [sl.Connection("inp", "h", weight=0.5), sl.Connection("h", "out")],
    )
    x = np.random.default_rng(0).random((20, 2, 4)) < 0.5
    losses = {}
    for c_reg in (0.0, 1e-3):
        c = sl.get_backend("numpy").compile(
            net, rule=sl.BPTT(), readout=sl.Readout("out", c_reg=c_reg), dtype="float64"
        )
        losses[c_reg] = c.evaluate(x, [0, 1]).loss
        assert losses[c_reg] == pytest.approx(c.loss_and_grads(x, [0, 1]).loss, rel=1e-12)
    assert losses[1e-3] > losses[0.0] + 1.0
