"""The ``spikeloom`` command."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _cmd_backends(args: argparse.Namespace) -> int:
    from .host import list_backends

    infos = list_backends()
    if args.json:
        json.dump(
            [
                {
                    "name": i.name,
                    "version": i.version,
                    "plugin": i.plugin,
                    "available": i.available,
                    "reason": i.reason,
                    "priority": i.priority,
                    "capabilities": None if i.capabilities is None else i.capabilities.to_dict(),
                }
                for i in infos
            ],
            sys.stdout,
            indent=1,
        )
        print()
        return 0
    for i in infos:
        status = "available" if i.available else f"unavailable: {i.reason}"
        print(f"{i.name} {i.version}  [{status}]" + (f"  {i.description}" if i.description else ""))
        if i.capabilities is not None:
            for key, value in i.capabilities.to_dict().items():
                shown = (", ".join(value) or "-") if isinstance(value, list) else value
                print(f"    {key:<26}{shown}")
    return 0


def _toml():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError("reading TOML needs Python >= 3.11 or the 'tomli' package") from None
    return tomllib


def _read_toml(path: str) -> dict:
    tomllib = _toml()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"config file {path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path}: not valid TOML ({exc})") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from .errors import SpikeloomError
    from .experiments import TrainConfig, resume_config, run_experiment
    from .training import NonFiniteLossError

    given = {k: getattr(args, k) for k in TrainConfig.keys() if getattr(args, k, None) is not None}
    if args.data_option:
        given["data_options"] = _parse_data_options(args.data_option)
    settings: dict = {}
    if args.config:
        raw = _read_toml(args.config)
        TrainConfig.from_dict(raw, where=f"config file {args.config}")  # names the file in errors
        settings = {k.replace("-", "_"): v for k, v in raw.items()}
    if "data_options" in given and isinstance(settings.get("data_options"), dict):
        given["data_options"] = {**settings["data_options"], **given["data_options"]}
    settings.update(given)
    if args.resume:
        config = resume_config(args.resume, settings)
    else:
        config = TrainConfig.from_dict(settings, where="spikeloom train")
    try:
        run_experiment(config, resume=args.resume, progress=not args.no_progress, plots=not args.no_plots)
    except (SpikeloomError, NonFiniteLossError, ImportError, FileNotFoundError) as exc:
        print(f"spikeloom train: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _parse_data_options(items: list[str]) -> dict:
    """``["pool=2", "duration=1000"]`` -> ``{"pool": 2, "duration": 1000}`` (values read as TOML
    values where they parse, else kept as strings)."""
    tomllib = _toml()

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--data-option must look like KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.strip()] = value.strip()
    return options


def _add_train_parser(sub) -> None:
    from .data.digits import ENCODINGS
    from .data.registry import DATASETS
    from .experiments import HETEROGENEITIES, INITS, MODELS, RULES, TrainConfig
    from .readout import MODES

    p = sub.add_parser(
        "train",
        help="train a spiking classifier (default: the embedded digits data set)",
        description=(
            "Train a recurrent ALIF (or LIF) network on a data set (default: scikit-learn's 8x8 digits encoded "
            "as spike trains, no download), print the test accuracy and write a checkpoint, metrics.json and "
            "PNG plots to --out. Every option can also be set in a TOML file given with --config (same names, "
            "'_' or '-'); options on the command line win."
        ),
    )
    d = TrainConfig()
    p.add_argument("--dataset", choices=DATASETS, help=f"data set (default: {d.dataset})")
    p.add_argument("--data-dir", dest="data_dir", metavar="DIR", help="folder with the SHD or MNIST files")
    p.add_argument(
        "--data-option",
        dest="data_option",
        action="append",
        metavar="KEY=VALUE",
        help="a further option of the data set's loader, e.g. pool=2 or duration=1000 for SHD (repeatable)",
    )
    p.add_argument("--backend", metavar="NAME", help="backend (default: the best available one that supports the run)")
    p.add_argument("--rule", choices=RULES, help=f"learning rule (default: {d.rule})")
    p.add_argument("--model", choices=MODELS, help=f"hidden neuron model (default: {d.model})")
    p.add_argument("--hidden", type=int, metavar="N", help=f"hidden neurons per layer (default: {d.hidden})")
    p.add_argument("--layers", type=int, metavar="N", help=f"hidden layers (default: {d.layers})")
    p.add_argument("--epochs", type=int, metavar="N", help=f"epochs in total, also when resuming (default: {d.epochs})")
    p.add_argument("--batch-size", dest="batch_size", type=int, metavar="N", help=f"default: {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {d.lr:g})")
    p.add_argument("--seed", type=int, help=f"seed of weights, data split, shuffling (default: {d.seed})")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<dataset>)")
    p.add_argument("--encoding", choices=ENCODINGS, help=f"spike encoding of the digits (default: {d.encoding})")
    p.add_argument("--loss", choices=MODES, help=f"readout mode of the loss (default: {d.loss})")
    p.add_argument("--init", choices=INITS, help=f"weight initialisation (default: {d.init})")
    p.add_argument("--xi", type=float, help=f"fluctuation init: threshold distance in std (default: {d.xi:g})")
    p.add_argument(
        "--heterogeneity",
        choices=HETEROGENEITIES,
        help=f"time constants: homogeneous/heterogeneous start, fixed/trained (default: {d.heterogeneity})",
    )
    p.add_argument("--tau-mem", dest="tau_mem", type=float, metavar="MS", help=f"default: {d.tau_mem:g}")
    p.add_argument(
        "--tau-syn", dest="tau_syn", type=float, metavar="MS", help=f"0: delta synapses (default: {d.tau_syn:g})"
    )
    p.add_argument("--dtype", choices=("float32", "float64"), help=f"floating-point type (default: {d.dtype})")
    p.add_argument("--device", help=f"device, e.g. cpu or cuda:0, where the backend has it (default: {d.device})")
    p.add_argument("--window", type=int, metavar="STEPS", help=f"loss over the last STEPS steps (default: {d.window})")
    p.add_argument(
        "--validation-fraction",
        dest="validation_fraction",
        type=float,
        metavar="F",
        help=f"fraction of the training set held out for validation (default: {d.validation_fraction})",
    )
    p.add_argument(
        "--recurrent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"recurrent hidden connections (default: {'yes' if d.recurrent else 'no'})",
    )
    p.add_argument("--tau-adapt", dest="tau_adapt", type=float, metavar="MS", help=f"ALIF (default: {d.tau_adapt:g})")
    p.add_argument("--beta", type=float, help=f"ALIF adaptation strength (default: {d.beta:g})")
    p.add_argument("--limit", type=int, metavar="N", help="use only N training and N test examples (quick runs)")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    p.add_argument("--resume", metavar="DIR", help="continue the run whose checkpoint (or run folder) is DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.set_defaults(func=_cmd_train)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import attrs

    from .sweeps import read_sweep, run_sweep

    sweep = read_sweep(args.file)
    if args.seeds:
        sweep = attrs.evolve(sweep, seeds=tuple(args.seeds))
    overrides = {k: getattr(args, k) for k in ("backend", "device", "dtype") if getattr(args, k) is not None}
    results = run_sweep(sweep, out=args.out, overrides=overrides, progress=args.progress, plots=not args.no_plots)
    return 1 if results["failed"] else 0


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run the variants x seeds of a sweep file and summarise the test accuracy",
        description=(
            "Run every variant of a sweep TOML file (a [base] config and [variants.<name>] tables of "
            "spikeloom train settings) with every seed; write each run like spikeloom train does and "
            "results.json, summary.md (mean ± sd) and accuracy.png under OUT/<name>/. Exit status 1 if "
            "a run failed."
        ),
    )
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--out", default="runs", metavar="DIR", help="parent folder of the sweep's folder (default: runs)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="seeds instead of the file's")
    p.add_argument("--backend", metavar="NAME", help="backend of every run (default: the file's, else the best)")
    p.add_argument("--device", help="device of every run, e.g. cuda:0")
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--progress", action="store_true", help="progress bars of each run")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.set_defaults(func=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="spikeloom", description="Spiking neural network simulation and training.")
    parser.add_argument("--version", action="version", version=f"spikeloom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("backends", help="list backends: name, version, availability, capabilities")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_backends)
    _add_train_parser(sub)
    _add_sweep_parser(sub)
    _add_conformance_parser(sub)
    return parser


def _add_conformance_parser(sub) -> None:
    try:  # the kit is optional at run time; its parser module imports only argparse
        from spikeloom_conformance.cli import add_bench_subparser, add_subparser
    except ImportError:
        return
    add_subparser(sub)
    add_bench_subparser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"spikeloom {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
