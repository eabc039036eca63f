"""A network materialised into NumPy float64 arrays: what every backend compiles from.

All random draws (weights, connectivity, distributed parameters) happen here, in the core, from
the network's seed, so the same network is bit-identical on every backend at step 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs
import numpy as np

from .distributions import rng_for
from .parameters import materialize

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

__all__ = ["BuiltPopulation", "BuiltConnection", "BuiltNetwork", "build_network"]


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@attrs.frozen(eq=False)
class BuiltPopulation:
    """One population's per-neuron arrays, all of shape ``[n]`` (float64 unless noted).

    ``params`` holds the parameters in their own units (ms for times); decay factors are exact
    exponentials: ``alpha_mem = exp(-dt/tau_mem)``, ``alpha_syn = exp(-dt/tau_syn)`` (0 for a
    delta synapse), ``rho = exp(-dt/tau_adapt)``; ``n_ref`` (int64) is ``floor(refractory/dt + 0.5)``.
    """

    name: str
    kind: str
    n: int
    spiking: bool
    synapse: str
    reset: str | None
    scale_input: bool
    train_tau_mem: bool
    train_tau_syn: bool
    params: Mapping[str, np.ndarray]
    alpha_mem: np.ndarray | None
    alpha_syn: np.ndarray | None
    rho: np.ndarray | None
    n_ref: np.ndarray | None

    @property
    def is_input(self) -> bool:
        return self.kind == "SpikeInput"


@attrs.frozen(eq=False)
class BuiltConnection:
    """One connection: ``mask`` (bool ``[N_pre, N_post]``) marks the existing synapses and ``weight``
    (``[N_pre, N_post]``) is zero outside it; ``delay`` in steps."""

    name: str
    source: str
    target: str
    delay: int
    trainable: bool
    mask: np.ndarray
    weight: np.ndarray

    @property
    def dense(self) -> bool:
        """True when every (pre, post) pair is a synapse."""
        return bool(self.mask.all())

    @property
    def n_synapses(self) -> int:
        return int(self.mask.sum())


@attrs.frozen(eq=False)
class BuiltNetwork:
    """The materialised network: populations in declaration order, connections, ``dt`` in ms."""

    network: Network
    dt: float
    populations: Mapping[str, BuiltPopulation]
    connections: tuple[BuiltConnection, ...]

    def incoming(self, target: str) -> tuple[BuiltConnection, ...]:
        return tuple(c for c in self.connections if c.target == target)

    def outgoing(self, source: str) -> tuple[BuiltConnection, ...]:
        return tuple(c for c in self.connections if c.source == source)

    @property
    def inputs(self) -> tuple[BuiltPopulation, ...]:
        return tuple(p for p in self.populations.values() if p.is_input)

    @property
    def neuron_populations(self) -> tuple[BuiltPopulation, ...]:
        """The populations that are updated every step (everything but inputs)."""
        return tuple(p for p in self.populations.values() if not p.is_input)

    def initial_params(self) -> dict[str, np.ndarray]:
        """Parameters by stable name, as fresh float64 arrays (see :func:`param_names`)."""
        out: dict[str, np.ndarray] = {}
        for c in self.connections:
            out[f"{c.name}.weight"] = c.weight.copy()
        for p in self.neuron_populations:
            if p.kind == "LI":
                out[f"{p.name}.bias"] = p.params["bias"].copy()
            if p.train_tau_mem:
                out[f"{p.name}.alpha_mem"] = p.alpha_mem.copy()
            if p.train_tau_syn:
                out[f"{p.name}.alpha_syn"] = p.alpha_syn.copy()
        return out

    def trainable_names(self) -> tuple[str, ...]:
        """Names of the parameters a learning rule updates."""
        names = [f"{c.name}.weight" for c in self.connections if c.trainable]
        for p in self.neuron_populations:
            if p.kind == "LI":
                names.append(f"{p.name}.bias")
            if p.train_tau_mem:
                names.append(f"{p.name}.alpha_mem")
            if p.train_tau_syn:
                names.append(f"{p.name}.alpha_syn")
        return tuple(names)


def _bounds_check(pop, field: str, values: np.ndarray) -> None:
    meta = attrs.fields_dict(type(pop))[field].metadata
    lower, strict = meta["lower"], meta["strict"]
    bad = values <= lower if strict else values < lower
    if not np.all(np.isfinite(values)) or np.any(bad):
        rel = ">" if strict else ">="
        raise ValueError(
            f"{pop.kind} {pop.name!r}: {field} drawn from {getattr(pop, field)!r} has "
            f"{int(np.sum(bad | ~np.isfinite(values)))} values that are not {rel} {lower:g}; "
            "use a positive distribution (Gamma) or a narrower one"
        )


def _build_population(pop, dt: float, seed: int) -> BuiltPopulation:
    params: dict[str, np.ndarray] = {}
    for field in pop.param_fields:
        key = f"population/{pop.name}/{field}"
        values = materialize(getattr(pop, field), pop.n, lambda key=key: rng_for(seed, key), f"{pop.name}.{field}")
        if field != "bias" and not (field == "tau_syn" and pop.synapse == "delta"):
            _bounds_check(pop, field, values)
        params[field] = _readonly(values)
    alpha_mem = alpha_syn = rho = n_ref = None
    if pop.kind != "SpikeInput":
        alpha_mem = _readonly(np.exp(-dt / params["tau_mem"]))
        if pop.synapse == "delta":
            alpha_syn = _readonly(np.zeros(pop.n))
        else:
            alpha_syn = _readonly(np.exp(-dt / params["tau_syn"]))
    if "tau_adapt" in params:
        rho = _readonly(np.exp(-dt / params["tau_adapt"]))
    if "refractory" in params:
        steps = np.floor(params["refractory"] / dt + 0.5)
        if np.any(steps > 2**31):
            raise ValueError(
                f"{pop.kind} {pop.name!r}: refractory is longer than 2**31 steps of dt={dt} ms; give a shorter period"
            )
        n_ref = _readonly(steps.astype(np.int64))
    return BuiltPopulation(
        name=pop.name,
        kind=pop.kind,
        n=pop.n,
        spiking=pop.spiking,
        synapse=pop.synapse if pop.kind != "SpikeInput" else "none",
        reset=getattr(pop, "reset", None),
        scale_input=bool(getattr(pop, "scale_input", False)),
        train_tau_mem=bool(getattr(pop, "train_tau_mem", False)),
        train_tau_syn=bool(getattr(pop, "train_tau_syn", False)),
        params=MappingProxyType(params),
        alpha_mem=alpha_mem,
        alpha_syn=alpha_syn,
        rho=rho,
        n_ref=n_ref,
    )


def _build_connection(conn, n_pre: int, n_post: int, seed: int) -> BuiltConnection:
    from .connectivity import Explicit
    from .distributions import Distribution
    from .initializers import Initializer

    where = f"Connection {conn.name!r}"
    mask = conn.connectivity.mask(n_pre, n_post, lambda: rng_for(seed, f"connection/{conn.name}/connectivity"), where)
    if conn.recurrent and not conn.allow_self:
        if isinstance(conn.connectivity, Explicit) and np.any(conn.connectivity.pre == conn.connectivity.post):
            raise ValueError(
                f"{where}: Explicit connectivity of a recurrent connection lists self-synapses (pre == post); "
                "remove them or set allow_self=True"
            )
        np.fill_diagonal(mask, False)
    n_syn = int(mask.sum())
    weight = np.zeros((n_pre, n_post))
    w = conn.weight
    if isinstance(w, (Distribution, Initializer)):
        rng = rng_for(seed, f"connection/{conn.name}/weight")
        if isinstance(w, Initializer):
            values = w.sample(rng, n_syn, fan_in=n_syn / n_post)
        else:
            values = w.sample(rng, n_syn)
        weight[mask] = values
    elif isinstance(w, np.ndarray):
        if w.ndim == 1:
            if w.shape != (conn.connectivity.pre.size,):
                raise ValueError(
                    f"{where}: a 1-d weight array needs one value per Explicit synapse "
                    f"({conn.connectivity.pre.size}), got {w.shape[0]}"
                )
            weight[conn.connectivity.pre, conn.connectivity.post] = w
        else:
            if w.shape != (n_pre, n_post):
                raise ValueError(
                    f"{where}: weight array must have shape [N_pre, N_post] = {[n_pre, n_post]}, got {list(w.shape)}"
                )
            if np.any(w[~mask] != 0):
                raise ValueError(
                    f"{where}: weight array has non-zero entries where the connectivity has no synapse "
                    "(self-synapses of a recurrent connection are excluded unless allow_self=True); zero them"
                )
            weight[:] = w
    else:
        weight[mask] = float(w)
    return BuiltConnection(
        name=conn.name,
        source=conn.source,
        target=conn.target,
        delay=conn.delay,
        trainable=conn.trainable,
        mask=_readonly(mask),
        weight=_readonly(weight),
    )


def build_network(network: Network) -> BuiltNetwork:
    pops = {p.name: _build_population(p, network.dt, network.seed) for p in network.populations}
    conns = tuple(_build_connection(c, pops[c.source].n, pops[c.target].n, network.seed) for c in network.connections)
    return BuiltNetwork(network=network, dt=network.dt, populations=MappingProxyType(pops), connections=conns)
