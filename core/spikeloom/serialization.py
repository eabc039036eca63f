"""Exact round trip of a :class:`~spikeloom.network.Network` to a JSON-compatible dict (no pickle).

Arrays are stored as ``{"dtype", "shape", "data"}`` with Python's shortest float repr, which
reads back to the same float64 bits.
"""

from __future__ import annotations

import attrs
import numpy as np

from .connections import Connection
from .connectivity import connectivity_from_dict
from .distributions import Distribution
from .initializers import INITIALIZERS, Initializer
from .parameters import array_to_json, param_from_json, param_to_json
from .populations import POPULATION_KINDS

__all__ = ["network_to_dict", "network_from_dict", "FORMAT", "VERSION"]

FORMAT = "spikeloom.network"
VERSION = 1


def _population_to_dict(pop) -> dict:
    out = {"kind": pop.kind}
    for f in attrs.fields(type(pop)):
        v = getattr(pop, f.name)
        out[f.name] = param_to_json(v) if f.name in pop.param_fields else v
    return out


def _weight_to_json(w):
    if isinstance(w, (Distribution, Initializer)):
        return w.to_dict()
    if isinstance(w, np.ndarray):
        return {"array": array_to_json(w)}
    return w


def _weight_from_json(obj, where):
    if isinstance(obj, dict) and "initializer" in obj:
        kind = obj["initializer"]
        if kind not in INITIALIZERS:
            raise ValueError(f"{where}: unknown initializer {kind!r}; choose one of {sorted(INITIALIZERS)}")
        try:
            return INITIALIZERS[kind](**{k: v for k, v in obj.items() if k != "initializer"})
        except TypeError as exc:
            raise ValueError(f"{where}: bad arguments for {kind}: {exc}") from None
    return param_from_json(obj, where)


def _connection_to_dict(c: Connection) -> dict:
    return {
        "name": c.name,
        "source": c.source,
        "target": c.target,
        "weight": _weight_to_json(c.weight),
        "connectivity": c.connectivity.to_dict(),
        "delay": c.delay,
        "trainable": c.trainable,
        "allow_self": c.allow_self,
    }


def network_to_dict(network) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "dt": network.dt,
        "seed": network.seed,
        "populations": [_population_to_dict(p) for p in network.populations],
        "connections": [_connection_to_dict(c) for c in network.connections],
    }


def check_keys(obj, allowed: set[str], required: set[str], where: str) -> None:
    """``ValueError`` naming ``where`` unless ``obj`` is a dict with only allowed and all required keys."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")


def _population_from_dict(obj, i: int):
    where = f"populations[{i}]"
    if not isinstance(obj, dict) or obj.get("kind") not in POPULATION_KINDS:
        raise ValueError(f"{where}: 'kind' must be one of {sorted(POPULATION_KINDS)}, got {obj!r:.80}")
    cls = POPULATION_KINDS[obj["kind"]]
    fields = {f.name for f in attrs.fields(cls)}
    check_keys(obj, fields | {"kind"}, {"kind", "name", "n"}, where)
    kwargs = {k: v for k, v in obj.items() if k != "kind"}
    for f in cls.param_fields:
        if f in kwargs:
            kwargs[f] = param_from_json(kwargs[f], f"{where}.{f}")
    name, n = kwargs.pop("name"), kwargs.pop("n")
    return cls(name, n, **kwargs)


def _connection_from_dict(obj, i: int) -> Connection:
    where = f"connections[{i}]"
    allowed = {"name", "source", "target", "weight", "connectivity", "delay", "trainable", "allow_self"}
    check_keys(obj, allowed, {"source", "target"}, where)
    kwargs = dict(obj)
    if "weight" in kwargs:
        kwargs["weight"] = _weight_from_json(kwargs["weight"], f"{where}.weight")
    if "connectivity" in kwargs:
        kwargs["connectivity"] = connectivity_from_dict(kwargs["connectivity"], f"{where}.connectivity")
    return Connection(kwargs.pop("source"), kwargs.pop("target"), **kwargs)


def network_from_dict(data) -> Network:  # noqa: F821
    from .network import Network

    check_keys(
        data,
        {"format", "version", "dt", "seed", "populations", "connections"},
        {"format", "version", "populations"},
        "network",
    )
    if data["format"] != FORMAT:
        raise ValueError(f"network: 'format' must be {FORMAT!r}, got {data['format']!r}")
    if data["version"] != VERSION:
        raise ValueError(
            f"network: format version {data['version']!r} is not supported (this spikeloom reads {VERSION})"
        )
    if not isinstance(data["populations"], list) or not isinstance(data.get("connections", []), list):
        raise ValueError("network: 'populations' and 'connections' must be lists")
    pops = [_population_from_dict(p, i) for i, p in enumerate(data["populations"])]
    conns = [_connection_from_dict(c, i) for i, c in enumerate(data.get("connections", []))]
    kwargs = {k: data[k] for k in ("dt", "seed") if k in data}
    return Network(pops, conns, **kwargs)
