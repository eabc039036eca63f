"""Validation of what users hand to a compiled network: input spikes, record requests, parameters.

It lives in the core so that every backend rejects bad input the same way, before any work.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .built import BuiltNetwork

#: input dtypes that ``prepare_inputs(..., compact=True)`` passes through unconverted
COMPACT_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8))

__all__ = ["COMPACT_DTYPES", "prepare_inputs", "normalize_record", "validate_params", "zero_state", "validate_state"]


def prepare_inputs(built: BuiltNetwork, x, dtype, compact: bool = False) -> dict[str, np.ndarray]:
    """Check spikes ``x`` and return ``{input name: array [T, B, N] of dtype}``.

    ``x`` is an array ``[T, B, N]`` when the network has one ``SpikeInput``, else a mapping from
    every input's name to its array.  Entries may be bool, integer or float spike counts
    (finite, >= 0); all inputs must share ``T`` and ``B``.  With ``compact``, bool and uint8
    arrays are returned as given (a backend that converts them itself then avoids a host copy
    four or eight times larger); every other array is converted to ``dtype``.
    """
    inputs = {p.name: p for p in built.inputs}
    if not inputs:
        raise ValueError("the network has no SpikeInput population; add one to drive it")
    if isinstance(x, Mapping):
        given = dict(x)
        missing = sorted(set(inputs) - set(given))
        unknown = sorted(set(given) - set(inputs), key=repr)
        if unknown:
            raise ValueError(f"x: unknown input populations {unknown}; the network's inputs are {sorted(inputs)}")
        if missing:
            raise ValueError(f"x: no spikes given for input populations {missing}")
    else:
        if len(inputs) != 1:
            raise ValueError(
                f"x: the network has {len(inputs)} inputs {sorted(inputs)}; pass a dict name -> [T, B, N] array"
            )
        given = {next(iter(inputs)): x}
    out: dict[str, np.ndarray] = {}
    tb = None
    for name, value in given.items():
        where = f"x[{name!r}]"
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: cannot be read as an array [T, B, N] ({exc})") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{where}: spikes must be bool, integer or float counts, got dtype {arr.dtype}")
        if arr.ndim != 3:
            raise ValueError(f"{where}: expected shape [T, B, N] (time-major), got {arr.ndim}-d shape {arr.shape}")
        n = inputs[name].n
        if arr.shape[2] != n:
            raise ValueError(f"{where}: expected N={n} input channels in the last axis, got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"{where}: needs at least one step and one batch element, got shape {arr.shape}")
        if tb is None:
            tb = arr.shape[:2]
        elif arr.shape[:2] != tb:
            raise ValueError(f"{where}: [T, B] = {list(arr.shape[:2])} differs from the other inputs' {list(tb)}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: contains NaN or inf; spike counts must be finite")
        if arr.dtype.kind in "if" and arr.size and arr.min() < 0:
            raise ValueError(f"{where}: contains negative values; spikes are counts >= 0")
        out[name] = arr if compact and arr.dtype in COMPACT_DTYPES else arr.astype(dtype, copy=False)
    return out


def normalize_record(built: BuiltNetwork, record) -> dict[str, tuple[str, ...]]:
    """Turn a record request into ``{population: (state variables...)}``.

    ``None`` records every state variable of every non-input population; a name or a list of names
    records all variables of those; a mapping names the variables (``"V"``, ``"I"``, ``"a"``, ``"z"``).
    """
    kinds = {p.name: type(built.network.population(p.name)) for p in built.neuron_populations}
    if record is None:
        return {name: cls.state_vars for name, cls in kinds.items()}
    if isinstance(record, str):
        record = [record]
    try:
        if isinstance(record, Mapping):
            items = {k: (tuple([v]) if isinstance(v, str) else tuple(v)) for k, v in record.items()}
        else:
            items = {k: None for k in record}
    except TypeError:
        raise ValueError(
            f"record: expected None, a population name, a list of names or a dict name -> variables, got {record!r:.80}"
        ) from None
    out = {}
    for name, vars_ in items.items():
        if name not in kinds:
            inputs = [p.name for p in built.inputs]
            hint = " (inputs are not recorded: they are what you pass in)" if name in inputs else ""
            raise ValueError(f"record: unknown population {name!r}{hint}; choose from {sorted(kinds)}")
        allowed = kinds[name].state_vars
        if vars_ is None:
            vars_ = allowed
        bad = [v for v in vars_ if v not in allowed]
        if bad:
            raise ValueError(f"record[{name!r}]: unknown state variables {bad}; {kinds[name].kind} has {list(allowed)}")
        out[name] = tuple(dict.fromkeys(vars_))
    return out


def validate_params(
    built: BuiltNetwork, params: Mapping[str, object], current: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Check new parameter values by name against the current ones; return float64 copies."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params: expected a dict name -> array, got {type(params).__name__}")
    masks = {f"{c.name}.weight": c.mask for c in built.connections}
    out = {}
    for name, value in params.items():
        if name not in current:
            raise ValueError(f"params: unknown parameter {name!r}; known parameters are {sorted(current)}")
        try:
            raw = np.asarray(value)
        except (TypeError, ValueError):
            raise ValueError(f"params[{name!r}]: not a numeric array") from None
        if raw.dtype.kind not in "biuf":
            raise ValueError(f"params[{name!r}]: not a numeric array (dtype {raw.dtype})")
        arr = np.array(raw, dtype=np.float64)
        if arr.shape != current[name].shape:
            raise ValueError(f"params[{name!r}]: expected shape {list(current[name].shape)}, got {list(arr.shape)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"params[{name!r}]: contains NaN or inf")
        if name in masks and np.any(arr[~masks[name]] != 0):
            raise ValueError(f"params[{name!r}]: non-zero weights where the connection has no synapse; keep them 0")
        if name.endswith((".alpha_mem", ".alpha_syn")) and np.any((arr <= 0) | (arr >= 1)):
            raise ValueError(f"params[{name!r}]: decay factors must lie in (0, 1)")
        out[name] = arr
    return out


def _state_layout(built: BuiltNetwork) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """Variables of each population's state (name -> dtype kind) and the history depth per source."""
    pops = {}
    for p in built.neuron_populations:
        v = {"V": "f", "I": "f"}
        if p.kind == "ALIF":
            v["a"] = "f"
        if p.spiking:
            v.update(z="f", ref="i")
        pops[p.name] = v
    depth: dict[str, int] = {}
    for c in built.connections:
        depth[c.source] = max(depth.get(c.source, 0), c.delay)
    return pops, depth


def zero_state(built: BuiltNetwork, batch: int, dtype) -> dict:
    """The all-zero state of ``built`` for ``batch`` examples (layout: ``Compiled.step``)."""
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    pops, depth = _state_layout(built)
    n = {name: p.n for name, p in built.populations.items()}
    return {
        "populations": {
            name: {v: np.zeros((batch, n[name]), dtype=np.int64 if k == "i" else dtype) for v, k in vars_.items()}
            for name, vars_ in pops.items()
        },
        "history": {src: np.zeros((d, batch, n[src]), dtype=dtype) for src, d in depth.items()},
    }


def validate_state(built: BuiltNetwork, state, dtype) -> dict:
    """Check a state against the network's layout; return copies in ``dtype`` (``ref`` as int64)."""
    pops, depth = _state_layout(built)
    if not isinstance(state, Mapping) or set(state) != {"populations", "history"}:
        raise ValueError("state must be a dict with keys 'populations' and 'history' (see Compiled.zero_state)")
    given_pops, given_hist = state["populations"], state["history"]
    if not isinstance(given_pops, Mapping) or set(given_pops) != set(pops):
        raise ValueError(f"state['populations'] must name exactly the populations {sorted(pops)}")
    if not isinstance(given_hist, Mapping) or set(given_hist) != set(depth):
        raise ValueError(f"state['history'] must name exactly the sources {sorted(depth)}")
    batch = None
    out: dict = {"populations": {}, "history": {}}
    for name, vars_ in pops.items():
        entry = given_pops[name]
        if not isinstance(entry, Mapping) or set(entry) != set(vars_):
            raise ValueError(f"state['populations'][{name!r}] must hold exactly {sorted(vars_)}")
        out["populations"][name] = {}
        for v, kind in vars_.items():
            arr = np.asarray(entry[v])
            where = f"state['populations'][{name!r}][{v!r}]"
            if batch is None and arr.ndim == 2:
                batch = arr.shape[0]
            if arr.shape != (batch, built.populations[name].n):
                raise ValueError(
                    f"{where}: expected shape [B, N] = [{batch}, {built.populations[name].n}], got {list(arr.shape)}"
                )
            if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
                raise ValueError(f"{where}: must hold finite numbers")
            if kind == "i" and (np.any(arr < 0) or np.any(arr != np.round(arr))):
                raise ValueError(f"{where}: refractory counters must be integers >= 0")
            out["populations"][name][v] = arr.astype(np.int64 if kind == "i" else dtype)
    for src, d in depth.items():
        arr = np.asarray(given_hist[src])
        shape = (d, batch, built.populations[src].n)
        if arr.shape != shape:
            raise ValueError(
                f"state['history'][{src!r}]: expected shape [D, B, N] = {list(shape)}, got {list(arr.shape)}"
            )
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
            raise ValueError(f"state['history'][{src!r}]: must hold finite numbers")
        out["history"][src] = arr.astype(dtype)
    return out
