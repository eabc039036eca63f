"""The kit's front ends: the pytest plugin (inert without its option), the ``spikeloom
conformance`` command and the speed suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spikeloom.cli import main
from spikeloom_conformance.bench import SIZES, WORKLOADS, format_table, run_bench
from spikeloom_conformance.cli import SIZE_NAMES, WORKLOAD_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_plugin_is_inert_without_the_option(tmp_path):
    (tmp_path / "test_other.py").write_text("def test_one():\n    assert True\n")
    rc, out = _pytest(str(tmp_path / "test_other.py"), "-q", "--rootdir", str(tmp_path), cwd=tmp_path)
    assert rc == 0 and "1 passed" in out
    assert "spikeloom backend" not in out
    rc, out = _pytest("--help")
    assert "--spikeloom-backend" in out


def test_kit_without_a_backend_is_one_skip():
    rc, out = _pytest("--pyargs", "spikeloom_conformance", "-q", "-rs")
    assert rc == 0, out
    assert "1 skipped" in out and "--spikeloom-backend NAME" in out


def test_kit_under_pytest_on_the_reference():
    rc, out = _pytest(
        "--pyargs",
        "spikeloom_conformance",
        "--spikeloom-backend",
        "numpy",
        "--spikeloom-check",
        "undeclared_raise",
        "--spikeloom-check",
        "bptt_grads",
        "-k",
        "basic or undeclared",
        "-v",
    )
    assert rc == 0, out
    assert "spikeloom backend: numpy" in out and "spikeloom capabilities: models=ALIF,LI,LIF" in out
    assert "spikeloom tolerance float32: step_rtol=" in out and "spikeloom tolerance float64" in out
    assert "test_conformance[bptt_grads-bptt_basic-float64] PASSED" in out
    assert "3 passed" in out


def test_kit_under_pytest_skips_undeclared_and_names_the_capability():
    rc, out = _pytest(
        "--pyargs",
        "spikeloom_conformance",
        "--spikeloom-backend",
        "tests.conformance.toys:LessBackend",
        "--spikeloom-check",
        "forward_run",
        "-q",
        "-rs",
    )
    assert rc == 0, out
    assert "needs dtypes='float32'; backend 'less' declares dtypes=['float64']" in out
    assert "needs models='ALIF'; backend 'less' declares models=['LI', 'LIF']" in out
    assert "\n2 passed, " in out  # basic_lif and bptt_basic's network


def test_kit_under_pytest_fails_a_mutant_and_xfails_known_failures():
    rc, out = _pytest(
        "--pyargs",
        "spikeloom_conformance",
        "--spikeloom-backend",
        "tests.conformance.toys:mutant_batch_mixed",
        "--spikeloom-check",
        "batch_independence",
        "-k",
        "basic_lif",
        "-q",
    )
    assert rc == 1
    assert "FAILED" in out and "simulated alone vs inside the batch" in out
    rc, out = _pytest(
        "--pyargs",
        "spikeloom_conformance",
        "--spikeloom-backend",
        "tests.conformance.toys:KnownFailuresBackend",
        "--spikeloom-check",
        "forward_run",
        "-k",
        "threshold_ties",
        "-q",
    )
    assert rc == 1 and "XPASS(strict)" in out and "pretend bug #1" in out


def test_cli_json(tmp_path, capsys):
    out_file = tmp_path / "r.json"
    rc = main(
        [
            "conformance",
            "numpy",
            "--check",
            "undeclared_raise",
            "--check",
            "evaluate",
            "-k",
            "*basic*",
            "--json",
            str(out_file),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "== numpy" in text and "evaluate" in text and "2 passed, 0 failed" in text
    data = json.loads(out_file.read_text())
    (rep,) = data["conformance"]
    assert rep["backend"] == "numpy" and rep["ok"] is True and rep["counts"]["passed"] == 2
    assert data["bench"] == []


def test_cli_fails_a_mutant_and_lists(capsys):
    rc = main(
        [
            "conformance",
            "tests.conformance.toys:mutant_batch_mixed",
            "--check",
            "batch_independence",
            "-k",
            "*basic_lif-float64",
        ]
    )
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAILED batch_independence-basic_lif-float64" in out
    rc = main(["conformance", "tests.conformance.toys:LessBackend", "--list", "--check", "forward_run"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "forward_run-basic_lif-float64  run" in out
    assert "forward_run-basic_lif-float32  SKIP (needs dtypes='float32'" in out


def test_cli_errors(capsys):
    assert main(["conformance"]) == 2
    assert "name a backend" in capsys.readouterr().err
    assert main(["conformance", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_cli_all_runs_every_cpu_backend(capsys):
    assert main(["conformance", "--all", "--check", "undeclared_raise", "--json", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    names = [r["backend"] for r in data["conformance"]]
    assert "numpy" in names
    assert "== numpy" in captured.err


def test_python_m_entry():
    proc = subprocess.run(
        [sys.executable, "-m", "spikeloom_conformance", "numpy", "--check", "undeclared_raise"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 passed" in proc.stdout


def test_bench_structure():
    assert set(SIZES) == set(SIZE_NAMES) and set(WORKLOADS) == set(WORKLOAD_NAMES)
    results = run_bench("numpy", workloads=["inference"], repeats=1)
    (r,) = results
    assert r.workload == "inference" and r.backend == "numpy" and r.dtype == "float32"
    assert r.seconds > 0 and r.timesteps_per_s == pytest.approx(r.T / r.seconds)
    assert r.samples_per_s == pytest.approx(r.batch / r.seconds) and r.speedup == 1.0
    assert r.peak_rss_mib > 0 and r.peak_traced_mib > 0
    assert "inference" in format_table(results) and json.dumps(r.to_dict())
    from .toys import LessBackend

    (skipped,) = run_bench(LessBackend(), workloads=["bptt_train"], repeats=1)
    assert "needs" in skipped.skipped and "skipped" in format_table([skipped])
    with pytest.raises(ValueError, match="bench size"):
        run_bench("numpy", size="huge")


def test_cli_bench(capsys, tmp_path):
    out_file = tmp_path / "b.json"
    rc = main(
        ["conformance", "numpy", "--bench-only", "--workload", "inference", "--repeats", "1", "--json", str(out_file)]
    )
    assert rc == 0
    assert "steps/s" in capsys.readouterr().out
    (row,) = json.loads(out_file.read_text())["bench"]
    assert row["workload"] == "inference" and row["speedup"] == 1.0


def test_spikeloom_bench_is_the_speed_suite_alone(capsys, tmp_path):
    out_file = tmp_path / "b.json"
    rc = main(["bench", "numpy", "--workload", "inference", "--repeats", "1", "--json", str(out_file)])
    assert rc == 0
    assert "steps/s" in capsys.readouterr().out
    data = json.loads(out_file.read_text())
    assert data["conformance"] == []  # no checks ran
    (row,) = data["bench"]
    assert row["backend"] == "numpy" and row["workload"] == "inference"
