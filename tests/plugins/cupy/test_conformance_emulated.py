"""The conformance kit on the CuPy backend's host code and kernels, emulated on the CPU: every
item its declaration calls for runs (no skips: everything the reference does is declared) and
passes, in both dtypes.  On a GPU, ``pytest --pyargs spikeloom_conformance --spikeloom-backend
cupy`` runs the same items on the device (see benchmarks/gpu_cupy_check.sh)."""

from __future__ import annotations

from spikeloom_conformance import check_backend


def test_the_kit_passes_on_the_emulated_backend(emulated):
    report = check_backend(emulated, device="cpu")
    failures = "\n".join(f"{r.id}: {r.message}" for r in report.failed)
    assert report.ok, failures
    assert not report.skipped, [(r.id, r.message) for r in report.skipped]
    assert len(report.passed) > 300
    assert {r.dtype for r in report.passed} == {"float32", "float64"}
    assert {"eprop_grads", "bptt_grads", "forward_run"} <= {r.check for r in report.passed}
