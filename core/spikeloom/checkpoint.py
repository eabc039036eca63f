"""Training checkpoints: one directory, no pickle.

Layout of a checkpoint directory::

    params.safetensors      every parameter by stable name (the compiled dtype)
    optimizer.safetensors   the optimiser's moments, "m/<param>" and "v/<param>" (may be empty)
    network.json            Network.to_dict()
    state.json              format and version, completed epochs, history, rule and readout
                            (their to_dict), optimiser scalars, shuffling RNG state, trainer
                            settings, data-set shape and free-form "extra"

Writing goes to a temporary sibling directory that then replaces the old one, so an interrupted
write never leaves a half checkpoint behind.  :func:`load_checkpoint` validates everything and
raises ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from .network import Network
from .optim import Adam
from .readout import Readout
from .rules import BPTT, EProp, check_rule, rule_from_dict
from .serialization import check_keys

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "FORMAT",
    "VERSION",
    "FILES",
    "readout_from_dict",
    "check_same_network",
    "to_jsonable",
]

FORMAT = "spikeloom.checkpoint"
VERSION = 1
PARAMS_FILE = "params.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
NETWORK_FILE = "network.json"
STATE_FILE = "state.json"
FILES = (PARAMS_FILE, OPTIMIZER_FILE, NETWORK_FILE, STATE_FILE)

_STATE_KEYS = {
    "format",
    "version",
    "epoch",
    "history",
    "rule",
    "readout",
    "optimizer",
    "rng",
    "trainer",
    "data",
    "extra",
}
_REQUIRED_STATE_KEYS = {"format", "version", "epoch", "history"}


@attrs.frozen(eq=False)
class Checkpoint:
    """A loaded, validated checkpoint.

    ``params``: host arrays by name; ``optimizer``: ``(scalars, arrays)`` as
    :meth:`spikeloom.Adam.state_dict` returns them, or ``None``; ``epoch``: completed epochs;
    ``history``: one metrics dict per epoch; ``rng``: the shuffling generator's state;
    ``trainer``/``data``/``extra``: dicts (empty when not stored).
    """

    directory: Path
    network: Network
    params: dict[str, np.ndarray]
    optimizer: tuple[dict, dict[str, np.ndarray]] | None
    epoch: int
    history: list[dict]
    rule: BPTT | EProp | None
    readout: Readout | None
    rng: dict | None
    trainer: dict
    data: dict
    extra: dict


def readout_from_dict(obj, where: str = "readout") -> Readout:
    """The :class:`Readout` that ``Readout.to_dict()`` described (``ValueError`` naming ``where``)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, got {type(obj).__name__}")
    allowed = {f.name for f in attrs.fields(Readout)}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {sorted(allowed)}")
    if "population" not in obj:
        raise ValueError(f"{where}: missing key 'population'")
    try:
        return Readout(**obj)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def to_jsonable(value):
    """Non-finite floats become ``None`` (JSON has no NaN); tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return to_jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _host_arrays(arrays: Mapping[str, object], what: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in arrays.items():
        arr = np.ascontiguousarray(np.asarray(value))
        if arr.dtype.kind != "f":
            raise ValueError(f"{what}[{name!r}]: expected a floating-point array, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}[{name!r}]: contains NaN or inf; refusing to write a checkpoint of it")
        out[name] = arr
    return out


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    network: Network,
    params: Mapping[str, object],
    optimizer: Adam | tuple[dict, Mapping[str, object]] | None = None,
    epoch: int = 0,
    history: list[dict] | tuple = (),
    rule=None,
    readout: Readout | None = None,
    rng: dict | None = None,
    trainer: dict | None = None,
    data: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint directory (replacing any previous one there) and return its path.

    ``params`` are host arrays by name (``Compiled.get_params()``); ``optimizer`` an
    :class:`~spikeloom.Adam` or its ``state_dict()``; ``rng`` a NumPy bit-generator state.
    """
    from safetensors.numpy import save_file

    if not isinstance(network, Network):
        raise ValueError(f"save_checkpoint: network must be a spikeloom.Network, got {type(network).__name__}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"save_checkpoint: epoch must be an integer >= 0, got {epoch!r}")
    param_arrays = _host_arrays(params, "params")
    if isinstance(optimizer, Adam):
        optimizer = optimizer.state_dict()
    if optimizer is None:
        opt_scalars, opt_arrays = None, {}
    else:
        opt_scalars, raw = optimizer
        opt_arrays = _host_arrays(raw, "optimizer")
    state = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": epoch,
        "history": to_jsonable(list(history)),
        "rule": None if rule is None else rule.to_dict(),
        "readout": None if readout is None else to_jsonable(readout.to_dict()),
        "optimizer": None if opt_scalars is None else {"kind": "Adam", "scalars": to_jsonable(opt_scalars)},
        "rng": to_jsonable(rng),
        "trainer": to_jsonable(trainer or {}),
        "data": to_jsonable(data or {}),
        "extra": to_jsonable(extra or {}),
    }
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(param_arrays, str(tmp / PARAMS_FILE))
        save_file(opt_arrays, str(tmp / OPTIMIZER_FILE))
        with open(tmp / NETWORK_FILE, "w", encoding="utf-8") as f:
            json.dump(network.to_dict(), f, indent=1, allow_nan=False)
            f.write("\n")
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, allow_nan=False)
            f.write("\n")
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


# -- loading ------------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"checkpoint {path.parent}: {path.name} is not valid JSON ({exc})") from None


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for malformed files
        raise ValueError(f"checkpoint {path.parent}: {path.name} is not a valid safetensors file ({exc})") from None


def _first_difference(a, b, path: str = "") -> str | None:
    """Where two JSON-like values first differ (``"populations[1].n"``), or ``None``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}" if path else str(key)
            diff = _first_difference(a[key], b[key], f"{path}.{key}" if path else str(key))
            if diff is not None:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = _first_difference(x, y, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    return None if a == b and type(a) is type(b) else (path or "<root>")


def check_same_network(where: str, stored: Network, network: Network) -> None:
    """``ValueError`` naming the first difference when ``network`` is not the ``stored`` one."""
    a = json.loads(json.dumps(stored.to_dict()))
    b = json.loads(json.dumps(network.to_dict()))
    diff = _first_difference(a, b)
    if diff is not None:
        raise ValueError(f"{where}: the checkpoint is from another network (they differ at {diff})")


def _check_params(where: str, params: dict[str, np.ndarray], expected: Mapping[str, np.ndarray]) -> None:
    unknown = sorted(set(params) - set(expected))
    if unknown:
        raise ValueError(f"{where}: unknown parameter names {unknown}; the network has {sorted(expected)}")
    missing = sorted(set(expected) - set(params))
    if missing:
        raise ValueError(f"{where}: missing parameters {missing}")
    for name, arr in params.items():
        if arr.dtype.kind != "f":
            raise ValueError(f"{where}: parameter {name!r} has dtype {arr.dtype}; expected floating point")
        if arr.shape != expected[name].shape:
            raise ValueError(
                f"{where}: parameter {name!r} has shape {list(arr.shape)}, "
                f"the network expects {list(expected[name].shape)}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: parameter {name!r} contains NaN or inf")


def _check_optimizer(where: str, state_opt, arrays: dict[str, np.ndarray], params: Mapping[str, np.ndarray]):
    if state_opt is None:
        if arrays:
            raise ValueError(f"{where}: {OPTIMIZER_FILE} holds arrays but state.json has no optimizer entry")
        return None
    if (
        not isinstance(state_opt, dict)
        or state_opt.get("kind") != "Adam"
        or not isinstance(state_opt.get("scalars"), dict)
    ):
        raise ValueError(
            f"{where}: state.json 'optimizer' must be {{'kind': 'Adam', 'scalars': {{...}}}}, got {state_opt!r:.80}"
        )
    for key, arr in arrays.items():
        kind, _, name = key.partition("/")
        if kind not in ("m", "v") or name not in params:
            raise ValueError(
                f"{where}: {OPTIMIZER_FILE} has an unexpected array {key!r}; expected 'm/<param>' or 'v/<param>' "
                f"for a parameter of the network"
            )
        if arr.shape != params[name].shape:
            raise ValueError(
                f"{where}: optimizer array {key!r} has shape {list(arr.shape)}, "
                f"the parameter has {list(params[name].shape)}"
            )
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: optimizer array {key!r} is not a finite floating-point array")
    scalars = state_opt["scalars"]
    try:  # Adam validates its own hyper-parameters and moment names
        Adam().load_state_dict(scalars, arrays)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return dict(scalars), dict(arrays)


def load_checkpoint(directory: str | os.PathLike, *, network: Network | None = None) -> Checkpoint:
    """Read and validate a checkpoint directory.

    With ``network``, the checkpoint must have been written for an equal network (same
    ``to_dict()``); otherwise ``ValueError`` names the first difference.
    """
    directory = Path(directory)
    where = f"checkpoint {directory}"
    if not directory.is_dir():
        raise ValueError(f"{where}: not a directory")
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise ValueError(f"{where}: missing files {missing}; a checkpoint holds {list(FILES)}")
    state = _read_json(directory / STATE_FILE)
    check_keys(state, _STATE_KEYS, _REQUIRED_STATE_KEYS, f"{where}: state.json")
    if state["format"] != FORMAT:
        raise ValueError(f"{where}: state.json 'format' must be {FORMAT!r}, got {state['format']!r}")
    if state["version"] != VERSION:
        raise ValueError(
            f"{where}: format version {state['version']!r} is not supported (this spikeloom reads {VERSION})"
        )
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{where}: state.json 'epoch' must be an integer >= 0, got {epoch!r}")
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError(f"{where}: state.json 'history' must be a list of dicts")
    for key in ("rng", "trainer", "data", "extra"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise ValueError(f"{where}: state.json {key!r} must be an object, got {type(state[key]).__name__}")

    net_dict = _read_json(directory / NETWORK_FILE)
    try:
        ckpt_net = Network.from_dict(net_dict)
    except ValueError as exc:
        raise ValueError(f"{where}: network.json: {exc}") from None
    if network is not None:
        check_same_network(where, ckpt_net, network)

    try:
        rule = None if state.get("rule") is None else rule_from_dict(state["rule"])
        readout = None if state.get("readout") is None else readout_from_dict(state["readout"])
        if rule is not None or readout is not None:
            check_rule(ckpt_net.built, rule, readout)
    except ValueError as exc:
        raise ValueError(f"{where}: state.json: {exc}") from None

    params = _read_safetensors(directory / PARAMS_FILE)
    expected = ckpt_net.built.initial_params()
    _check_params(where, params, expected)
    opt_arrays = _read_safetensors(directory / OPTIMIZER_FILE)
    optimizer = _check_optimizer(where, state.get("optimizer"), opt_arrays, expected)
    return Checkpoint(
        directory=directory,
        network=ckpt_net,
        params=params,
        optimizer=optimizer,
        epoch=epoch,
        history=history,
        rule=rule,
        readout=readout,
        rng=state.get("rng"),
        trainer=state.get("trainer") or {},
        data=state.get("data") or {},
        extra=state.get("extra") or {},
    )
