"""The network graph: populations, connections, ``dt`` (ms) and the seed of every random draw."""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
from collections.abc import Iterable

import attrs

from .built import BuiltNetwork, build_network
from .connections import Connection
from .populations import LI, Population, SpikeInput

__all__ = ["Network"]


def _tuple_of(kind, field):
    def convert(value):
        if isinstance(value, (kind, str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"Network.{field} must be a list of {kind.__name__} objects, got {value!r:.80}")
        items = tuple(value)
        for item in items:
            if not isinstance(item, kind):
                raise ValueError(f"Network.{field} must hold {kind.__name__} objects, got {item!r:.80}")
        return items

    return convert


def _dt(instance, attribute, value):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Network.dt must be a finite number of ms > 0, got {value!r}")


def _seed(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"Network.seed must be an integer >= 0, got {value!r}")


def _float(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Network.dt must be a number of ms, got {value!r}")
    return float(value)


@attrs.frozen(slots=False)
class Network:
    """A spiking network: a frozen, validated value.

    ``populations`` (names unique), ``connections`` (names unique; endpoints must exist, targets
    cannot be inputs, sources cannot be ``LI`` readouts), ``dt`` in ms (default 1.0), ``seed`` for
    every random draw.  Construction materialises the network once (:attr:`built`), so an invalid
    network raises here, before any work is done.
    """

    populations: tuple[Population, ...] = attrs.field(converter=_tuple_of(Population, "populations"))
    connections: tuple[Connection, ...] = attrs.field(default=(), converter=_tuple_of(Connection, "connections"))
    dt: float = attrs.field(default=1.0, converter=_float, validator=_dt, kw_only=True)
    seed: int = attrs.field(default=0, validator=_seed, kw_only=True)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "seed", int(self.seed))
        if not self.populations:
            raise ValueError("Network.populations is empty; add at least one population")
        names = [p.name for p in self.populations]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Network.populations: duplicate population names {dup}; give each a unique name")
        cnames = [c.name for c in self.connections]
        dup = sorted({n for n in cnames if cnames.count(n) > 1})
        if dup:
            raise ValueError(
                f"Network.connections: duplicate connection names {dup}; pass name=... to tell parallel connections apart"
            )
        by_name = {p.name: p for p in self.populations}
        for c in self.connections:
            for role in ("source", "target"):
                ref = getattr(c, role)
                if ref not in by_name:
                    raise ValueError(
                        f"Connection {c.name!r}: unknown {role} population {ref!r}; known populations are {sorted(by_name)}"
                    )
            if isinstance(by_name[c.target], SpikeInput):
                raise ValueError(f"Connection {c.name!r}: target {c.target!r} is a SpikeInput, which takes no input")
            if isinstance(by_name[c.source], LI):
                raise ValueError(f"Connection {c.name!r}: source {c.source!r} is an LI readout, which never spikes")
        self.built  # noqa: B018  (materialise now so that an invalid network fails at construction)

    @functools.cached_property
    def built(self) -> BuiltNetwork:
        """The network materialised into float64 arrays (computed once)."""
        return build_network(self)

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise ValueError(f"unknown population {name!r}; known populations are {[p.name for p in self.populations]}")

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-compatible dict that :meth:`from_dict` turns back into an equal network."""
        from .serialization import network_to_dict

        return network_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Network:
        from .serialization import network_from_dict

        return network_from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the network as JSON (arrays included, exactly)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Network:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{os.fspath(path)}: not a valid network JSON file ({exc})") from None
        return cls.from_dict(data)
