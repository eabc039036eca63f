"""Several training runs from one TOML file: variants of a base config, each over several seeds,
summarised as mean ± sd (``spikeloom sweep FILE``).

A sweep file::

    name = "eprop-vs-bptt-randman"     # output folder under --out (default: the file's stem)
    seeds = [0, 1, 2]
    [base]                              # TrainConfig settings shared by every variant
    dataset = "randman"
    epochs = 10
    [variants.eprop-lif]                # one table per variant: settings that differ
    rule = "eprop"
    model = "lif"
    [variants.bptt-lif]
    rule = "bptt"
    model = "lif"

Each run writes into ``<out>/<name>/<variant>/seed<k>/`` as ``spikeloom train`` does; the sweep
writes ``<out>/<name>/results.json`` (every run's test accuracy, training time and hidden rates at
the start, and per variant mean and sd), ``summary.md`` (a table) and ``accuracy.png``.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

__all__ = ["Sweep", "read_sweep", "run_sweep", "summarize"]

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "accuracy.png"


@attrs.frozen
class Sweep:
    """``name``; ``seeds`` (integers >= 0); ``base`` settings; ``variants``: name -> settings
    (each variant's config is ``base`` updated by its settings, validated as a
    :class:`~spikeloom.experiments.TrainConfig`, seed and ``out`` set per run)."""

    name: str
    seeds: tuple[int, ...]
    base: dict
    variants: dict

    def config(self, variant: str, seed: int, out: str | Path):
        """The :class:`~spikeloom.experiments.TrainConfig` of one run."""
        from .experiments import TrainConfig

        settings = {**self.base, **self.variants[variant], "seed": seed, "out": str(run_dir(out, self, variant, seed))}
        return TrainConfig.from_dict(settings, where=f"sweep {self.name!r}, variant {variant!r}")


def run_dir(out: str | Path, sweep: Sweep, variant: str, seed: int) -> Path:
    return Path(out) / sweep.name / variant / f"seed{seed}"


def _where(path, key: str) -> str:
    return f"sweep file {path}: {key}"


def read_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (every run's config is checked before any run starts)."""
    from .cli import _toml

    tomllib = _toml()

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"sweep file {path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"sweep file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"name", "seeds", "base", "variants"})
    if unknown:
        raise ValueError(f"sweep file {path}: unknown keys {unknown}; allowed are name, seeds, base, variants")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{_where(path, 'name')} must be a non-empty string without '/', got {name!r}")
    seeds = data.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(f"{_where(path, 'seeds')} must be a list of distinct integers >= 0, got {seeds!r}")
    base = data.get("base", {})
    variants = data.get("variants")
    if not isinstance(base, dict):
        raise ValueError(f"{_where(path, 'base')} must be a table of settings")
    if not isinstance(variants, dict) or not variants or not all(isinstance(v, dict) for v in variants.values()):
        raise ValueError(f"{_where(path, 'variants')} must hold at least one table [variants.<name>] of settings")
    for key in ("seed", "out"):
        if key in base or any(key in v for v in variants.values()):
            raise ValueError(f"sweep file {path}: '{key}' is set per run by the sweep; remove it from base/variants")
    sweep = Sweep(name, tuple(int(s) for s in seeds), dict(base), {k: dict(v) for k, v in variants.items()})
    for variant in sweep.variants:
        try:
            sweep.config(variant, sweep.seeds[0], "runs")
        except ValueError as exc:
            raise ValueError(f"sweep file {path}: {exc}") from None
    return sweep


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Per variant: ``n``, ``mean`` and ``sd`` (sample sd, 0 for one run) of the test accuracy,
    and the mean training time in s."""
    out: dict[str, dict] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        acc = np.array([r["test_accuracy"] for r in runs if r["variant"] == variant], dtype=np.float64)
        times = [r["train_time_s"] for r in runs if r["variant"] == variant]
        out[variant] = {
            "n": int(acc.size),
            "mean": float(acc.mean()),
            "sd": float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
            "train_time_s": float(np.mean(times)),
        }
    return out


def run_sweep(
    sweep: Sweep,
    *,
    out: str | Path = "runs",
    overrides: dict | None = None,
    progress: bool = False,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every variant with every seed (``overrides``: settings applied to every run, e.g.
    ``{"backend": "torch", "device": "cuda"}``), then write the results, summary and plot.
    A run that ends in an error is recorded with its message and counts as missing."""
    from .experiments import run_experiment

    root = Path(out) / sweep.name
    runs: list[dict] = []
    failed: list[dict] = []
    total = len(sweep.variants) * len(sweep.seeds)
    start = time.perf_counter()
    for variant in sweep.variants:
        for seed in sweep.seeds:
            config = sweep.config(variant, seed, out)
            if overrides:
                config = attrs.evolve(config, **overrides)
            log(f"[{len(runs) + len(failed) + 1}/{total}] {variant}, seed {seed}")
            try:
                result = run_experiment(config, progress=progress, plots=plots, log=lambda m: log("    " + m))
            except (ValueError, RuntimeError, OSError) as exc:
                log(f"    failed: {exc}")
                failed.append({"variant": variant, "seed": seed, "error": str(exc)})
                continue
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "test_accuracy": result["test"]["accuracy"],
                    "train_time_s": result["train_time_s"],
                    "backend": result["backend"],
                    "rates_hz_start": result["rates_hz"]["start"],
                    "final_train_loss": result["history"][-1]["train_loss"],
                }
            )
    summary = summarize(runs) if runs else {}
    results = {
        "sweep": sweep.name,
        "seeds": list(sweep.seeds),
        "base": sweep.base,
        "variants": sweep.variants,
        "overrides": overrides or {},
        "runs": runs,
        "failed": failed,
        "summary": summary,
        "wall_s": time.perf_counter() - start,
    }
    root.mkdir(parents=True, exist_ok=True)
    with open(root / RESULTS_FILE, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, allow_nan=False)
        f.write("\n")
    (root / SUMMARY_FILE).write_text(summary_table(results), encoding="utf-8")
    if plots and runs:
        plot_sweep(results, root / PLOT_FILE)
    log(summary_table(results))
    log(f"wrote {root / RESULTS_FILE}, {root / SUMMARY_FILE}" + (f", {root / PLOT_FILE}" if plots and runs else ""))
    return results


def summary_table(results: dict) -> str:
    """A Markdown table: variant, runs, test accuracy mean ± sd (%), the seeds' values, mean time."""
    lines = [
        "| variant | runs | test accuracy (mean ± sd) | per seed | training time (mean) |",
        "|---|---:|---:|---|---:|",
    ]
    for variant, s in results["summary"].items():
        per_seed = ", ".join(f"{100 * r['test_accuracy']:.1f}" for r in results["runs"] if r["variant"] == variant)
        lines.append(
            f"| {variant} | {s['n']} | {100 * s['mean']:.1f} ± {100 * s['sd']:.1f} % | {per_seed} | "
            f"{s['train_time_s']:.1f} s |"
        )
    for f in results["failed"]:
        lines.append(f"| {f['variant']} (seed {f['seed']}) | failed | {f['error']} | | |")
    return "\n".join(lines) + "\n"


def plot_sweep(results: dict, path: str | Path) -> None:
    """Test accuracy per variant: a bar at the mean with the sd as error bar, one dot per seed."""
    from .plotting import _pyplot

    plt = _pyplot()
    names = list(results["summary"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 1.5), 3.6))
    for i, name in enumerate(names):
        s = results["summary"][name]
        ax.bar(i, 100 * s["mean"], yerr=100 * s["sd"], color="C0", alpha=0.5, capsize=4)
        acc = [100 * r["test_accuracy"] for r in results["runs"] if r["variant"] == name]
        ax.plot(np.full(len(acc), i, dtype=float), acc, "o", color="C0", markersize=4)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results['sweep']} ({len(results['seeds'])} seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
