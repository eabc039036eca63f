"""e-prop in the reference (SPEC §6): online, forward-only, memory independent of ``T``.

For a trained population j, each trainable incoming connection c (presynaptic i, delivered
spikes ``p_i[t] = s_i[t - delay]``) keeps eligibility traces, per synapse ``[B, N_pre, N_post]``
(or per presynaptic neuron ``[B, N_pre, 1]`` where every target neuron shares the factor)::

    eps_a[t] = psi[t-1] eps_v[t-1] + (rho - psi[t-1] beta) eps_a[t-1]     (ALIF)
    eps_I[t] = alpha_syn eps_I[t-1] + p[t]
    eps_v[t] = alpha_mem (1 - z[t-1] if reset == "zero") eps_v[t-1] + g eps_I[t]
    e[t]     = psi[t] (eps_v[t] - beta eps_a[t])

``e`` is filtered like the readout filters the population's spikes (the readout connection's delay,
then its synapse and membrane decay) into ``e_bar``; the learning signal is
``L[t] = delta[t] B^T`` with ``delta[t] = dloss/dY[t]`` of the ``per_step`` loss, and
``grad W_c = sum_t sum_b L[t] e_bar[t]``.  Readout weights and bias get their exact gradient from
spikes (and a constant) filtered the same way.  The online rate regulariser adds
``c_reg (r - target dt/1000) e[t]`` every step, ``r`` a 500 ms running rate.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, feedback_matrices, trained_populations

from .simulate import Simulator

__all__ = ["eprop_loss_and_grads"]

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0


def _shared(arr: np.ndarray):
    """A scalar when every neuron has the same value (the traces can then stay per presynaptic
    neuron), else the per-neuron array (the traces become per synapse by broadcasting)."""
    return arr[0] if np.all(arr == arr[0]) else arr


def eprop_loss_and_grads(
    built: BuiltNetwork,
    params: dict[str, np.ndarray],
    dtype,
    rule: EProp,
    readout: Readout,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
):
    """``(loss, grads by trainable name, predictions)`` for one batch."""
    dt = np.dtype(dtype)
    sim = Simulator(built, params, dt)
    T, B = next(iter(inputs.values())).shape[:2]
    out_name = readout.population
    out = sim.pops[out_name]
    n_out = out.alpha_mem.shape[0]
    window = np.zeros(T, dtype=bool)
    window[readout.steps(T)] = True
    n_window = int(window.sum())
    onehot = np.zeros((B, n_out), dtype=dt)
    onehot[np.arange(B), labels] = 1

    # the readout's filter; with per-neuron readout time constants e_bar gains a readout axis
    hetero_out = not (
        np.all(out.alpha_mem == out.alpha_mem[0])
        and np.all(out.alpha_syn == out.alpha_syn[0])
        and np.all(out.g == out.g[0])
    )
    o_am, o_as, o_g = (
        (out.alpha_mem, out.alpha_syn, out.g) if hetero_out else (out.alpha_mem[0], out.alpha_syn[0], out.g[0])
    )
    # skipping "0 * x +" and "1 *" changes no bit of the result and saves work on the biggest arrays
    out_delta, out_unit_gain = bool(np.all(out.alpha_syn == 0)), bool(np.all(out.g == 1))

    def readout_filter(f, x):
        """One step of the readout's own filter on ``f = [current, membrane]`` with input ``x``."""
        f[0] = x if out_delta else o_as * f[0] + x
        f[1] = o_am * f[1] + (f[0] if out_unit_gain else o_g * f[0])

    trainable = set(built.trainable_names())
    grads = {name: np.zeros_like(np.asarray(params[name], dtype=dt)) for name in trainable}
    feedback = {k: np.asarray(v, dtype=dt) for k, v in feedback_matrices(built, rule, readout, params).items()}

    readout_conns = [c for c in built.incoming(out_name) if f"{c.name}.weight" in trainable]
    zbar = {c.name: [0.0, 0.0] for c in readout_conns}  # [filtered current, filtered membrane]
    bbar = np.zeros(n_out, dtype=dt)

    pops = {}
    for name in trained_populations(built):
        p = sim.pops[name]
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in trainable]
        to_out = [c for c in built.outgoing(name) if c.target == out_name]
        depth = max(c.delay for c in to_out)
        zero_reset = p.reset == "zero"
        pops[name] = {
            "p": p,
            "am": p.alpha_mem if zero_reset else _shared(p.alpha_mem),
            "as": _shared(p.alpha_syn),
            "g": _shared(p.g),
            "zero_reset": zero_reset,
            "to_out": to_out,
            "psi_prev": np.zeros((B, p.alpha_mem.shape[0]), dtype=dt),
            "z_prev": np.zeros((B, p.alpha_mem.shape[0]), dtype=dt),
            "rate": np.zeros((B, p.alpha_mem.shape[0]), dtype=dt),
            "traces": {
                c.name: {
                    "eps_I": 0.0,
                    "eps_v": 0.0,
                    "eps_a": 0.0,
                    "e_hist": deque([0.0] * depth, maxlen=depth),
                    "ebar": {r.name: [0.0, 0.0] for r in to_out},
                }
                for c in conns
            },
        }

    rate_decay = math.exp(-built.dt / RATE_TAU)
    rate_target = rule.target_rate * built.dt / 1000.0
    loss = 0.0
    prob_sum = np.zeros((B, n_out), dtype=dt)
    sim.start(B)
    for t in range(T):
        rec = sim.step({name: x[t] for name, x in inputs.items()})
        Y = rec[out_name]["V"]
        if window[t]:
            m = Y.max(axis=1, keepdims=True)
            e = np.exp(Y - m)
            prob = e / e.sum(axis=1, keepdims=True)
            loss -= float(np.sum(((Y - m) - np.log(e.sum(axis=1, keepdims=True))) * onehot)) / (B * n_window)
            prob_sum += prob
            delta = (prob - onehot) / (B * n_window)
        else:
            delta = None

        # readout weights and bias: exact, from presynaptic spikes and a constant filtered like Y
        bbar = o_am * bbar + o_g
        if delta is not None:
            grads[f"{out_name}.bias"] += (delta * bbar).sum(axis=0)
        for c in readout_conns:
            s = sim.delivered[c.name]
            zb = zbar[c.name]
            readout_filter(zb, s[:, :, None] if hetero_out else s)
            if delta is not None:
                spec = "bik,bk->ik" if hetero_out else "bi,bk->ik"
                grads[f"{c.name}.weight"] += np.einsum(spec, zb[1], delta)

        for name, st in pops.items():
            p, r = st["p"], rec[name]
            theta = p.v_thresh + p.beta * r["a"] if p.kind == "ALIF" else p.v_thresh
            psi = rule.surrogate(r["V"] - theta, p.v_thresh) * (1 - r["refractory"])
            if rule.c_reg:
                st["rate"] = rate_decay * st["rate"] + (1 - rate_decay) * r["z"]
            psi_prev, keep = st["psi_prev"][:, None, :], (1 - st["z_prev"])[:, None, :]
            for cname, tr in st["traces"].items():
                pre = sim.delivered[cname][:, :, None]
                if p.kind == "ALIF":
                    tr["eps_a"] = psi_prev * tr["eps_v"] + (p.rho - psi_prev * p.beta) * tr["eps_a"]
                tr["eps_I"] = st["as"] * tr["eps_I"] + pre
                decay = st["am"] * keep if st["zero_reset"] else st["am"]
                tr["eps_v"] = decay * tr["eps_v"] + st["g"] * tr["eps_I"]
                elig = tr["eps_v"] - p.beta * tr["eps_a"] if p.kind == "ALIF" else tr["eps_v"]
                e = psi[:, None, :] * elig
                if rule.c_reg:
                    grads[f"{cname}.weight"] += (
                        rule.c_reg / B * np.sum((st["rate"] - rate_target)[:, None, :] * e, axis=0)
                    )
                for rc in st["to_out"]:
                    e_d = tr["e_hist"][rc.delay - 1]  # e[t - delay]
                    eb = tr["ebar"][rc.name]
                    if np.isscalar(e_d) and np.isscalar(eb[0]):
                        continue  # no eligibility has reached the readout yet: e_bar is still 0
                    readout_filter(eb, e_d[..., None] if hetero_out else e_d)
                    if delta is not None:
                        if hetero_out:
                            grads[f"{cname}.weight"] += np.einsum("bk,jk,bijk->ij", delta, feedback[rc.name], eb[1])
                        else:
                            L = delta @ feedback[rc.name].T
                            grads[f"{cname}.weight"] += np.einsum("bj,bij->ij", L, eb[1])
                tr["e_hist"].appendleft(e)
            st["psi_prev"], st["z_prev"] = psi, r["z"]

    for c in built.connections:
        key = f"{c.name}.weight"
        if key in grads:
            grads[key] = grads[key] * c.mask
    return loss, {k: grads[k].astype(dt) for k in built.trainable_names()}, np.argmax(prob_sum, axis=1)
