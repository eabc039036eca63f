"""``spikeloom sweep``: variants x seeds from one TOML file, the summary, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

for _module in ("sklearn", "safetensors", "matplotlib"):
    pytest.importorskip(_module)

from spikeloom.cli import main  # noqa: E402
from spikeloom.sweeps import read_sweep, summarize  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "seed_experiments"

TINY = """
name = "tiny"
seeds = [0, 1]
[base]
dataset = "randman"
data_options = { samples_per_class = 4, n_steps = 20 }
hidden = 4
epochs = 1
window = 5
backend = "numpy"
[variants.eprop-lif]
model = "lif"
[variants.bptt-alif]
rule = "bptt"
"""


def test_a_sweep_runs_every_variant_with_every_seed(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert main(["sweep", str(path), "--out", str(tmp_path / "runs")]) == 0
    root = tmp_path / "runs" / "tiny"
    results = json.loads((root / "results.json").read_text())
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [
        ("eprop-lif", 0),
        ("eprop-lif", 1),
        ("bptt-alif", 0),
        ("bptt-alif", 1),
    ]
    for run in results["runs"]:
        metrics = json.loads((root / run["variant"] / f"seed{run['seed']}" / "metrics.json").read_text())
        assert metrics["test"]["accuracy"] == run["test_accuracy"]
        assert metrics["config"]["seed"] == run["seed"]
    assert metrics["config"]["rule"] == "bptt" and metrics["config"]["model"] == "alif"
    assert set(results["summary"]) == {"eprop-lif", "bptt-alif"}
    assert "| eprop-lif | 2 |" in (root / "summary.md").read_text()
    assert (root / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_is_mean_and_sample_sd():
    runs = [
        {"variant": "a", "test_accuracy": 0.5, "train_time_s": 1.0},
        {"variant": "a", "test_accuracy": 0.7, "train_time_s": 3.0},
        {"variant": "b", "test_accuracy": 0.9, "train_time_s": 2.0},
    ]
    s = summarize(runs)
    assert s["a"]["n"] == 2 and s["a"]["mean"] == pytest.approx(0.6) and s["a"]["sd"] == pytest.approx(0.1414213562)
    assert s["a"]["train_time_s"] == 2.0 and s["b"]["sd"] == 0.0


@pytest.mark.parametrize(
    "content, match",
    [
        ("seeds = [0]\n", "variants must hold at least one table"),
        ("seeds = [0, 0]\n[variants.a]\n", "seeds must be a list of distinct integers"),
        ("bogus = 1\n[variants.a]\n", "unknown keys ['bogus']"),
        ("[base]\nseed = 3\n[variants.a]\n", "'seed' is set per run by the sweep"),
        ("[variants.a]\nrule = 'hebb'\n", "variant 'a': rule must be one of"),
        ("[variants.a]\nepochs = [1\n", "not valid TOML"),
    ],
)
def test_bad_sweep_files_are_refused_before_any_run(tmp_path, capsys, content, match):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    assert main(["sweep", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert match in err and str(path) in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_the_example_sweeps_are_valid(path):
    sweep = read_sweep(path)
    assert len(sweep.seeds) >= 3
    for variant in sweep.variants:
        config = sweep.config(variant, sweep.seeds[0], "runs")
        assert config.out_dir == Path("runs") / sweep.name / variant / f"seed{sweep.seeds[0]}"
