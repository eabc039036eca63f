"""One step of every population, literally as SPEC §3 states it, vectorised over ``[B, N]``.

Decay factors and the input gain ``g`` are computed in float64 and then cast to the run's dtype,
so float32 runs use the correctly rounded factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeloom.built import BuiltPopulation

__all__ = ["PopParams", "PopState", "pop_params", "zero_state", "neuron_step"]


@dataclass(frozen=True)
class PopParams:
    """Per-neuron constants of one population, as arrays ``[N]`` of the run's dtype."""

    kind: str
    reset: str | None
    alpha_mem: np.ndarray
    alpha_syn: np.ndarray
    g: np.ndarray  # 1 - alpha_mem with scale_input, else 1
    v_thresh: np.ndarray | None
    rho: np.ndarray | None
    beta: np.ndarray | None
    n_ref: np.ndarray | None  # int64
    bias: np.ndarray | None


@dataclass
class PopState:
    """State of one population after a step, each ``[B, N]``: ``V`` is after the reset, ``z`` the
    spikes of this step, ``ref`` the remaining refractory steps (int64)."""

    I: np.ndarray
    V: np.ndarray
    a: np.ndarray | None = None
    z: np.ndarray | None = None
    ref: np.ndarray | None = None


def pop_params(pop: BuiltPopulation, params: dict[str, np.ndarray], dtype) -> PopParams:
    """Constants of ``pop``; trained decay factors (``"{pop}.alpha_mem"``...) come from ``params``."""
    alpha_mem = np.asarray(params.get(f"{pop.name}.alpha_mem", pop.alpha_mem), dtype=np.float64)
    alpha_syn = np.asarray(params.get(f"{pop.name}.alpha_syn", pop.alpha_syn), dtype=np.float64)
    g = 1.0 - alpha_mem if pop.scale_input else np.ones(pop.n)
    cast = lambda a: None if a is None else np.asarray(a, dtype=dtype)  # noqa: E731
    return PopParams(
        kind=pop.kind,
        reset=pop.reset,
        alpha_mem=cast(alpha_mem),
        alpha_syn=cast(alpha_syn),
        g=cast(g),
        v_thresh=cast(pop.params.get("v_thresh")),
        rho=cast(pop.rho),
        beta=cast(pop.params.get("beta")),
        n_ref=pop.n_ref,
        bias=cast(params.get(f"{pop.name}.bias")),
    )


def zero_state(p: PopParams, batch: int, dtype) -> PopState:
    n = p.alpha_mem.shape[0]
    z = lambda: np.zeros((batch, n), dtype=dtype)  # noqa: E731
    if p.kind == "LI":
        return PopState(I=z(), V=z())
    return PopState(I=z(), V=z(), a=z() if p.kind == "ALIF" else None, z=z(), ref=np.zeros((batch, n), dtype=np.int64))


def neuron_step(p: PopParams, s: PopState, h: np.ndarray, spike_fn=None) -> tuple[PopState, dict[str, np.ndarray]]:
    """Advance one population by one step given its summed input ``h`` ``[B, N]``.

    Returns the new state and the values to record this step (``V`` before the reset).
    ``spike_fn`` replaces the Heaviside step by a smooth function of ``V - theta``; it exists only
    for the gradient tests (finite differences need a differentiable forward pass).
    """
    I = p.alpha_syn * s.I + h  # noqa: E741  (delta synapse: alpha_syn = 0, so I = h exactly)
    if p.kind == "LI":
        V = p.alpha_mem * s.V + p.g * (I + p.bias)
        return PopState(I=I, V=V), {"V": V, "I": I}
    V = p.alpha_mem * s.V + p.g * I
    if p.kind == "ALIF":
        a = p.rho * s.a + s.z
        theta = p.v_thresh + p.beta * a
    else:
        a = None
        theta = p.v_thresh
    refractory = s.ref > 0
    if spike_fn is None:
        z = ((V >= theta) & ~refractory).astype(V.dtype)
    else:
        z = spike_fn(V - theta) * ~refractory
    # "refractory" is internal (the backward pass needs it); users record V, I, a, z
    rec = {"V": V, "I": I, "z": z, "refractory": refractory.astype(V.dtype)}
    if a is not None:
        rec["a"] = a
    if p.reset == "subtract":
        V_after = V - p.v_thresh * z
    else:
        V_after = V * (1 - z)
    ref = np.where(z > 0, p.n_ref, np.maximum(s.ref - 1, 0))
    return PopState(I=I, V=V_after, a=a, z=z, ref=ref), rec
