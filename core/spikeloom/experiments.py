"""Ready-made experiments, reusable from Python and behind ``spikeloom train``.

A classifier: a data set by name (:func:`spikeloom.data.load_dataset`: the embedded digits,
SHD, spiking S-MNIST, randman) -> one or more hidden LIF/ALIF layers (recurrent or not) -> an LI
readout of one neuron per class, trained with e-prop or BPTT; optionally fluctuation-driven
initialisation (:mod:`spikeloom.fluctuation`) and heterogeneous or trained time constants
(:mod:`spikeloom.heterogeneity`)::

    from spikeloom.experiments import TrainConfig, run_experiment
    result = run_experiment(TrainConfig(epochs=5, hidden=64, out="runs/quick"))
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
from .data.registry import DATASETS
from .distributions import Normal
from .host import compile_on_best
from .network import Network
from .optim import Adam
from .populations import ALIF, LI, LIF, SpikeInput
from .readout import MODES, Readout
from .rules import BPTT, EProp

__all__ = [
    "TrainConfig",
    "classifier_network",
    "hidden_names",
    "make_rule",
    "make_readout",
    "build_experiment",
    "run_experiment",
    "compile_on_best",
    "resume_config",
    "checkpoint_path",
    "RULES",
    "MODELS",
    "INITS",
    "HETEROGENEITIES",
    "CHECKPOINT_DIR",
    "METRICS_FILE",
    "CURVES_FILE",
    "RASTER_FILE",
    "TAUS_FILE",
]

RULES = ("eprop", "bptt")
MODELS = ("alif", "lif")
INITS = ("default", "fluctuation")
HETEROGENEITIES = ("HomInit-StdTr", "HetInit-StdTr", "HomInit-HetTr", "HetInit-HetTr")
CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
RASTER_FILE = "raster.png"
TAUS_FILE = "time_constants.png"


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


def _real_at_least(minimum: float, strict: bool):
    def check(instance, attribute, value):
        ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        if not ok or value < minimum or (strict and value == minimum):
            raise ValueError(
                f"{attribute.name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}"
            )

    return check


_positive_real = _real_at_least(0.0, strict=True)


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


def _heterogeneity(value):
    from .heterogeneity import as_heterogeneity

    if not isinstance(value, str):
        raise ValueError(f"heterogeneity must be one of {list(HETEROGENEITIES)}, got {value!r}")
    try:
        return as_heterogeneity(value).name
    except ValueError:
        raise ValueError(f"heterogeneity must be one of {list(HETEROGENEITIES)}, got {value!r}") from None


def _options(value):
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"data_options must be a table of option names to values, got {value!r}")
    return dict(value)


_FLOATS = ("lr", "tau_mem", "tau_syn", "tau_adapt", "beta", "xi", "validation_fraction")


@attrs.frozen
class TrainConfig:
    """Settings of one training run; every field is also a ``spikeloom train`` option and a key
    of its ``--config`` TOML file.

    Data: ``dataset`` (one of :data:`spikeloom.data.DATASETS`), ``data_dir`` (the folder with
    the SHD or MNIST files; None for the embedded digits and generated randman), ``encoding``
    (digits only: ``pixels`` by default, it reaches the accuracy target in budget; the
    ``sequential`` S-MNIST-like code and ``rows`` learn far more slowly from 1347 images, see
    docs/training.md), ``data_options`` (further loader options, e.g. ``{"pool": 2}`` for SHD;
    :func:`spikeloom.data.dataset_options`), ``limit`` (use only that many training and test
    examples; quick runs).

    Network: ``model`` of the hidden neurons (``alif``/``lif``), ``hidden`` neurons per layer,
    ``layers`` of them (a feed-forward chain), ``recurrent`` connections within each layer,
    ``tau_mem`` and ``tau_syn`` (ms; ``tau_syn = 0``: delta synapses), ``tau_adapt`` (ms) and
    ``beta`` of ALIF neurons, ``heterogeneity`` (one of :data:`HETEROGENEITIES`; HetTr needs
    BPTT), ``init`` (``default``: N(0, 1/sqrt(fan_in)); ``fluctuation``: data-dependent
    fluctuation-driven initialisation with threshold distance ``xi``).

    Training: ``rule`` (``eprop``/``bptt``), ``loss`` (readout mode: ``per_step`` over the last
    ``window`` steps, ``max``, ``mean`` or ``last``), ``epochs``, ``batch_size``, ``lr`` (Adam),
    ``seed`` (network, split and shuffling), ``validation_fraction`` held out.

    Where: ``backend`` (None: the available backend of highest priority that supports the run),
    ``device`` (``"cpu"``, ``"cuda:0"``, ...), ``dtype``, ``out`` folder (default
    ``runs/<dataset>``).
    """

    dataset: str = attrs.field(default="digits", validator=_one_of(DATASETS))
    data_dir: str | None = attrs.field(default=None, validator=_optional_str)
    encoding: str = attrs.field(default="pixels")
    data_options: dict = attrs.field(factory=dict, converter=_options)
    limit: int | None = attrs.field(default=None, validator=_optional_limit)
    model: str = attrs.field(default="alif", validator=_one_of(MODELS))
    hidden: int = attrs.field(default=64, validator=_int_at_least(1))
    layers: int = attrs.field(default=1, validator=_int_at_least(1))
    recurrent: bool = attrs.field(default=True, validator=_bool)
    tau_mem: float = attrs.field(default=20.0, validator=_positive_real)
    tau_syn: float = attrs.field(default=0.0, validator=_real_at_least(0.0, strict=False))
    tau_adapt: float = attrs.field(default=200.0, validator=_positive_real)
    beta: float = attrs.field(default=0.2, validator=_positive_real)
    heterogeneity: str = attrs.field(default="HomInit-StdTr", converter=_heterogeneity)
    init: str = attrs.field(default="default", validator=_one_of(INITS))
    xi: float = attrs.field(default=1.5, validator=_positive_real)
    rule: str = attrs.field(default="eprop", validator=_one_of(RULES))
    loss: str = attrs.field(default="per_step", validator=_one_of(MODES))
    window: int = attrs.field(default=8, validator=_int_at_least(1))
    epochs: int = attrs.field(default=10, validator=_int_at_least(1))
    batch_size: int = attrs.field(default=32, validator=_int_at_least(1))
    lr: float = attrs.field(default=5e-3, validator=_positive_real)
    seed: int = attrs.field(default=0, validator=_int_at_least(0))
    validation_fraction: float = attrs.field(default=0.1, validator=_fraction)
    backend: str | None = attrs.field(default=None, validator=_optional_str)
    device: str = attrs.field(default="cpu", validator=_optional_str)
    dtype: str = attrs.field(default="float32", validator=_one_of(("float32", "float64")))
    out: str | None = attrs.field(default=None, validator=_optional_str)

    def __attrs_post_init__(self) -> None:
        from .data.digits import ENCODINGS

        _one_of(ENCODINGS)(self, attrs.fields(TrainConfig).encoding, self.encoding)
        if self.dataset in ("shd", "smnist") and self.data_dir is None:
            raise ValueError(f"data_dir is needed for dataset={self.dataset!r}: the folder holding its files")
        if self.dataset in ("digits", "randman") and self.data_dir is not None:
            raise ValueError(f"data_dir must not be set for dataset={self.dataset!r} (it needs no files)")
        if self.init == "fluctuation" and not 1 < self.xi < 3:
            raise ValueError(f"xi must lie in (1, 3) for init='fluctuation', got {self.xi!r}")
        if self.heterogeneity.endswith("HetTr") and self.rule != "bptt":
            raise ValueError(f"heterogeneity={self.heterogeneity!r} trains time constants, which needs rule='bptt'")

    @property
    def out_dir(self) -> Path:
        """``out``, or ``runs/<dataset>`` when it is not set."""
        return Path(self.out if self.out is not None else f"runs/{self.dataset}")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in attrs.fields(cls))

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> TrainConfig:
        """Build from a dict (a TOML file's table); ``-`` in keys is read as ``_``; unknown keys
        and bad values raise ``ValueError`` naming ``where``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a table of settings, got {type(data).__name__}")
        norm = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(norm) - set(cls.keys()))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {list(cls.keys())}")
        for key in _FLOATS:
            if isinstance(norm.get(key), int) and not isinstance(norm.get(key), bool):
                norm[key] = float(norm[key])
        try:
            return cls(**norm)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    def load_data(self):
        """``(train, test)`` of ``dataset`` with this config's options."""
        from .data.registry import load_dataset

        options = dict(self.data_options)
        if self.dataset == "digits":
            options.setdefault("encoding", self.encoding)
        return load_dataset(self.dataset, data_dir=self.data_dir, seed=self.seed, limit=self.limit, **options)


# -- the network ----------------------------------------------------------------------------------
def hidden_names(layers: int) -> list[str]:
    """``["hidden"]`` for one layer, else ``["hidden1", ..., "hidden<layers>"]``."""
    return ["hidden"] if layers == 1 else [f"hidden{i}" for i in range(1, layers + 1)]


def classifier_network(
    n_inputs: int = 79,
    hidden: int = 64,
    *,
    layers: int = 1,
    model: str = "alif",
    n_classes: int = 10,
    recurrent: bool = True,
    tau_mem: float = 20.0,
    tau_syn: float = 0.0,
    tau_adapt: float = 200.0,
    beta: float = 0.2,
    dt: float = 1.0,
    seed: int = 0,
) -> Network:
    """``SpikeInput("inp", n_inputs) -> hidden layer(s) -> LI("out", n_classes)``.

    ``layers`` hidden layers of ``hidden`` neurons each (names from :func:`hidden_names`), ALIF
    (or LIF) with ``tau_mem`` and ``tau_syn`` in ms (``tau_syn = 0``: delta synapses), v_thresh
    0.6, refractory 5 ms, subtractive reset, and for ALIF ``tau_adapt`` (ms) and ``beta``;
    optional recurrent connections within each layer (``<layer>_to_<layer>``, no self-synapses).
    Readout: tau_mem 20 ms, bias starting at 0.  Weights are drawn from N(0, 1/sqrt(fan_in))
    (Bellec et al.'s e-prop initialisation); ``dt`` in ms.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    common = {"tau_mem": tau_mem, "tau_syn": tau_syn, "v_thresh": 0.6, "refractory": 5.0}
    names = hidden_names(layers)
    pops: list = [SpikeInput("inp", n_inputs)]
    conns: list = []
    pre, n_pre = "inp", n_inputs
    for name in names:
        if model == "alif":
            pops.append(ALIF(name, hidden, tau_adapt=tau_adapt, beta=beta, **common))
        else:
            pops.append(LIF(name, hidden, **common))
        conns.append(Connection(pre, name, weight=Normal(0.0, 1.0 / math.sqrt(n_pre))))
        if recurrent and hidden > 1:
            conns.append(Connection(name, name, weight=Normal(0.0, 1.0 / math.sqrt(hidden - 1))))
        pre, n_pre = name, hidden
    pops.append(LI("out", n_classes, tau_mem=20.0))
    conns.append(Connection(pre, "out", weight=Normal(0.0, 1.0 / math.sqrt(hidden))))
    return Network(pops, conns, dt=dt, seed=seed)


def make_rule(name: str):
    """``"eprop"`` -> ``EProp()`` (triangle surrogate), ``"bptt"`` -> ``BPTT()`` (SuperSpike 10)."""
    if name == "eprop":
        return EProp()
    if name == "bptt":
        return BPTT()
    raise ValueError(f"rule must be one of {list(RULES)}, got {name!r}")


def make_readout(n_steps: int, window: int, population: str = "out", mode: str = "per_step") -> Readout:
    """The readout of ``population``: ``mode`` over the last ``min(window, n_steps)`` of
    ``n_steps`` steps (``last`` takes no window)."""
    if mode == "last":
        return Readout(population, "last")
    return Readout(population, mode, window=(max(0, n_steps - window), None))


def build_experiment(config: TrainConfig):
    """``(network, rule, readout, train, test)`` for ``config`` before any data-dependent
    initialisation (:func:`run_experiment` applies ``init="fluctuation"`` on the backend it runs on)."""
    from .heterogeneity import heterogeneous_network

    train, test = config.load_data()
    network = classifier_network(
        train.n_inputs,
        config.hidden,
        layers=config.layers,
        model=config.model,
        n_classes=train.n_classes,
        recurrent=config.recurrent,
        tau_mem=config.tau_mem,
        tau_syn=config.tau_syn,
        tau_adapt=config.tau_adapt,
        beta=config.beta,
        dt=float(getattr(train, "dt", 1.0)),
        seed=config.seed,
    )
    if config.heterogeneity != "HomInit-StdTr":
        network = heterogeneous_network(network, config.heterogeneity)
    readout = make_readout(train.n_steps, config.window, mode=config.loss)
    return network, make_rule(config.rule), readout, train, test


def decay_factors(compiled) -> dict[str, np.ndarray]:
    """``{"<pop>.alpha_mem" | "<pop>.alpha_syn": decay factors}`` of every spiking population:
    the trained values where the time constants are trainable, else the fixed ones."""
    built = compiled.network.built
    out = {}
    for p in built.neuron_populations:
        if not p.spiking:
            continue
        out[f"{p.name}.alpha_mem"] = np.asarray(p.alpha_mem, dtype=np.float64)
        if p.synapse == "exponential":
            out[f"{p.name}.alpha_syn"] = np.asarray(p.alpha_syn, dtype=np.float64)
    params = compiled.get_params()
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in params.items() if k in out})
    return out


# -- running --------------------------------------------------------------------------------------
def run_experiment(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate on the test set and write into ``config.out_dir``: ``checkpoint/`` (see
    :mod:`spikeloom.checkpoint`), ``metrics.json`` (config, backend, history, test loss and
    accuracy, the fluctuation-init report where used, firing rates at the start) and, with
    ``plots``, ``curves.png``, ``raster.png`` and, for heterogeneous or trained time constants,
    ``time_constants.png`` (before and after training).

    ``resume``: a checkpoint directory (or a run folder holding ``checkpoint/``) written by an
    earlier run; training continues to ``config.epochs`` as the uninterrupted run would have.
    The settings that define the run come from the checkpoint. Returns the metrics dict.
    """
    from .training import Trainer

    out = config.out_dir
    ckpt_dir = out / CHECKPOINT_DIR
    init_report = None
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
        train, test = config.load_data()
        log(f"resuming from {resume} after epoch {trainer.epoch} of {config.epochs}")
    else:
        network, rule, readout, train, test = build_experiment(config)
        backend, compiled = compile_on_best(
            network, rule, readout, dtype=config.dtype, device=config.device, backend=config.backend
        )
        if config.init == "fluctuation":
            from .fluctuation import FluctuationConfig, fluctuation_init

            log(f"fluctuation-driven initialisation (xi {config.xi:g}) on a sample of the training set")
            network, init_report = fluctuation_init(
                network,
                train,
                FluctuationConfig(xi=config.xi),
                backend=backend,
                dtype=config.dtype,
                device=config.device,
            )
            compiled = backend.compile(network, rule=rule, readout=readout, dtype=config.dtype, device=config.device)
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
    compiled = trainer.compiled
    hidden = [p.name for p in compiled.network.built.neuron_populations if p.spiking]
    log(
        f"{config.dataset}{f' ({config.encoding} encoding)' if config.dataset == 'digits' else ''}: "
        f"{len(train)} train / {len(test)} test examples, {train.n_steps} steps, {train.n_inputs} inputs; "
        f"{config.layers} x {config.model.upper()} {config.hidden}, {config.rule}, {config.heterogeneity}, "
        f"{config.init} init, backend {backend.name}"
    )
    out.mkdir(parents=True, exist_ok=True)
    x_probe, labels_probe = test.batch(np.arange(min(32, len(test))))
    initial_rates = _rates_hz(compiled, x_probe, hidden)
    taus_before = decay_factors(compiled)
    start = time.perf_counter()
    history = trainer.fit(train, config.epochs)
    elapsed = time.perf_counter() - start
    test_metrics = trainer.evaluate(test)
    log(f"test accuracy {test_metrics['accuracy']:.4f}  (loss {test_metrics['loss']:.4f}; {elapsed:.1f} s of training)")
    result = {
        "experiment": config.dataset,
        "config": config.to_dict(),
        "backend": backend.name,
        "epochs": trainer.epoch,
        "history": history,
        "test": test_metrics,
        "train_time_s": elapsed,
        "rates_hz": {"start": initial_rates, "end": _rates_hz(compiled, x_probe, hidden)},
        "files": {"checkpoint": CHECKPOINT_DIR, "metrics": METRICS_FILE},
    }
    if init_report is not None:
        result["init"] = init_report.to_dict()
    if plots:
        from .plotting import plot_history, plot_raster, plot_time_constants

        plot_history(history, out / CURVES_FILE, test_accuracy=test_metrics["accuracy"])
        x, labels = x_probe[:, :4], labels_probe[:4]
        rec = compiled.simulate(x, record={hidden[0]: ("z",)})
        pred = np.asarray(compiled.evaluate(x, labels).predictions)
        plot_raster(
            np.asarray(rec[hidden[0]]["z"]),
            out / RASTER_FILE,
            inputs=x,
            titles=[f"label {int(y)}, predicted {int(p)}" for y, p in zip(labels, pred, strict=True)],
        )
        result["files"].update({"curves": CURVES_FILE, "raster": RASTER_FILE})
        if config.heterogeneity != "HomInit-StdTr":
            plot_time_constants(taus_before, decay_factors(compiled), out / TAUS_FILE, dt=compiled.network.built.dt)
            result["files"]["time_constants"] = TAUS_FILE
    with open(out / METRICS_FILE, "w", encoding="utf-8") as f:
        from .checkpoint import to_jsonable

        json.dump(to_jsonable(result), f, indent=1, allow_nan=False)
        f.write("\n")
    log(f"wrote {out / METRICS_FILE}, {ckpt_dir}" + (", plots" if plots else ""))
    return result


def _rates_hz(compiled, x, populations: list[str]) -> dict[str, float]:
    """Mean firing rate (Hz) of each population on the input ``x [T, B, N]``."""
    rec = compiled.simulate(x, record={name: ("z",) for name in populations})
    dt = compiled.network.built.dt
    return {name: 1000.0 * float(np.mean(np.asarray(rec[name]["z"], dtype=np.float64))) / dt for name in populations}


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint directory, or a run folder holding ``checkpoint/``, as the checkpoint directory."""
    from .checkpoint import FILES

    path = Path(path)
    if path.is_dir() and not (path / FILES[0]).exists() and (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    return path


#: settings that may change when a run is resumed (they do not change what is computed)
RESUMABLE = ("epochs", "out", "backend", "device", "data_dir")


def resume_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The config a checkpoint of ``run_experiment`` was written with, updated by ``overrides``.

    Only :data:`RESUMABLE` settings may differ from the stored ones (``ValueError`` otherwise);
    ``out`` defaults to the run folder that holds the checkpoint.
    """
    from .checkpoint import load_checkpoint

    path = checkpoint_path(path)
    stored = load_checkpoint(path).extra.get("config")
    if not isinstance(stored, dict):
        raise ValueError(f"checkpoint {path}: it stores no experiment config (it was not written by spikeloom train)")
    base = TrainConfig.from_dict(stored, where=f"checkpoint {path}: config")
    changes = {}
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")
        if key not in TrainConfig.keys():
            raise ValueError(f"unknown setting {key!r}; allowed: {list(TrainConfig.keys())}")
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
