"""Ready-made experiments, reusable from Python and behind ``spikeloom train``.

The digits experiment: scikit-learn's 8x8 digits as spike trains (:mod:`spikeloom.data.digits`)
-> a recurrent ALIF (or LIF) hidden layer -> an LI readout of 10 neurons, trained with e-prop or
BPTT on the ``per_step`` loss over the last ``window`` steps::

    from spikeloom.experiments import DigitsConfig, run_digits
    result = run_digits(DigitsConfig(epochs=5, hidden=64, out="runs/quick"))
    result["test"]["accuracy"]
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from .connections import Connection
from .distributions import Normal
from .network import Network
from .optim import Adam
from .populations import ALIF, LI, LIF, SpikeInput
from .readout import Readout
from .rules import BPTT, EProp

__all__ = [
    "DigitsConfig",
    "digits_network",
    "make_rule",
    "make_readout",
    "build_digits",
    "run_digits",
    "compile_on_best",
    "resume_config",
    "checkpoint_path",
    "RULES",
    "MODELS",
    "CHECKPOINT_DIR",
    "METRICS_FILE",
    "CURVES_FILE",
    "RASTER_FILE",
]

RULES = ("eprop", "bptt")
MODELS = ("alif", "lif")
CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
RASTER_FILE = "raster.png"


# -- configuration --------------------------------------------------------------------------------
def _int_at_least(minimum: int):
    def check(instance, attribute, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _one_of(choices):
    def check(instance, attribute, value):
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {list(choices)}, got {value!r}")

    return check


def _positive_real(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _fraction(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be a number in [0, 1), got {value!r}")


def _optional_str(instance, attribute, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _optional_limit(instance, attribute, value):
    if value is not None:
        _int_at_least(1)(instance, attribute, value)


def _bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false, got {value!r}")


@attrs.frozen
class DigitsConfig:
    """Settings of the digits experiment; every field is also a ``spikeloom train`` option and a
    key of its ``--config`` TOML file.

    ``backend`` (None: the available backend of highest priority that supports the run),
    ``device`` (``"cpu"``, ``"cuda:0"``, ... where the backend has it), ``rule`` (``eprop``/``bptt``), ``model`` of the
    hidden neurons (``alif``/``lif``), ``hidden`` neurons, ``epochs``, ``batch_size``, ``lr``
    (Adam), ``seed`` (network, split and shuffling), ``out`` folder, ``encoding``
    (``pixels`` by default: it reaches the accuracy target in budget; the ``sequential``
    S-MNIST-like code and the ``rows`` code learn far more slowly from 1347 images, see
    :mod:`spikeloom.data.digits` and docs/training.md), ``dtype``, ``window`` (the loss
    looks at the last ``window`` steps), ``validation_fraction`` of the training set held out,
    ``recurrent`` hidden connections, ``tau_adapt`` (ms) and ``beta`` of ALIF neurons, ``limit``
    (use only that many training and test examples; for quick runs).
    """

    backend: str | None = attrs.field(default=None, validator=_optional_str)
    rule: str = attrs.field(default="eprop", validator=_one_of(RULES))
    model: str = attrs.field(default="alif", validator=_one_of(MODELS))
    hidden: int = attrs.field(default=64, validator=_int_at_least(1))
    epochs: int = attrs.field(default=10, validator=_int_at_least(1))
    batch_size: int = attrs.field(default=32, validator=_int_at_least(1))
    lr: float = attrs.field(default=5e-3, validator=_positive_real)
    seed: int = attrs.field(default=0, validator=_int_at_least(0))
    out: str = attrs.field(default="runs/digits", validator=_optional_str)
    encoding: str = attrs.field(default="pixels")
    dtype: str = attrs.field(default="float32", validator=_one_of(("float32", "float64")))
    device: str = attrs.field(default="cpu", validator=_optional_str)
    window: int = attrs.field(default=8, validator=_int_at_least(1))
    validation_fraction: float = attrs.field(default=0.1, validator=_fraction)
    recurrent: bool = attrs.field(default=True, validator=_bool)
    tau_adapt: float = attrs.field(default=200.0, validator=_positive_real)
    beta: float = attrs.field(default=0.2, validator=_positive_real)
    limit: int | None = attrs.field(default=None, validator=_optional_limit)

    def __attrs_post_init__(self) -> None:
        from .data.digits import ENCODINGS

        _one_of(ENCODINGS)(self, attrs.fields(DigitsConfig).encoding, self.encoding)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in attrs.fields(cls))

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> DigitsConfig:
        """Build from a dict (a TOML file's table); ``-`` in keys is read as ``_``; unknown keys
        and bad values raise ``ValueError`` naming ``where``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a table of settings, got {type(data).__name__}")
        norm = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(norm) - set(cls.keys()))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {list(cls.keys())}")
        if isinstance(norm.get("lr"), int) and not isinstance(norm.get("lr"), bool):
            norm["lr"] = float(norm["lr"])
        for key in ("tau_adapt", "beta"):
            if isinstance(norm.get(key), int) and not isinstance(norm.get(key), bool):
                norm[key] = float(norm[key])
        try:
            return cls(**norm)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict:
        return attrs.asdict(self)


# -- the network ----------------------------------------------------------------------------------
def digits_network(
    n_inputs: int = 79,
    hidden: int = 64,
    *,
    model: str = "alif",
    n_classes: int = 10,
    recurrent: bool = True,
    tau_adapt: float = 200.0,
    beta: float = 0.2,
    seed: int = 0,
) -> Network:
    """``SpikeInput("inp", n_inputs) -> hidden -> LI("out", n_classes)``.

    Hidden neurons: ALIF (or LIF) with tau_mem 20 ms, v_thresh 0.6, refractory 5 ms, subtractive
    reset, and for ALIF ``tau_adapt`` (ms) and ``beta``; optional recurrent connections
    (``hidden_to_hidden``, no self-synapses).  Readout: tau_mem 20 ms, bias starting at 0.
    Weights are drawn from N(0, 1/sqrt(fan_in)) (Bellec et al.'s e-prop initialisation).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    common = {"tau_mem": 20.0, "v_thresh": 0.6, "refractory": 5.0}
    if model == "alif":
        neurons = ALIF("hidden", hidden, tau_adapt=tau_adapt, beta=beta, **common)
    else:
        neurons = LIF("hidden", hidden, **common)
    pops = [SpikeInput("inp", n_inputs), neurons, LI("out", n_classes, tau_mem=20.0)]
    conns = [Connection("inp", "hidden", weight=Normal(0.0, 1.0 / math.sqrt(n_inputs)))]
    if recurrent and hidden > 1:
        conns.append(Connection("hidden", "hidden", weight=Normal(0.0, 1.0 / math.sqrt(hidden - 1))))
    conns.append(Connection("hidden", "out", weight=Normal(0.0, 1.0 / math.sqrt(hidden))))
    return Network(pops, conns, dt=1.0, seed=seed)


def make_rule(name: str):
    """``"eprop"`` -> ``EProp()`` (triangle surrogate), ``"bptt"`` -> ``BPTT()`` (SuperSpike 10)."""
    if name == "eprop":
        return EProp()
    if name == "bptt":
        return BPTT()
    raise ValueError(f"rule must be one of {list(RULES)}, got {name!r}")


def make_readout(n_steps: int, window: int, population: str = "out") -> Readout:
    """The ``per_step`` readout over the last ``min(window, n_steps)`` of ``n_steps`` steps."""
    return Readout(population, "per_step", window=(max(0, n_steps - window), None))


def build_digits(config: DigitsConfig):
    """``(network, rule, readout, train, test)`` for ``config`` (no backend involved)."""
    from .data.digits import load_digits

    train, test = load_digits(config.encoding, seed=config.seed, limit=config.limit)
    network = digits_network(
        train.n_inputs,
        config.hidden,
        model=config.model,
        n_classes=train.n_classes,
        recurrent=config.recurrent,
        tau_adapt=config.tau_adapt,
        beta=config.beta,
        seed=config.seed,
    )
    return network, make_rule(config.rule), make_readout(train.n_steps, config.window), train, test


def compile_on_best(network, rule, readout, *, dtype: str = "float32", device: str = "cpu", backend: str | None = None):
    """``(backend, compiled)``: compile on the named ``backend``, or else on the available backend
    of highest priority that supports this network, rule, readout, dtype and device (backends
    that declare less are skipped, never silently changed).  ``ValueError`` when none can."""
    from .errors import BackendUnavailable, UnsupportedFeature
    from .host import get_backend, list_backends

    if backend is not None:
        be = get_backend(backend)
        return be, be.compile(network, rule=rule, readout=readout, dtype=dtype, device=device)
    skipped = []
    infos = sorted((i for i in list_backends() if i.available), key=lambda i: -i.priority)
    for info in infos:
        be = get_backend(info.name)
        try:
            return be, be.compile(network, rule=rule, readout=readout, dtype=dtype, device=device)
        except (UnsupportedFeature, BackendUnavailable) as exc:
            skipped.append(f"{info.name}: {exc}")
    raise ValueError("no available backend can run this experiment: " + "; ".join(skipped))


# -- running --------------------------------------------------------------------------------------
def run_digits(
    config: DigitsConfig,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train on the digits, evaluate on the test set and write into ``config.out``:
    ``checkpoint/`` (see :mod:`spikeloom.checkpoint`), ``metrics.json`` (config, backend,
    history, test loss and accuracy) and, with ``plots``, ``curves.png`` and ``raster.png``.

    ``resume``: a checkpoint directory (or a run folder holding ``checkpoint/``) written by an
    earlier run; training continues to ``config.epochs`` as the uninterrupted run would have.
    The settings that define the run come from the checkpoint. Returns the metrics dict.
    """
    from .training import Trainer

    out = Path(config.out)
    ckpt_dir = out / CHECKPOINT_DIR
    if resume is not None:
        from .checkpoint import load_checkpoint

        resume = checkpoint_path(resume)
        ckpt = load_checkpoint(resume)
        backend, _ = compile_on_best(
            ckpt.network, ckpt.rule, ckpt.readout, dtype=config.dtype, device=config.device, backend=config.backend
        )
        trainer = Trainer.from_checkpoint(
            resume,
            backend=backend,
            dtype=config.dtype,
            device=config.device,
            checkpoint_dir=ckpt_dir,
            progress=progress,
        )
        trainer.extra["config"] = config.to_dict()
        _, _, _, train, test = build_digits(config)
        log(f"resuming from {resume} after epoch {trainer.epoch} of {config.epochs}")
    else:
        network, rule, readout, train, test = build_digits(config)
        backend, compiled = compile_on_best(
            network, rule, readout, dtype=config.dtype, device=config.device, backend=config.backend
        )
        trainer = Trainer(
            compiled,
            Adam(lr=config.lr),
            batch_size=config.batch_size,
            seed=config.seed,
            validation_fraction=config.validation_fraction,
            checkpoint_dir=ckpt_dir,
            progress=progress,
            extra={"config": config.to_dict()},
        )
    backend_name = backend.name
    log(
        f"digits ({config.encoding} encoding): {len(train)} train / {len(test)} test examples, "
        f"{train.n_steps} steps, {train.n_inputs} inputs; {config.model.upper()} x {config.hidden}, "
        f"{config.rule}, backend {backend_name}"
    )
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    history = trainer.fit(train, config.epochs)
    elapsed = time.perf_counter() - start
    test_metrics = trainer.evaluate(test)
    log(f"test accuracy {test_metrics['accuracy']:.4f}  (loss {test_metrics['loss']:.4f}; {elapsed:.1f} s of training)")
    result = {
        "experiment": "digits",
        "config": config.to_dict(),
        "backend": backend_name,
        "epochs": trainer.epoch,
        "history": history,
        "test": test_metrics,
        "train_time_s": elapsed,
        "files": {"checkpoint": CHECKPOINT_DIR, "metrics": METRICS_FILE},
    }
    if plots:
        from .plotting import plot_history, plot_raster

        plot_history(history, out / CURVES_FILE, test_accuracy=test_metrics["accuracy"])
        x, labels = test.batch(np.arange(min(4, len(test))))
        rec = trainer.compiled.simulate(x, record={"hidden": ("z",)})
        pred = np.asarray(trainer.compiled.evaluate(x, labels).predictions)
        plot_raster(
            np.asarray(rec["hidden"]["z"]),
            out / RASTER_FILE,
            inputs=x,
            titles=[f"label {int(y)}, predicted {int(p)}" for y, p in zip(labels, pred, strict=True)],
        )
        result["files"].update({"curves": CURVES_FILE, "raster": RASTER_FILE})
    with open(out / METRICS_FILE, "w", encoding="utf-8") as f:
        from .checkpoint import to_jsonable

        json.dump(to_jsonable(result), f, indent=1, allow_nan=False)
        f.write("\n")
    log(f"wrote {out / METRICS_FILE}, {ckpt_dir}" + (f", {out / CURVES_FILE}, {out / RASTER_FILE}" if plots else ""))
    return result


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint directory, or a run folder holding ``checkpoint/``, as the checkpoint directory."""
    from .checkpoint import FILES

    path = Path(path)
    if path.is_dir() and not (path / FILES[0]).exists() and (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    return path


#: settings that may change when a run is resumed (they do not change what is computed)
RESUMABLE = ("epochs", "out", "backend", "device")


def resume_config(path: str | Path, overrides: dict | None = None) -> DigitsConfig:
    """The config a checkpoint of ``run_digits`` was written with, updated by ``overrides``.

    Only :data:`RESUMABLE` settings may differ from the stored ones (``ValueError`` otherwise);
    ``out`` defaults to the run folder that holds the checkpoint.
    """
    from .checkpoint import load_checkpoint

    path = checkpoint_path(path)
    stored = load_checkpoint(path).extra.get("config")
    if not isinstance(stored, dict):
        raise ValueError(
            f"checkpoint {path}: it stores no digits experiment config (it was not written by spikeloom train)"
        )
    base = DigitsConfig.from_dict(stored, where=f"checkpoint {path}: config")
    changes = {}
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")
        if key not in DigitsConfig.keys():
            raise ValueError(f"unknown setting {key!r}; allowed: {list(DigitsConfig.keys())}")
        if key in RESUMABLE:
            changes[key] = value
        elif getattr(base, key) != value:
            raise ValueError(
                f"{key}={value!r} differs from the checkpoint's {key}={getattr(base, key)!r}; "
                f"only {list(RESUMABLE)} can change when resuming"
            )
    if "out" not in changes and path.name == CHECKPOINT_DIR:
        changes["out"] = str(path.parent)
    try:
        return attrs.evolve(base, **changes)
    except ValueError as exc:
        raise ValueError(f"resume: {exc}") from None
