"""The kit's parts: corpus coverage and quality, tolerances, item generation, structured results,
known failures, and checks that cannot run."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

import spikeloom as sl
from spikeloom_conformance import CHECKS, PROFILES, Tolerance, check_backend, corpus, generate, get_case, tolerance_for
from spikeloom_conformance.cases import random_case
from spikeloom_conformance.compare import compare_arrays, compare_recordings
from spikeloom_conformance.runner import resolve_backend

from .toys import EPropSubtractOnly, KnownFailuresBackend


def _features(case):
    net = case.network
    built = net.built
    out = set()
    for p in built.neuron_populations:
        out.add(("model", p.kind))
        out.add(("synapse", p.synapse))
        if p.reset:
            out.add(("reset", p.reset))
        if p.n_ref is not None and p.n_ref.any():
            out.add(("refractory", True))
        if p.scale_input:
            out.add(("scale_input", True))
        if p.train_tau_mem or p.train_tau_syn:
            out.add(("trainable_alpha", True))
    for pop in net.populations:
        if pop.heterogeneous:
            out.add(("heterogeneous", True))
    for c, spec in zip(built.connections, net.connections, strict=True):
        out.add(("connectivity", spec.connectivity.kind))
        out.add(("delay", c.delay))
        out.add(("recurrent", c.source == c.target))
    if net.dt != 1.0:
        out.add(("dt", net.dt))
    if case.readout is not None:
        out.add(("readout", case.readout.mode))
    if case.rule is not None:
        out.add(("rule", case.rule.kind))
        out.add(("surrogate", (case.rule.kind, case.rule.surrogate.kind)))
    return out


def test_corpus_covers_every_feature():
    seen = set().union(*(_features(c) for c in corpus()))
    wanted = (
        {("model", m) for m in ("LIF", "ALIF", "LI")}
        | {("synapse", s) for s in ("delta", "exponential")}
        | {("reset", r) for r in ("subtract", "zero")}
        | {("connectivity", k) for k in ("dense", "fixed_probability", "explicit")}
        | {("delay", d) for d in (1, 2, 3)}
        | {("readout", m) for m in ("per_step", "max", "mean", "last")}
        | {("surrogate", ("bptt", s)) for s in ("superspike", "triangle", "sigmoid", "atan")}
        | {("surrogate", ("eprop", s)) for s in ("superspike", "triangle", "sigmoid", "atan")}
        | {("refractory", True), ("scale_input", True), ("heterogeneous", True), ("trainable_alpha", True)}
        | {("recurrent", True), ("dt", 0.5)}
    )
    assert wanted <= seen, sorted(wanted - seen)
    names = [c.name for c in corpus()]
    assert len(names) == len(set(names))
    assert {"feedforward", "eprop", "bptt", "forward", "api", "random"} <= set().union(*(c.tags for c in corpus()))
    rules = {
        (c.rule.kind, getattr(c.rule, "feedback", None), bool(getattr(c.rule, "c_reg", 0))) for c in corpus() if c.rule
    }
    assert ("eprop", "random", True) in rules and ("eprop", "symmetric", False) in rules
    assert any(c.readout is not None and c.readout.c_reg for c in corpus())
    assert any(c.counts > 1 for c in corpus())
    assert any(isinstance(c.rule, sl.BPTT) and not c.rule.detach_reset for c in corpus())


@pytest.mark.parametrize("case", corpus(), ids=lambda c: c.name)
def test_cases_are_sensitive(case):
    """Neurons fire often but not always and are not silent; refractory and adaptive cases show it."""
    run = case.reference()
    built = case.network.built
    x, labels = case.data()
    assert (labels is None) == (case.readout is None)
    for p in built.neuron_populations:
        if not p.spiking:
            continue
        z = run.recs[p.name]["z"]
        assert 0.05 <= z.mean() <= 0.4, (p.name, z.mean())
        assert np.mean(z.sum(axis=(0, 1)) == 0) <= 0.3, "too many silent neurons"
        if p.kind == "ALIF" and case.name != "threshold_ties":
            shift = (run.theta[p.name] - p.params["v_thresh"]) / p.params["v_thresh"]
            assert shift.max() > 0.1, "adaptation too weak to matter"
    ref_cases = {"lif_exp_zero_refractory", "alif_adaptation", "heterogeneous", "fine_dt", "bptt_rate_regularizer"}
    if case.name in ref_cases:
        blocked = [np.mean((run.recs[n]["V"] >= run.theta[n]) & run.refractory[n]) for n in run.refractory]
        assert max(blocked) > 0.02, "refractoriness never blocks a spike"


def test_ties_case_has_exact_ties():
    run = get_case("threshold_ties").reference()
    assert np.any((run.recs["h"]["V"] == run.theta["h"]) & (run.recs["h"]["z"] == 1))


def test_cases_are_reproducible():
    a, b = random_case(2), random_case(2)
    assert a.network.to_dict() == b.network.to_dict()
    np.testing.assert_array_equal(a.data()[0], b.data()[0])
    c = get_case("bptt_basic")
    np.testing.assert_array_equal(c.data(1)[0], c.data(1)[0])
    assert not np.array_equal(c.data(0)[0], c.data(1)[0])
    with pytest.raises(ValueError, match="unknown case"):
        get_case("nope")


def test_tolerances_are_data():
    assert set(PROFILES) == {"float32", "float64"}
    assert tolerance_for("float64") is PROFILES["float64"] and tolerance_for(np.float32) is PROFILES["float32"]
    f32, f64 = PROFILES["float32"], PROFILES["float64"]
    for field in ("step_rtol", "run_rtol", "grad_rtol", "param_rtol", "spike_margin"):
        assert getattr(f64, field) < getattr(f32, field) < 1e-2
    assert f64.grad_rtol < 1e-7, "float64 must catch float32 arithmetic"
    assert f64.horizon is None and f32.horizon
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        f32.run_rtol = 1.0
    with pytest.raises(ValueError, match="Tolerance.step_rtol"):
        attrs.evolve(f32, step_rtol=-1)
    with pytest.raises(ValueError, match="horizon"):
        attrs.evolve(f32, horizon=0)
    with pytest.raises(ValueError, match="no tolerance profile"):
        tolerance_for("float16")
    assert "float32:" in f32.describe() and json.dumps(f32.to_dict())
    assert isinstance(f32, Tolerance)


def test_generate_items():
    items = generate("numpy")
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids))
    assert {i.check.name for i in items} == set(CHECKS)
    assert not any(i.skip or i.xfail for i in items)
    assert "undeclared_raise-float32" in ids and "forward_run-basic_lif-float64" in ids
    assert all(i.case is not None and "eprop" in i.case.tags for i in items if i.check.name == "eprop_grads")
    assert [i.id for i in generate("numpy", checks=["bptt_grads"], select=["*-float64"])] == [
        f"bptt_grads-{c.name}-float64" for c in corpus() if "bptt" in c.tags
    ]
    with pytest.raises(ValueError, match="unknown checks"):
        generate("numpy", checks=["nope"])
    with pytest.raises(ValueError, match="tolerance profiles"):
        generate("numpy", dtypes=["float16"])
    with pytest.raises(ValueError, match="unknown backend"):
        generate("no_such_backend")


def test_every_check_is_a_documented_plain_function():
    for name, spec in CHECKS.items():
        assert spec.func.__name__ == f"check_{name}"
        assert spec.summary, name


def test_report_structure():
    report = check_backend("numpy", checks=["forward_run", "undeclared_raise"], select=["*basic_lif*", "undeclared*"])
    assert report.ok and report.backend == "numpy" and report.device == "cpu"
    assert [r.id for r in report.results] == [
        "forward_run-basic_lif-float32",
        "forward_run-basic_lif-float64",
        "undeclared_raise-float32",
    ]
    assert report.counts() == {"passed": 3, "failed": 0, "skipped": 0, "xfailed": 0}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["capabilities"]["rules"] == ["bptt", "eprop"]
    assert set(data["tolerances"]) == {"float32", "float64"}
    r = data["results"][0]
    assert set(r) == {"id", "check", "case", "dtype", "outcome", "message", "seconds"}
    assert r["check"] == "forward_run" and r["case"] == "basic_lif" and r["outcome"] == "passed"


def test_known_failures_are_strict_xfails():
    from .mutants import spikes_strictly_above

    report = check_backend(KnownFailuresBackend(), checks=["forward_run"], select=["*threshold_ties*"])
    assert [r.outcome for r in report.results] == ["failed", "failed"]
    assert all("XPASS(strict)" in r.message and "pretend bug #1" in r.message for r in report.results)

    mutant = spikes_strictly_above()
    report = check_backend(
        mutant,
        checks=["forward_run"],
        select=["*threshold_ties*"],
        known_failures={"forward_run-threshold_ties-*": "bug 7"},
    )
    assert [r.outcome for r in report.results] == ["xfailed", "xfailed"] and report.ok
    assert "known failure (bug 7)" in report.results[0].message
    type(mutant).conformance_known_failures = "nope"
    with pytest.raises(ValueError, match="conformance_known_failures"):
        generate(mutant)


def test_eprop_for_subtractive_reset_only_is_a_skip():
    report = check_backend(EPropSubtractOnly(), checks=["eprop_grads"], dtypes=["float64"])
    outcomes = {r.case: r.outcome for r in report.results}
    assert outcomes["eprop_alif_ff_zero"] == "skipped" and outcomes["eprop_lif_ff"] == "passed"
    assert "subtractive reset only" in report.skipped[0].message
    assert report.ok


def test_refusing_what_is_declared_fails():
    class Refuses(sl.get_backend("numpy").__class__):
        name = "refuses"

        def _compile(self, request):
            raise sl.UnsupportedFeature(self.name, "models", "LIF")

    report = check_backend(Refuses(), checks=["forward_run"], select=["*basic_lif-float64"])
    assert "declares everything" in report.failed[0].message


def test_a_crashing_backend_fails_its_items():
    class Crashes(sl.get_backend("numpy").__class__):
        name = "crashes"

        def _compile(self, request):
            raise RuntimeError("boom")

    report = check_backend(Crashes(), checks=["forward_run"], select=["*basic_lif-float64"])
    assert report.failed[0].message.startswith("RuntimeError: boom")


def test_resolve_backend_forms():
    b = sl.get_backend("numpy")
    assert resolve_backend(b) is b and resolve_backend("numpy") is b
    less = resolve_backend("tests.conformance.toys:LessBackend")
    assert less.name == "less"
    assert resolve_backend("tests.conformance.toys:mutant_batch_mixed").name == "batch_mixed"
    with pytest.raises(ValueError, match="cannot import"):
        resolve_backend("tests.conformance.toys:Nope")
    with pytest.raises(ValueError, match="not a spikeloom.Backend"):
        resolve_backend("math:pi")
    with pytest.raises(ValueError, match="backend name or"):
        resolve_backend(3)


def test_compare_recordings_excuses_only_legitimate_flips():
    case = get_case("basic_lif")
    run = case.reference()
    built = case.network.built
    tol = PROFILES["float32"]
    got = {p: {v: a.copy() for v, a in d.items()} for p, d in run.recs.items()}
    kw = dict(rtol=tol.run_rtol, atol=tol.run_atol, refractory=run.refractory, theta=run.theta)
    assert compare_recordings("x", built, got, run.recs, tol, **kw) == ""
    # a spike where the reference membrane is far below threshold: a real mismatch
    t, b, n = np.argwhere(
        (run.recs["h"]["z"] == 0) & (run.recs["h"]["V"] < 0.5 * run.theta["h"]) & ~run.refractory["h"]
    )[0]
    got["h"]["z"][t, b, n] = 1
    with pytest.raises(
        AssertionError,
        match=rf"first mismatch at step {t}, population 'h', variable 'z', batch element {b}, neuron {n}",
    ):
        compare_recordings("x", built, got, run.recs, tol, **kw)
    # a flip right at threshold, consistent with the backend's own membrane: excused, comparison stops
    got = {p: {v: a.copy() for v, a in d.items()} for p, d in run.recs.items()}
    t, b, n = np.argwhere(run.recs["h"]["z"] == 1)[0]
    want = {p: {v: a.copy() for v, a in d.items()} for p, d in run.recs.items()}
    got["h"]["V"][t, b, n] = run.theta["h"][t, b, n] + 1e-7
    want["h"]["V"][t, b, n] = run.theta["h"][t, b, n] - 1e-7
    want["h"]["z"][t, b, n] = 0
    note = compare_recordings("x", built, got, want, tol, **kw)
    assert f"flipped at step {t}" in note
    # the same flip where the backend's own membrane contradicts its spike is not excused
    got["h"]["V"][t, b, n] = run.theta["h"][t, b, n] - 2e-7
    with pytest.raises(AssertionError, match="variable 'z'"):
        compare_recordings("x", built, got, want, tol, **kw)
    got["h"]["V"][t, b, n] = run.theta["h"][t, b, n] + 1e-7
    with pytest.raises(AssertionError, match="variable 'z'"):
        compare_recordings("x", built, got, want, PROFILES["float64"], **kw)


def test_compare_arrays_message():
    with pytest.raises(
        AssertionError, match=r"g: first mismatch at index \[1, 0\]: got 5, expected 1 .* 1 of 4 entries differ"
    ):
        compare_arrays(
            "g", np.array([[1.0, 2.0], [5.0, 4.0]]), np.array([[1.0, 2.0], [1.0, 4.0]]), rtol=1e-6, atol=1e-6
        )
    with pytest.raises(AssertionError, match="shape"):
        compare_arrays("g", np.zeros(2), np.zeros(3), rtol=0, atol=0)
    compare_arrays("g", np.array([1.0 + 1e-9]), np.array([1.0]), rtol=1e-8, atol=0)
