"""Meta-tests: every deliberately broken backend fails the check that should catch it; the
reference and a backend declaring less do not fail."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spikeloom_conformance import check_backend

from .mutants import MUTANTS, batch_mixed, delay_off_by_one, float16_accumulation, zero_reset_subtracts
from .toys import LessBackend

#: mutants whose bug shows only in float32 runs
FLOAT32_ONLY = {"float16_accumulation"}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_the_right_check(name):
    factory, must_fail, _ = MUTANTS[name]
    dtypes = ("float32",) if name in FLOAT32_ONLY else ("float64",)
    report = check_backend(factory(), checks=must_fail, dtypes=dtypes)
    failed = report.failed_checks()
    missing = [c for c in must_fail if c not in failed]
    assert not missing, f"mutant {name!r} was not caught by {missing}; failures: {sorted(failed)}"
    assert not report.ok


def test_reference_passes_the_same_checks():
    checks = sorted({c for _, must_fail, _ in MUTANTS.values() for c in must_fail})
    report = check_backend("numpy", checks=checks, dtypes=("float64",))
    assert report.ok, [(r.id, r.message) for r in report.failed]
    assert not report.skipped


def test_failure_messages_name_the_first_mismatch():
    report = check_backend(zero_reset_subtracts(), checks=["forward_run"], dtypes=("float64",))
    msg = report.failed[0].message
    assert re.search(
        r"first mismatch at step \d+, population '\w+', variable '[VIaz]', batch element \d, neuron \d+", msg
    )
    assert "got" in msg and "expected" in msg

    report = check_backend(zero_reset_subtracts(), checks=["step_trajectory"], dtypes=("float64",))
    assert any(
        "from the reference state" in r.message and "state" in r.message and "after the step" in r.message
        for r in report.failed
    )


def test_delay_mutant_is_reported_at_the_delivery_step():
    """An off-by-one delay shows first in the input current I, where the spike arrives early."""
    report = check_backend(delay_off_by_one(), checks=["forward_run"], dtypes=("float64",), select=["*-basic_lif-*"])
    (failure,) = report.failed
    assert "variable 'I'" in failure.message


def test_float32_only_mutant_passes_float64():
    report = check_backend(float16_accumulation(), checks=["forward_run"], dtypes=("float64",))
    assert report.ok


def test_batch_mixing_caught_by_batch_independence_message():
    report = check_backend(batch_mixed(), checks=["batch_independence"], dtypes=("float64",), select=["*-basic_lif-*"])
    (failure,) = report.failed
    assert "simulated alone vs inside the batch" in failure.message


def test_declaring_less_gives_skips_not_passes():
    backend = LessBackend()
    report = check_backend(backend)
    assert report.ok, [(r.id, r.message) for r in report.failed]
    assert report.passed and report.skipped
    caps = backend.capabilities()
    for r in report.results:
        if r.dtype == "float32":
            assert r.outcome == "skipped" and "dtypes='float32'" in r.message
        if r.check in ("bptt_grads", "eprop_grads", "train_steps", "eprop_equals_bptt"):
            assert r.outcome == "skipped" and "needs" in r.message
        if r.check.startswith("step_"):
            assert r.outcome == "skipped"
    for r in report.skipped:
        m = re.fullmatch(r"needs (\w+)=(.+); backend 'less' declares \1=(.+)", r.message)
        assert m, r.message
        assert m.group(1) in caps.to_dict()
    ran = {r.case for r in report.passed}
    assert "basic_lif" in ran


def test_a_mutant_patching_the_reference_modules_is_still_caught(monkeypatch):
    """A wrapper that patches ``spikeloom_numpy`` in place breaks the registered reference, not the
    kit's judge (a private copy loaded from the reference's source files)."""
    import spikeloom_numpy.simulate as simulate

    original = simulate.neuron_step

    def never_refractory(p, s, h, spike_fn=None):
        if s.ref is not None:
            s = type(s)(I=s.I, V=s.V, a=s.a, z=s.z, ref=np.zeros_like(s.ref))
        return original(p, s, h, spike_fn)

    monkeypatch.setattr(simulate, "neuron_step", never_refractory)
    report = check_backend("numpy", checks=["forward_run"], dtypes=("float64",), select=["*lif_exp_zero_refractory*"])
    assert report.failed_checks() == {"forward_run"}


def test_a_backend_writing_into_its_inputs_fails_without_harming_the_corpus():
    from spikeloom_numpy import NumpyCompiled

    from .mutants import subclass_mutant

    class Scribbler(NumpyCompiled):
        def simulate(self, x, record=None):
            np.asarray(x)[0] = 0
            return super().simulate(x, record)

    report = check_backend(subclass_mutant("scribbler", Scribbler), checks=["forward_run"], select=["*basic_lif*"])
    assert len(report.failed) == 2 and "read-only" in report.failed[0].message
    assert check_backend("numpy", checks=["forward_run"], select=["*basic_lif*"]).ok
