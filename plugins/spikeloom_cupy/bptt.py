"""BPTT on the device: the reference's backward pass (SPEC §6) with hand-written kernels.

The forward pass records ``V``, ``z``, ``a`` and the refractory flags of every step.  Groups run
in the reverse of the forward order.  What reaches a population's spikes from later groups (and
the activity regulariser) is one cuBLAS product over all steps; a population with no connection
inside its group then runs its whole adjoint recursion in one launch (``spiking_backward``), the
others step by step (``spiking_backward_step``, which sums one of the group's own connections
itself; any further ones are a product per step).  Weight gradients are products over all steps;
the loss is the reference's formula on the device (:mod:`.losses`).  A recurrent population whose
only connection inside its group is its own runs its reversed loop as one block loop
(``spiking_block_backward``), as it ran forward, or, above ``BLOCK_BACKWARD_MAX_N`` neurons, as one
cuBLAS product and one ``spiking_backward_step`` per step.
"""

from __future__ import annotations

import numpy as np

from spikeloom.built import BuiltNetwork
from spikeloom.plan import Plan
from spikeloom.readout import Readout
from spikeloom.rules import BPTT
from spikeloom.surrogates import Atan

from .consts import PopConst
from .forward import block_loop_connection, run
from .kernel_specs import SURROGATE_KINDS
from .launch import block_config
from .losses import readout_loss
from .runtime import Runtime

__all__ = ["bptt_loss_and_grads", "surrogate_args", "rate_regularizer"]


def surrogate_args(surrogate) -> tuple[int, float, float]:
    """``(kind, p, q)`` as ``common.cuh``'s ``sl_surrogate`` takes them."""
    kind = SURROGATE_KINDS[surrogate.kind]
    if isinstance(surrogate, Atan):
        return kind, np.pi / 2.0 * surrogate.alpha, surrogate.alpha / 2.0
    p = {"superspike": "beta", "triangle": "gamma", "sigmoid": "slope"}[surrogate.kind]
    return kind, float(getattr(surrogate, p)), 0.0


def rate_regularizer(rt: Runtime, spikes: dict, dt: float, c_reg: float, target_rate: float):
    """The activity regulariser of SPEC §4 (the formula of ``spikeloom.readout.rate_regularizer``)
    with its derivative per population as ``[N]`` (the same at every step and example)."""
    if c_reg == 0 or not spikes:
        return 0.0, {k: None for k in spikes}
    n_total = sum(z.shape[2] for z in spikes.values())
    value, grads = 0.0, {}
    for name, z in spikes.items():
        T, B, _ = z.shape
        rate = z.mean(axis=(0, 1)) * (1000.0 / dt)
        diff = rate - target_rate
        value += float(rt.host((diff**2).sum()))
        grads[name] = (c_reg * 2.0 * diff / n_total * (1000.0 / dt) / (T * B)).astype(rt.dtype)
    return c_reg * value / n_total, grads


def _shifted(rt: Runtime, x):
    out = rt.xp.zeros_like(x)
    out[1:] = x[:-1]
    return out


def _keep(built: BuiltNetwork) -> dict[str, set[str]]:
    keep = {}
    for p in built.neuron_populations:
        need_I = p.train_tau_syn or (p.train_tau_mem and p.scale_input)
        keep[p.name] = ({"z", "a", "refractory"} if p.spiking else set()) | ({"I"} if need_I else set())
    return keep


def _adjoint_args(rt: Runtime, p: PopConst, r: dict, ga, detach: int, surrogate: tuple, gV, gI) -> list:
    """The arguments every spiking backward kernel ends with: the records of ``r``, ``ga`` (the
    step and block kernels' carried ``dloss/da``; None for ``spiking_backward``), the population's
    constants, the reset flags, the surrogate ``(kind, p, q)`` and the adjoints ``gV``, ``gI``."""
    records = [r["V"], r["z"], r.get("a", rt.dummy), r.get("refractory", rt.dummy), int("refractory" in r)]
    carried = [] if ga is None else [ga]
    consts = [p.am, p.as_, p.g, p.vth, p.rho, p.beta]
    return [*records, *carried, *consts, int(p.alif), int(p.zero_reset), detach, *surrogate, gV, gI]


#: above this many neurons the block loop backward (each block reads all of ``W^T`` at every step)
#: is slower than one cuBLAS product over the batch per step, measured on an H200 (see
#: docs/cupy-backend.md); larger recurrent populations run :func:`_recurrent_backward_gemm`
BLOCK_BACKWARD_MAX_N = 512


def _recurrent_backward_gemm(rt: Runtime, own, p: PopConst, r: dict, weights, ext, gV, gI, T, B, detach, surrogate):
    """The reversed loop of a population whose only connection inside its group is its own ``own``:
    per step, ``ext[t] += gI[t + delay] @ W^T`` (one cuBLAS call) and one ``spiking_backward_step``
    (``gV``, ``gI``: its adjoints ``[T, B, N]``)."""
    e = ext if ext is not None else rt.zeros((T, B, p.n))
    step = rt.prepare(
        "spiking_backward_step",
        B * p.n,
        0,
        T,
        B,
        p.n,
        e,
        1,
        1,
        rt.dummy,
        rt.dummy,
        0,
        0,
        0,
        *_adjoint_args(rt, p, r, rt.zeros((B, p.n)), detach, surrogate, gV, gI),
    )
    W, d = weights[own.name], own.delay
    for t in range(T - 1, -1, -1):
        if t + d < T:
            rt.gemm(gI[t + d], W, e[t], trans_w=True)
        step(t)


def bptt_loss_and_grads(
    rt: Runtime,
    built: BuiltNetwork,
    plan: Plan,
    pops: dict[str, PopConst],
    weights: dict,
    masks: dict,
    rule: BPTT,
    readout: Readout,
    inputs: dict,
    labels: np.ndarray,
    recurrent_mode: str = "events",
    observe=None,
):
    """``(loss, grads by trainable name as device arrays, predictions)`` for one batch;
    ``observe`` (if given) is called with the forward records ``{population: {"z": ...}}``."""
    xp = rt.xp
    rec = run(rt, built, plan, pops, weights, inputs, _keep(built), recurrent_mode)
    T, B = next(iter(inputs.values())).shape[:2]
    loss, dY, pred = readout_loss(rt, rec[readout.population]["V"], labels, readout)
    spiking = {p.name: rec[p.name]["z"] for p in built.neuron_populations if p.spiking}
    reg, dreg = rate_regularizer(rt, spiking, built.dt, readout.c_reg, readout.target_rate)
    loss += reg
    kind, sp, sq = surrogate_args(rule.surrogate)
    detach = int(rule.detach_reset)

    gV_all = {name: rt.zeros((T, B, p.n)) for name, p in pops.items()}
    gI_all = {name: rt.zeros((T, B, p.n)) for name, p in pops.items()}
    for group in reversed(plan.groups):
        if not pops[group[0]].spiking:
            name, p = group[0], pops[group[0]]
            is_out = name == readout.population
            rt.launch(
                "li_backward",
                B * p.n,
                T,
                B,
                p.n,
                dY if is_out else rt.dummy,
                int(is_out),
                p.am,
                p.as_,
                p.g,
                gV_all[name],
                gI_all[name],
            )
            continue
        ext = {}
        for name in group:
            p = pops[name]
            e = None
            if dreg.get(name) is not None:
                e = xp.empty((T, B, p.n), dtype=rt.dtype)
                e[...] = dreg[name]
            for c in plan.downstream[name]:
                if c.delay >= T:
                    continue
                if e is None:
                    e = rt.zeros((T, B, p.n))
                g_t = gI_all[c.target][c.delay :].reshape((T - c.delay) * B, pops[c.target].n)
                rt.gemm(g_t, weights[c.name], e[: T - c.delay].reshape((T - c.delay) * B, p.n), trans_w=True)
            ext[name] = e
        if len(group) == 1 and not plan.feedback[group[0]] and not plan.internal[group[0]]:
            name, p = group[0], pops[group[0]]
            r = rec[name]
            rt.launch(
                "spiking_backward",
                B * p.n,
                T,
                B,
                p.n,
                ext[name] if ext[name] is not None else rt.dummy,
                int(ext[name] is not None),
                *_adjoint_args(rt, p, r, None, detach, (kind, sp, sq), gV_all[name], gI_all[name]),
            )
            continue
        own = block_loop_connection(plan, group, pops, rt.dtype.itemsize)
        if own is not None and pops[own.target].n > BLOCK_BACKWARD_MAX_N:
            name = own.target
            _recurrent_backward_gemm(
                rt,
                own,
                pops[name],
                rec[name],
                weights,
                ext[name],
                gV_all[name],
                gI_all[name],
                T,
                B,
                detach,
                (kind, sp, sq),
            )
            continue
        if own is not None:
            name, p, r = own.target, pops[own.target], rec[own.target]
            cfg = block_config(B, p.n, rt.dtype.itemsize)
            if cfg is not None:
                rt.launch_blocks(
                    "spiking_block_backward",
                    cfg,
                    T,
                    B,
                    p.n,
                    ext[name] if ext[name] is not None else rt.dummy,
                    int(ext[name] is not None),
                    xp.ascontiguousarray(weights[own.name].T),
                    own.delay,
                    *_adjoint_args(rt, p, r, rt.zeros((B, p.n)), detach, (kind, sp, sq), gV_all[name], gI_all[name]),
                )
            continue
        ga = {name: rt.zeros((B, pops[name].n)) for name in group}
        scratch = {name: rt.zeros((B, pops[name].n)) for name in group}
        steppers = {}
        for name in group:
            p, r = pops[name], rec[name]
            # the first connection inside the group goes into the kernel (with W^T, made once)
            fc = plan.feedback[name][0] if plan.feedback[name] else None
            rest = plan.feedback[name][1:]

            def args(t, ext_arg, has_ext, ext_per_step, p=p, r=r, fc=fc, name=name, ga=ga):
                return [
                    B * p.n,
                    t,
                    T,
                    B,
                    p.n,
                    ext_arg,
                    int(has_ext),
                    int(ext_per_step),
                    gI_all[fc.target] if fc is not None else rt.dummy,
                    xp.ascontiguousarray(weights[fc.name].T) if fc is not None else rt.dummy,
                    pops[fc.target].n if fc is not None else 0,
                    fc.delay if fc is not None else 0,
                    int(fc is not None),
                    *_adjoint_args(rt, p, r, ga[name], detach, (kind, sp, sq), gV_all[name], gI_all[name]),
                ]

            if not rest:  # the same arguments at every step but t: prepared once
                has_ext = ext[name] is not None
                n, *a = args(0, ext[name] if has_ext else rt.dummy, has_ext, True)
                steppers[name] = rt.prepare("spiking_backward_step", n, *a)
                continue
            fixed = args(0, scratch[name], True, False)

            def stepper(t, name=name, rest=rest, fixed=fixed, gz=scratch[name], e=ext[name]):
                if e is not None:
                    gz[...] = e[t]
                else:
                    gz[...] = 0
                for c in rest:
                    if t + c.delay < T:
                        rt.gemm(gI_all[c.target][t + c.delay], weights[c.name], gz, trans_w=True)
                rt.launch("spiking_backward_step", fixed[0], t, *fixed[2:])

            steppers[name] = stepper
        for t in range(T - 1, -1, -1):
            for name in group:
                steppers[name](t)

    spikes = {**inputs, **spiking}
    trainable = set(built.trainable_names())
    grads = {}
    for c in built.connections:
        key = f"{c.name}.weight"
        if key not in trainable:
            continue
        if c.delay < T:
            src, tgt = spikes[c.source], gI_all[c.target]
            R = (T - c.delay) * B
            g = src[: T - c.delay].reshape(R, src.shape[2]).T @ tgt[c.delay :].reshape(R, tgt.shape[2])
        else:
            g = rt.zeros(c.mask.shape)
        grads[key] = g * masks[c.name] if c.name in masks else g
    for bp in built.neuron_populations:
        p, r, gV = pops[bp.name], rec[bp.name], gV_all[bp.name]
        if bp.kind == "LI":
            grads[f"{bp.name}.bias"] = p.g * gV.sum(axis=(0, 1))
        if bp.train_tau_mem:
            if bp.kind == "LI":
                v_prev = _shifted(rt, r["V"])
            elif bp.reset == "subtract":
                v_prev = _shifted(rt, r["V"] - p.vth * r["z"])
            else:
                v_prev = _shifted(rt, r["V"] * (1 - r["z"]))
            if bp.scale_input:
                drive = r["I"] + p.bias if bp.kind == "LI" else r["I"]
                v_prev = v_prev - drive
            grads[f"{bp.name}.alpha_mem"] = xp.sum(gV * v_prev, axis=(0, 1))
        if bp.train_tau_syn:
            grads[f"{bp.name}.alpha_syn"] = xp.sum(gI_all[bp.name] * _shifted(rt, r["I"]), axis=(0, 1))
    if observe is not None:  # at the end: its look at the spikes waits for the device
        observe(rec)
    return loss, {k: grads[k] for k in built.trainable_names()}, pred
