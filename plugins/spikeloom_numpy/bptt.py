"""Hand-written BPTT through the SPEC §3 dynamics (the reference gradient).

Forward: the reference time loop, storing every state ``[T, B, N]``.  Backward, from ``t = T-1``
down to 0, with adjoints ``gX = dloss/dX`` (all of one step depend only on later steps, since every
connection has ``delay >= 1``).  For a spiking population, with ``R`` the reset
(``Vr = V - v_thresh z`` or ``V (1 - z)``) and ``psi`` the surrogate (0 while refractory)::

    gz    = dreg/dz[t] + sum_out W gh_target[t + d] + ga[t+1]            (a[t+1] = rho a[t] + z[t])
    gVr   = alpha_mem gV[t+1]
    gz   += gVr dR/dz                                   (only without detach_reset)
    gV[t] = gVr dR/dV + gz psi                          (dR/dV = 1, or 1 - z for the zero reset)
    ga[t] = -beta psi gz + rho ga[t+1]
    gI[t] = g gV[t] + alpha_syn gI[t+1] = gh[t]

and for the LI readout ``gV[t] = dloss/dY[t] + alpha_mem gV[t+1]``.  Weight gradients are
``sum_t s_src[t - d]^T gh_target[t]`` masked to existing synapses; trained decay factors get
``sum gV[t] (Vr[t-1] - [scale_input] I_in[t])`` and ``sum gI[t] I[t-1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout, rate_regularizer, readout_loss
from spikeloom.rules import BPTT

from .simulate import Simulator

__all__ = ["bptt_loss_and_grads"]


@dataclass
class _Adjoint:
    gV_all: np.ndarray  # dloss/dV[t], [T, B, N]
    gI_all: np.ndarray  # dloss/dI[t] = dloss/dh[t], [T, B, N]
    ga: np.ndarray  # dloss/da[t + 1] while stepping backwards, [B, N]


def _shifted(prev: np.ndarray) -> np.ndarray:
    """``X[t-1]`` for every t (zero at t = 0) from ``X`` ``[T, B, N]``."""
    out = np.zeros_like(prev)
    out[1:] = prev[:-1]
    return out


def bptt_loss_and_grads(
    built: BuiltNetwork,
    params: dict[str, np.ndarray],
    dtype,
    rule: BPTT,
    readout: Readout,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spike_fn=None,
):
    """``(loss, grads by trainable name, predictions)`` for one batch (``spike_fn``: see
    :func:`~spikeloom_numpy.dynamics.neuron_step`)."""
    sim = Simulator(built, params, dtype, spike_fn)
    record = {}
    for p in built.neuron_populations:
        record[p.name] = (
            ("V", "I") if p.kind == "LI" else ("V", "I", "z", "refractory") + (("a",) if p.kind == "ALIF" else ())
        )
    rec = sim.run(inputs, record)
    T, B = next(iter(inputs.values())).shape[:2]
    dt = np.dtype(dtype)

    loss, dY, pred = readout_loss(rec[readout.population]["V"], labels, readout)
    spiking = {p.name: rec[p.name]["z"] for p in built.neuron_populations if p.spiking}
    reg, dreg = rate_regularizer(spiking, built.dt, readout.c_reg, readout.target_rate)
    loss += reg

    spikes = {**inputs, **spiking}
    # gV_all/gI_all: adjoints of V and I at every step (gI is also dloss/dh); ga: of a[t+1]
    adj = {
        p.name: _Adjoint(np.zeros((T, B, p.n), dtype=dt), np.zeros((T, B, p.n), dtype=dt), np.zeros((B, p.n), dtype=dt))
        for p in built.neuron_populations
    }
    grads: dict[str, np.ndarray] = {}
    trainable = set(built.trainable_names())

    for t in range(T - 1, -1, -1):
        for pop in built.neuron_populations:
            name, p, r, st = pop.name, sim.pops[pop.name], rec[pop.name], adj[pop.name]
            gV_next = st.gV_all[t + 1] if t + 1 < T else 0.0
            gI_next = st.gI_all[t + 1] if t + 1 < T else 0.0
            if pop.kind == "LI":
                gV = p.alpha_mem * gV_next
                if name == readout.population:
                    gV = gV + dY[t]
            else:
                gz = np.zeros((B, pop.n), dtype=dt) if dreg[name] is None else dreg[name][t].copy()
                for c in built.outgoing(name):
                    if t + c.delay < T:
                        gz += adj[c.target].gI_all[t + c.delay] @ sim.weights[c.name].T
                V, z = r["V"][t], r["z"][t]
                theta = p.v_thresh
                if pop.kind == "ALIF":
                    gz += st.ga
                    theta = p.v_thresh + p.beta * r["a"][t]
                psi = rule.surrogate(V - theta, p.v_thresh) * (1 - r["refractory"][t])
                gVr = p.alpha_mem * gV_next
                dR_dV = 1.0 if pop.reset == "subtract" else 1 - z
                if not rule.detach_reset:
                    gz = gz + gVr * (-p.v_thresh if pop.reset == "subtract" else -V)
                gV = gVr * dR_dV + gz * psi
                if pop.kind == "ALIF":
                    st.ga = -p.beta * psi * gz + p.rho * st.ga
            st.gV_all[t] = gV
            st.gI_all[t] = p.g * gV + p.alpha_syn * gI_next

    for c in built.connections:
        key = f"{c.name}.weight"
        if key not in trainable:
            continue
        src, tgt = spikes[c.source], adj[c.target].gI_all
        g = (
            np.tensordot(src[: T - c.delay], tgt[c.delay :], axes=([0, 1], [0, 1]))
            if c.delay < T
            else np.zeros(c.mask.shape)
        )
        grads[key] = (g * c.mask).astype(dt)
    for pop in built.neuron_populations:
        p, r, st = sim.pops[pop.name], rec[pop.name], adj[pop.name]
        if pop.kind == "LI":
            grads[f"{pop.name}.bias"] = (p.g * st.gV_all.sum(axis=(0, 1))).astype(dt)
            drive = r["I"] + p.bias
        else:
            drive = r["I"]
        if pop.train_tau_mem:
            if pop.kind == "LI":
                v_prev = _shifted(r["V"])
            elif pop.reset == "subtract":
                v_prev = _shifted(r["V"] - p.v_thresh * r["z"])
            else:
                v_prev = _shifted(r["V"] * (1 - r["z"]))
            dV_dalpha = v_prev - drive if pop.scale_input else v_prev
            grads[f"{pop.name}.alpha_mem"] = np.sum(st.gV_all * dV_dalpha, axis=(0, 1)).astype(dt)
        if pop.train_tau_syn:
            grads[f"{pop.name}.alpha_syn"] = np.sum(st.gI_all * _shifted(r["I"]), axis=(0, 1)).astype(dt)
    return loss, {k: grads[k] for k in built.trainable_names()}, pred
