"""Hand-written BPTT on torch tensors: the reference's backward pass (``spikeloom_numpy.bptt``),
run group by group in the reverse of the forward order (see :mod:`.plan`).

Adjoints, from ``t = T-1`` down to 0 (``R`` the reset, ``psi`` the surrogate, 0 while refractory)::

    gz    = dreg/dz + sum_out W gh_target[t + d] + ga[t+1]
    gVr   = alpha_mem gV[t+1]
    gz   += gVr dR/dz                        (only without detach_reset)
    gV[t] = gVr dR/dV + gz psi
    ga[t] = -beta psi gz + rho ga[t+1]
    gI[t] = g gV[t] + alpha_syn gI[t+1]      (= dloss/dh[t])

The part of ``gz`` that comes from later groups is one matrix product over all steps; the
surrogate and the reset's factor are evaluated for all steps at once.  No autograd tape is used.
"""

from __future__ import annotations

import torch

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import BPTT

from .dynamics import PopConst, run
from .losses import rate_regularizer, readout_loss
from .plan import Plan
from .spikes import SpikeTrain

__all__ = ["bptt_loss_and_grads"]


def _shifted(x: torch.Tensor) -> torch.Tensor:
    """``X[t-1]`` for every t (zero at t = 0) from ``X`` ``[T, B, N]``."""
    out = torch.zeros_like(x)
    out[1:] = x[:-1]
    return out


def _keep(built: BuiltNetwork, readout: Readout) -> dict[str, set[str]]:
    keep = {}
    for p in built.neuron_populations:
        need_I = p.train_tau_syn or (p.train_tau_mem and p.scale_input)
        if p.kind == "LI":
            keep[p.name] = ({"V"} if p.name == readout.population or p.train_tau_mem else set()) | (
                {"I"} if need_I else set()
            )
        else:
            keep[p.name] = {"V", "z", "a", "refractory"} | ({"I"} if need_I else set())
    return keep


def _backward_li(p: PopConst, dY: torch.Tensor | None, gV_all: torch.Tensor, gI_all: torch.Tensor) -> None:
    if dY is None:  # not the readout: nothing depends on it
        gV_all.zero_()
        gI_all.zero_()
        return
    gV = torch.zeros_like(gV_all[0])
    for dY_t, gV_t in zip(reversed(dY.unbind(0)), reversed(gV_all.unbind(0)), strict=True):
        gV = torch.addcmul(dY_t, p.alpha_mem, gV, out=gV_t)
    if p.unit_gain:
        gI_all.copy_(gV_all)
    else:
        torch.mul(p.g, gV_all, out=gI_all)
    if not p.delta:
        gI = gI_all[-1]
        for gI_t in reversed(gI_all.unbind(0)[:-1]):
            gI = gI_t.addcmul_(p.alpha_syn, gI)


def bptt_loss_and_grads(
    built: BuiltNetwork,
    plan: Plan,
    pops: dict[str, PopConst],
    weights: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    rule: BPTT,
    readout: Readout,
    inputs: dict[str, SpikeTrain],
    labels: torch.Tensor,
):
    """``(loss, grads by trainable name, predictions)`` for one batch; grads are device tensors."""
    rec = run(plan, pops, weights, inputs, _keep(built, readout))
    some = next(iter(inputs.values()))
    T, B = some.shape[:2]
    dtype, device = some.dtype, some.device

    loss, dY, pred = readout_loss(rec[readout.population]["V"], labels, readout)
    spiking = {p.name: rec[p.name]["z"] for p in built.neuron_populations if p.spiking}
    reg, dreg = rate_regularizer(spiking, built.dt, readout.c_reg, readout.target_rate)
    loss += reg

    gV_all = {name: torch.empty((T, B, p.n), dtype=dtype, device=device) for name, p in pops.items()}
    gI_all = {name: torch.empty((T, B, p.n), dtype=dtype, device=device) for name, p in pops.items()}

    for group in reversed(plan.groups):
        if not pops[group[0]].spiking:
            name = group[0]
            _backward_li(pops[name], dY if name == readout.population else None, gV_all[name], gI_all[name])
            continue
        ctx = {}
        for name in group:
            p, r = pops[name], rec[name]
            # what reaches z from later groups and the regulariser, for all steps at once
            ext = None if dreg[name] is None else dreg[name].expand(T, B, p.n).clone()
            for c in sorted(plan.downstream[name], key=lambda c: c.delay):
                if c.delay >= T:
                    continue
                g_target = gI_all[c.target][c.delay :].reshape(-1, pops[c.target].n)
                if ext is None:  # the shortest delay first: it writes the most rows
                    ext = torch.empty((T, B, p.n), dtype=dtype, device=device)
                    ext[T - c.delay :].zero_()
                    torch.mm(g_target, weights[c.name].T, out=ext[: T - c.delay].view(-1, p.n))
                else:
                    ext[: T - c.delay].view(-1, p.n).addmm_(g_target, weights[c.name].T)
            theta = p.v_thresh + p.beta * r["a"] if p.kind == "ALIF" else p.v_thresh
            psi = rule.surrogate(r["V"] - theta, p.v_thresh)
            if "refractory" in r:
                psi = psi * (1 - r["refractory"])
            ctx[name] = dict(
                ext=ext,
                psi=psi,
                keep=None if p.reset == "subtract" else 1 - r["z"],
                neg_beta_psi=-p.beta * psi if p.kind == "ALIF" else None,
                ga=torch.zeros((B, p.n), dtype=dtype, device=device),
                zero=torch.zeros((B, p.n), dtype=dtype, device=device),
                feedback=[(c.delay, gI_all[c.target].unbind(0), weights[c.name].T) for c in plan.feedback[name]],
                gV=gV_all[name].unbind(0),
                gI=gI_all[name].unbind(0),
                reset_dz=None if rule.detach_reset else (-p.v_thresh if p.reset == "subtract" else -r["V"]),
            )
        for t in range(T - 1, -1, -1):
            for name in group:
                p, cx = pops[name], ctx[name]
                gz = cx["ext"][t] if cx["ext"] is not None else cx["zero"]
                for d, gI_target, Wt in cx["feedback"]:
                    if t + d < T:
                        gz = torch.addmm(gz, gI_target[t + d], Wt)
                if p.kind == "ALIF":
                    gz = gz + cx["ga"]
                gV_t, gI_t = cx["gV"][t], cx["gI"][t]
                gVr = p.alpha_mem * cx["gV"][t + 1] if t + 1 < T else cx["zero"]
                if cx["reset_dz"] is not None:
                    rdz = cx["reset_dz"] if p.reset == "subtract" else cx["reset_dz"][t]
                    gz = torch.addcmul(gz, gVr, rdz)
                if cx["keep"] is not None:
                    gVr = gVr * cx["keep"][t]
                torch.addcmul(gVr, gz, cx["psi"][t], out=gV_t)
                if p.kind == "ALIF":
                    cx["ga"] = torch.addcmul(cx["neg_beta_psi"][t] * gz, p.rho, cx["ga"])
                if t + 1 < T and not p.delta:
                    torch.addcmul(gV_t if p.unit_gain else p.g * gV_t, p.alpha_syn, cx["gI"][t + 1], out=gI_t)
                elif p.unit_gain:
                    gI_t.copy_(gV_t)
                else:
                    torch.mul(p.g, gV_t, out=gI_t)

    spikes = {**inputs, **spiking}
    trainable = set(built.trainable_names())
    grads: dict[str, torch.Tensor] = {}
    for c in built.connections:
        key = f"{c.name}.weight"
        if key not in trainable:
            continue
        src, tgt = spikes[c.source], gI_all[c.target]
        if c.delay < T and isinstance(src, SpikeTrain):
            g = src.weight_grad(c.delay, tgt[c.delay :])
        elif c.delay < T:
            g = src[: T - c.delay].reshape(-1, src.shape[2]).T @ tgt[c.delay :].reshape(-1, tgt.shape[2])
        else:
            g = torch.zeros(tuple(c.mask.shape), dtype=dtype, device=device)
        grads[key] = g * masks[c.name] if c.name in masks else g
    for pop in built.neuron_populations:
        p, r, gV = pops[pop.name], rec[pop.name], gV_all[pop.name]
        if pop.kind == "LI":
            grads[f"{pop.name}.bias"] = p.g * gV.sum(dim=(0, 1))
        if pop.train_tau_mem:
            if pop.kind == "LI":
                v_prev = _shifted(r["V"])
            elif pop.reset == "subtract":
                v_prev = _shifted(r["V"] - p.v_thresh * r["z"])
            else:
                v_prev = _shifted(r["V"] * (1 - r["z"]))
            if pop.scale_input:
                drive = r["I"] + p.bias if pop.kind == "LI" else r["I"]
                v_prev = v_prev - drive
            grads[f"{pop.name}.alpha_mem"] = torch.sum(gV * v_prev, dim=(0, 1))
        if pop.train_tau_syn:
            grads[f"{pop.name}.alpha_syn"] = torch.sum(gI_all[pop.name] * _shifted(r["I"]), dim=(0, 1))
    return loss, {k: grads[k] for k in built.trainable_names()}, pred
