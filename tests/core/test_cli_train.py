"""``spikeloom train``: a tiny run end to end, config files, resumption and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

for _module in ("sklearn", "safetensors", "matplotlib"):
    pytest.importorskip(_module)

import spikeloom as sl  # noqa: E402
from spikeloom.checkpoint import FILES, load_checkpoint  # noqa: E402
from spikeloom.cli import main  # noqa: E402
from spikeloom.experiments import TrainConfig, build_experiment, compile_on_best  # noqa: E402

TINY = ["--backend", "numpy", "--hidden", "8", "--limit", "24", "--batch-size", "8", "--no-progress"]


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_tiny_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == sorted(FILES)
    for png in ("curves.png", "raster.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = _metrics(out)
    assert metrics["backend"] == "numpy" and metrics["epochs"] == 1 and len(metrics["history"]) == 1
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["test"]["n"] == 24
    assert metrics["config"]["rule"] == "eprop" and metrics["config"]["model"] == "alif"
    ckpt = load_checkpoint(out / "checkpoint")
    assert ckpt.epoch == 1 and ckpt.rule.kind == "eprop"
    assert [p.kind for p in ckpt.network.populations] == ["SpikeInput", "ALIF", "LI"]
    assert ckpt.network.populations[1].n == 8


def test_without_backend_the_best_capable_backend_runs(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--limit",
                "8",
                "--out",
                str(out),
                "--no-progress",
                "--no-plots",
            ]
        )
        == 0
    )
    network, rule, readout, _, _ = build_experiment(TrainConfig(hidden=4, limit=8))
    expected, _ = compile_on_best(network, rule, readout)
    assert _metrics(out)["backend"] == expected.name


def test_backends_that_cannot_run_the_experiment_are_skipped(fake_plugins, toy_backend, make_plugin):
    fake_plugins(fancy=make_plugin(toy_backend("fancy", priority=100)))  # declares no learning rule
    assert sl.best_backend().name == "fancy"
    network, rule, readout, _, _ = build_experiment(TrainConfig(hidden=4, limit=8))
    backend, compiled = compile_on_best(network, rule, readout)
    assert backend.name == "numpy" and isinstance(compiled, sl.Compiled)
    with pytest.raises(ValueError, match="no available backend can run this experiment: fancy: .*numpy: "):
        compile_on_best(network, rule, readout, device="cuda:0")


def test_config_file_and_command_line_precedence_then_resume(tmp_path, capsys):
    cfg = tmp_path / "train.toml"
    cfg.write_text('rule = "bptt"\nmodel = "lif"\nhidden = 6\nlimit = 16\nbatch-size = 8\nencoding = "rows"\n')
    out = tmp_path / "run"
    args = ["--backend", "numpy", "--hidden", "5", "--epochs", "1", "--out", str(out), "--no-progress", "--no-plots"]
    assert main(["train", "--config", str(cfg), *args]) == 0
    config = _metrics(out)["config"]
    assert (config["rule"], config["model"], config["hidden"], config["batch_size"], config["encoding"]) == (
        "bptt",
        "lif",
        5,
        8,
        "rows",
    )
    assert not (out / "curves.png").exists()
    # resume from the run folder: settings come from the checkpoint; --epochs extends the run
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress", "--no-plots"]) == 0
    metrics = _metrics(out)
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["config"]["hidden"] == 5 and load_checkpoint(out / "checkpoint").epoch == 2
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "checkpoint"), "--hidden", "9", "--epochs", "3"]) == 2
    assert "hidden=9 differs from the checkpoint's hidden=5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, match",
    [
        ("epochs = 1\nbogus = 3\n", "unknown keys ['bogus']"),
        ("epochs = [1\n", "not valid TOML"),
        ('rule = "hebb"\n', "rule must be one of ['eprop', 'bptt']"),
        ("hidden = 0\n", "hidden must be an integer >= 1"),
    ],
)
def test_bad_config_files_are_refused(tmp_path, capsys, content, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert match in err and str(cfg) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--epochs", "0"], "epochs must be an integer >= 1"),
        (["--lr", "-1"], "lr must be a finite number > 0"),
        (["--config", "does-not-exist.toml"], "cannot be read"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--resume", "nowhere"], "not a directory"),
    ],
)
def test_bad_options_are_refused(tmp_path, capsys, args, match):
    assert main(["train", "--out", str(tmp_path / "run"), *args]) == 2
    assert match in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--backend",
        "--rule",
        "--model",
        "--hidden",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--out",
        "--config",
        "--resume",
    ):
        assert option in text


def test_randman_deep_fluctuation_heterogeneous_run(tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "randman", "--rule", "bptt", "--model", "lif", "--layers", "2", "--tau-syn", "5"]
    args += ["--init", "fluctuation", "--heterogeneity", "HetInit-HetTr", "--data-option", "samples_per_class=20"]
    assert main(["train", "--epochs", "1", "--out", str(out), *TINY[:2], *TINY[2:4], *TINY[6:], *args]) == 0
    metrics = _metrics(out)
    config = metrics["config"]
    assert (config["dataset"], config["layers"], config["init"], config["heterogeneity"]) == (
        "randman",
        2,
        "fluctuation",
        "HetInit-HetTr",
    )
    assert config["data_options"] == {"samples_per_class": 20}
    # the report of the initialisation, and rates of both hidden layers at the start
    assert metrics["init"]["order"] == ["hidden1", "hidden2"]
    assert set(metrics["rates_hz"]["start"]) == {"hidden1", "hidden2"}
    assert (out / "time_constants.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(out / "checkpoint")
    hidden = [p for p in ckpt.network.populations if p.kind == "LIF"]
    assert [p.name for p in hidden] == ["hidden1", "hidden2"]
    assert all(p.train_tau_mem and p.train_tau_syn for p in hidden)
    # weights were drawn by the fluctuation init: explicit arrays, not the default distribution
    assert all(isinstance(c.weight, np.ndarray) for c in ckpt.network.connections if c.target != "out")


@pytest.mark.parametrize(
    "args, match",
    [
        (["--dataset", "shd"], "data_dir is needed for dataset='shd'"),
        (["--dataset", "digits", "--data-dir", "x"], "data_dir must not be set for dataset='digits'"),
        (["--heterogeneity", "HetInit-HetTr"], "needs rule='bptt'"),
        (["--init", "fluctuation", "--xi", "3.5"], "xi must lie in (1, 3)"),
        (["--data-option", "pool"], "--data-option must look like KEY=VALUE"),
        (["--dataset", "randman", "--data-option", "bogus=1"], "unknown option ['bogus']"),
    ],
)
def test_bad_experiment_settings_are_refused(tmp_path, capsys, args, match):
    code = main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args])
    assert code in (1, 2)
    assert match in capsys.readouterr().err


def test_missing_data_files_name_the_file(tmp_path, capsys):
    code = main(["train", "--dataset", "smnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")])
    assert code == 1
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "idx" in err.lower()


def test_resuming_without_a_backend_skips_backends_that_cannot_run_it(tmp_path, fake_plugins, toy_backend, make_plugin):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--no-plots", *TINY]) == 0
    fake_plugins(fancy=make_plugin(toy_backend("fancy", priority=100)))  # declares no learning rule
    trainer = sl.Trainer.from_checkpoint(out / "checkpoint")
    assert trainer.compiled.request.backend_name == "numpy"
