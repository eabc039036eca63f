"""e-prop on the device (SPEC §6): the reference's online algorithm, one step at a time, with the
per-synapse work of every step in one fused kernel (``eprop_synapse_step``, see ``eprop.cu``).

Per step: the network advances (:class:`~.forward.Stepper`, ring-buffered spike history), the
per-step loss and its ``delta = dloss/dY[t]`` are formed on the device, the readout's weights and
bias get their exact gradient from filtered spikes, and for every trainable connection into a
trained population the kernel updates the eligibility traces, filters ``e`` with the readout's
impulse response and accumulates the gradient.  Traces that every target neuron shares stay one
per presynaptic neuron and are updated here with array operations.  Inputs are moved to the
device one step at a time: memory does not grow with ``T``.
"""

from __future__ import annotations

import math

import numpy as np

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, feedback_matrices, trained_populations

from .bptt import surrogate_args
from .consts import PopConst
from .forward import Stepper
from .runtime import Runtime

__all__ = ["eprop_loss_and_grads", "RATE_TAU", "EP_FLAGS"]

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0

#: the flag bits of ``eprop_synapse_step`` (eprop.cu)
EP_FLAGS = {
    "update": 1,
    "write_e": 2,
    "alif": 4,
    "syn_I": 8,
    "syn_v": 16,
    "zero_reset": 32,
    "has_L": 64,
    "has_R": 128,
    "hetero": 256,
    "r_delta": 512,
    "r_unit": 1024,
    "recompute": 2048,
}


def _shared(host: np.ndarray) -> bool:
    return bool(np.all(host == host[0]))


def eprop_loss_and_grads(
    rt: Runtime,
    built: BuiltNetwork,
    pops: dict[str, PopConst],
    weights: dict,
    params: dict,
    masks: dict,
    rule: EProp,
    readout: Readout,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    mode: str = "events",
):
    """``(loss, grads by trainable name as device arrays, predictions)``; ``inputs`` stay on the host."""
    xp, dt = rt.xp, rt.dtype
    T, B = next(iter(inputs.values())).shape[:2]
    sim = Stepper(rt, built, pops, weights, B, mode)
    out_name = readout.population
    out = pops[out_name]
    n_out = out.n
    window = np.zeros(T, dtype=bool)
    window[readout.steps(T)] = True
    n_window = int(window.sum())
    hot = rt.zeros((B, n_out))
    hot[xp.arange(B), rt.asarray(labels, np.int64)] = 1

    o_am_h, o_as_h, o_g_h = rt.host(out.am), rt.host(out.as_), rt.host(out.g)
    hetero = not (_shared(o_am_h) and _shared(o_as_h) and _shared(o_g_h))
    r_delta, r_unit = bool(np.all(o_as_h == 0)), bool(np.all(o_g_h == 1))
    o_am, o_as, o_g = (out.am, out.as_, out.g) if hetero else (out.am[0], out.as_[0], out.g[0])
    # the filter constants as the kernel reads them: [K] with a readout axis, else [1]
    k_am, k_as, k_g = (out.am, out.as_, out.g) if hetero else (out.am[:1].copy(), out.as_[:1].copy(), out.g[:1].copy())
    Kf = n_out if hetero else 1

    def readout_filter(f, x):
        f[0] = x if r_delta else o_as * f[0] + x
        f[1] = o_am * f[1] + (f[0] if r_unit else o_g * f[0])

    trainable = set(built.trainable_names())
    grads = {name: xp.zeros_like(params[name]) for name in trainable}
    feedback = {
        k: rt.asarray(rt.host(v) if not isinstance(v, np.ndarray) else v)
        for k, v in feedback_matrices(built, rule, readout, params).items()
    }

    readout_conns = [c for c in built.incoming(out_name) if f"{c.name}.weight" in trainable]
    zbar = {c.name: [0.0, 0.0] for c in readout_conns}
    bbar = rt.zeros(n_out)

    state = {}
    for name in trained_populations(built):
        p = pops[name]
        bp = built.populations[name]
        am_h, as_h, g_h = rt.host(p.am), rt.host(p.as_), rt.host(p.g)
        syn_I = not _shared(as_h)
        syn_v = syn_I or p.zero_reset or not _shared(am_h) or not _shared(g_h)
        to_out = [c for c in built.outgoing(name) if c.target == out_name]
        depth = max(c.delay for c in to_out)
        # delay 1 to a single readout connection: e[t-1] is recomputed from the traces of t-1
        recompute = len(to_out) == 1 and depth == 1
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in trainable]
        traces = {}
        for c in conns:
            n_pre = c.mask.shape[0]
            per_syn = (B, n_pre, p.n)
            traces[c.name] = {
                "c": c,
                "epsI_pre": rt.zeros((B, n_pre)),
                "epsv_pre": rt.zeros((B, n_pre)),
                "epsv_spare": rt.zeros((B, n_pre)),  # the other buffer of eps_v (see eprop_pre_traces)
                "eps_I": rt.zeros(per_syn) if syn_I else rt.dummy,
                "eps_v": rt.zeros(per_syn) if syn_v else rt.dummy,
                "eps_a": rt.zeros(per_syn) if p.alif else rt.dummy,
                "e_hist": rt.dummy if recompute else rt.zeros((depth, *per_syn)),
                "ebar": {
                    rc.name: (rt.dummy if r_delta else rt.zeros((*per_syn, Kf)), rt.zeros((*per_syn, Kf)))
                    for rc in to_out
                },
                "grad": rt.zeros((n_pre, p.n)),
            }
        state[name] = {
            "p": p,
            "bp": bp,
            "am": float(am_h[0]),
            "as": float(as_h[0]),
            "g": float(g_h[0]),
            "syn_I": syn_I,
            "syn_v": syn_v,
            "depth": depth,
            "recompute": recompute,
            "to_out": to_out,
            "psi_prev": rt.zeros((B, p.n)),
            "z_prev": rt.zeros((B, p.n)),
            "rate": rt.zeros((B, p.n)),
            "traces": traces,
        }

    kind, sp, sq = surrogate_args(rule.surrogate)
    rate_decay = math.exp(-built.dt / RATE_TAU)
    rate_target = rule.target_rate * built.dt / 1000.0
    loss_acc = rt.zeros(())
    prob_sum = rt.zeros((B, n_out))
    for t in range(T):
        rec = sim.step({name: rt.asarray(x[t]) for name, x in inputs.items()})
        Y = rec[out_name]["V"]
        if window[t]:
            m = Y.max(axis=1, keepdims=True)
            e = xp.exp(Y - m)
            s = e.sum(axis=1, keepdims=True)
            prob = e / s
            loss_acc += xp.sum(((Y - m) - xp.log(s)) * hot)
            prob_sum += prob
            delta = xp.ascontiguousarray((prob - hot) / (B * n_window))
        else:
            delta = None

        bbar = o_am * bbar + o_g
        if delta is not None:
            grads[f"{out_name}.bias"] += (delta * bbar).sum(axis=0)
        for c in readout_conns:
            zb = zbar[c.name]
            s = sim.delivered(c)
            readout_filter(zb, s[:, :, None] if hetero else s)
            if delta is not None:
                if hetero:
                    grads[f"{c.name}.weight"] += (zb[1] * delta[:, None, :]).sum(axis=0)
                else:
                    grads[f"{c.name}.weight"] += zb[1].T @ delta

        for name, st in state.items():
            p, r = st["p"], rec[name]
            psi = rt.empty((B, p.n))  # written entirely by eprop_psi
            rt.launch(
                "eprop_psi",
                B * p.n,
                B,
                p.n,
                r["V"],
                r.get("a", rt.dummy),
                r.get("refractory", rt.dummy),
                int("refractory" in r),
                p.vth,
                p.beta,
                int(p.alif),
                kind,
                sp,
                sq,
                psi,
            )
            R = rt.dummy
            if rule.c_reg:
                st["rate"] = rate_decay * st["rate"] + (1 - rate_decay) * r["z"]
                R = xp.ascontiguousarray((st["rate"] - rate_target).astype(dt, copy=False))
            signals = {}
            if delta is not None:
                for rc in st["to_out"]:
                    fb = feedback[rc.name]
                    signals[rc.name] = (delta, fb) if hetero else (xp.ascontiguousarray(delta @ fb.T), rt.dummy)
            slot = t % st["depth"]
            for tr in st["traces"].values():
                c = tr["c"]
                pre = xp.ascontiguousarray(sim.delivered(c))
                epsv_prev = tr["epsv_pre"]
                if not st["syn_I"]:
                    do_v = not st["syn_v"]
                    new_v = tr["epsv_spare"] if do_v else rt.dummy
                    rt.launch(
                        "eprop_pre_traces",
                        pre.size,
                        pre.size,
                        st["as"],
                        st["am"],
                        st["g"],
                        pre,
                        tr["epsI_pre"],
                        epsv_prev,
                        new_v,
                        int(do_v),
                    )
                    if do_v:
                        tr["epsv_pre"], tr["epsv_spare"] = new_v, epsv_prev
                for k, rc in enumerate(st["to_out"]):
                    flags = 0
                    if k == 0:
                        flags |= EP_FLAGS["update"] | (EP_FLAGS["has_R"] if rule.c_reg else 0)
                    if st["recompute"]:
                        flags |= EP_FLAGS["recompute"]
                    elif k == len(st["to_out"]) - 1:
                        flags |= EP_FLAGS["write_e"]
                    flags |= EP_FLAGS["alif"] if p.alif else 0
                    flags |= EP_FLAGS["syn_I"] if st["syn_I"] else 0
                    flags |= EP_FLAGS["syn_v"] if st["syn_v"] else 0
                    flags |= EP_FLAGS["zero_reset"] if p.zero_reset else 0
                    flags |= EP_FLAGS["hetero"] if hetero else 0
                    flags |= EP_FLAGS["r_delta"] if r_delta else 0
                    flags |= EP_FLAGS["r_unit"] if r_unit else 0
                    sig, fb = signals.get(rc.name, (rt.dummy, rt.dummy))
                    if rc.name in signals:
                        flags |= EP_FLAGS["has_L"]
                    eb_I, eb_V = tr["ebar"][rc.name]
                    n_pre = c.mask.shape[0]
                    rt.launch(
                        "eprop_synapse_step",
                        n_pre * p.n,
                        B,
                        n_pre,
                        p.n,
                        n_out,
                        flags,
                        slot,
                        (t - rc.delay) % st["depth"],
                        pre,
                        tr["epsI_pre"],
                        tr["epsv_pre"],
                        epsv_prev,
                        p.am,
                        p.as_,
                        p.g,
                        p.rho,
                        p.beta,
                        psi,
                        st["psi_prev"],
                        st["z_prev"],
                        tr["eps_I"],
                        tr["eps_v"],
                        tr["eps_a"],
                        tr["e_hist"],
                        k_as,
                        k_am,
                        k_g,
                        eb_I,
                        eb_V,
                        sig,
                        fb,
                        R,
                        rule.c_reg / B,
                        tr["grad"],
                    )
            st["psi_prev"], st["z_prev"] = psi, r["z"]

    loss = -rt.scalar(loss_acc) / (B * n_window)
    for st in state.values():
        for cname, tr in st["traces"].items():
            grads[f"{cname}.weight"] += tr["grad"]
    for c in built.connections:
        key = f"{c.name}.weight"
        if key in grads and c.name in masks:
            grads[key] = grads[key] * masks[c.name]
    pred = rt.host(xp.argmax(prob_sum, axis=1))
    return loss, {k: grads[k] for k in built.trainable_names()}, pred
