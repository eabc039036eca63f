"""Hand-written BPTT on torch tensors: the reference's backward pass (``spikeloom_numpy.bptt``),
run group by group in the reverse of the forward order (see :mod:`spikeloom.plan`).

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
from spikeloom.plan import Plan
from spikeloom.readout import Readout
from spikeloom.rules import BPTT

from . import devices
from .dynamics import PopConst, run
from .losses import rate_regularizer, readout_loss
from .spikes import SpikeEvents, SpikeTrain, xt_g
from .surrogate_ops import surrogate_
from .workspace import Workspace

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


#: elements of ``[T, B, N]`` per block of steps that :func:`_psi` evaluates at once (1 MiB of
#: float32): the surrogate's five or six passes then run over a block still in the core's cache
#: instead of streaming the whole array through memory five or six times
PSI_BLOCK = 1 << 18


def _psi(p: PopConst, r: dict[str, torch.Tensor], rule: BPTT, x: torch.Tensor) -> torch.Tensor:
    """The surrogate ``psi`` ``[T, B, N]`` (0 while refractory), written into ``x``, which holds
    ``V`` on entry; the recorded ``a`` becomes the threshold (nothing reads it afterwards).
    Evaluated a block of steps at a time (:data:`PSI_BLOCK`; the same operations on every element)."""
    T = x.shape[0]
    step = max(1, PSI_BLOCK // max(1, x[0].numel())) if devices.host_paths(x.device) else T
    for t0 in range(0, T, step):
        rows = slice(t0, t0 + step)
        theta = r["a"][rows].mul_(p.beta).add_(p.v_thresh) if p.kind == "ALIF" else p.v_thresh
        psi = surrogate_(rule.surrogate, x[rows].sub_(theta), p.v_thresh)
        if "refractory" in r:
            psi.mul_(r["refractory"][rows].neg_().add_(1.0))
    return x


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
    workspace: Workspace | None = None,
):
    """``(loss, grads by trainable name, predictions)`` for one batch; grads are device tensors.

    The arrays ``[T, B, N]`` of the forward and backward passes come from ``workspace`` (kept
    from call to call); the feed-forward drive of a LIF/ALIF population is dead once the forward
    pass is over, and its buffer then holds the population's adjoint ``gI``.
    """
    some = next(iter(inputs.values()))
    T, B = some.shape[:2]
    dtype, device = some.dtype, some.device
    ws = Workspace() if workspace is None else workspace
    alloc = lambda key, shape: ws.get(key, shape, dtype, device)  # noqa: E731
    events: dict[str, SpikeEvents] = {}
    rec = run(plan, pops, weights, inputs, _keep(built, readout), alloc, events)

    loss, dY, pred = readout_loss(rec[readout.population]["V"], labels, readout)
    spiking = {p.name: rec[p.name]["z"] for p in built.neuron_populations if p.spiking}
    reg, dreg = rate_regularizer(spiking, built.dt, readout.c_reg, readout.target_rate)
    loss += reg

    described = {pop.name: pop for pop in built.neuron_populations}
    gV_all: dict[str, torch.Tensor | None] = {}
    gI_all: dict[str, torch.Tensor] = {}
    for name, p in pops.items():
        shape = (T, B, p.n)
        gI_all[name] = alloc(("drive", name) if p.spiking else ("gI", name), shape)
        # gV of every step is needed only for the readout's bias and trained alpha_mem
        gV_all[name] = alloc(("gV", name), shape) if not p.spiking or described[name].train_tau_mem else None

    for group in reversed(plan.groups):
        if not pops[group[0]].spiking:
            name = group[0]
            _backward_li(pops[name], dY if name == readout.population else None, gV_all[name], gI_all[name])
            continue
        ctx = {}
        for name in group:
            p, r, gI = pops[name], rec[name], gI_all[name]
            # what reaches z from later groups and the regulariser, for all steps at once: kept in
            # gI[t] until step t of the loop below reads it and overwrites it
            has_ext = dreg[name] is not None
            if has_ext:
                gI.copy_(dreg[name].expand(T, B, p.n))
            for c in sorted(plan.downstream[name], key=lambda c: c.delay):
                if c.delay >= T:
                    continue
                g_target = gI_all[c.target][c.delay :].reshape(-1, pops[c.target].n)
                rows = gI[: T - c.delay].view(-1, p.n)
                if not has_ext:  # the shortest delay first: it writes the most rows
                    gI[T - c.delay :].zero_()
                    torch.mm(g_target, weights[c.name].T, out=rows)
                    has_ext = True
                else:
                    rows.addmm_(g_target, weights[c.name].T)
            keep_V = described[name].train_tau_mem or (not rule.detach_reset and p.reset == "zero")
            x = alloc(("psi", name), (T, B, p.n)).copy_(r["V"]) if keep_V else r["V"]
            general = not rule.detach_reset or p.reset != "subtract"
            gV = gV_all[name]
            ctx[name] = dict(
                ext=has_ext,
                psi=_psi(p, r, rule, x).unbind(0),
                keep=(1 - r["z"]).unbind(0) if p.reset != "subtract" else None,
                general=general,
                ga=torch.zeros((B, p.n), dtype=dtype, device=device) if p.kind == "ALIF" else None,
                neg_beta=-p.beta if p.kind == "ALIF" else None,
                zero=torch.zeros((B, p.n), dtype=dtype, device=device),
                gz_buf=torch.empty((B, p.n), dtype=dtype, device=device),
                feedback=[(c.delay, gI_all[c.target].unbind(0), weights[c.name].T) for c in plan.feedback[name]],
                # gV[t] of every step, or two buffers used in turn
                gV=gV.unbind(0) if gV is not None else None,
                gV_pair=None if gV is not None else [torch.empty((B, p.n), dtype=dtype, device=device) for _ in "01"],
                gI=gI.unbind(0),
                reset_dz=None if rule.detach_reset else (-p.v_thresh if p.reset == "subtract" else -r["V"]),
            )
        for t in range(T - 1, -1, -1):
            for name in group:
                p, cx = pops[name], ctx[name]
                gI_rows, buf = cx["gI"], cx["gz_buf"]
                gz = gI_rows[t] if cx["ext"] else None
                for d, gI_target, Wt in cx["feedback"]:
                    if t + d < T:
                        if gz is None:
                            gz = torch.mm(gI_target[t + d], Wt, out=buf)
                        else:  # in place: gz is buf, or gI[t], which this step overwrites below
                            gz.addmm_(gI_target[t + d], Wt)
                if p.kind == "ALIF":
                    gz = cx["ga"].clone() if gz is None else gz.add_(cx["ga"])
                elif gz is None:
                    gz = cx["zero"]
                if cx["gV_pair"] is None:
                    gV_t, gV_next = cx["gV"][t], (cx["gV"][t + 1] if t + 1 < T else None)
                else:
                    gV_t, gV_next = cx["gV_pair"][t % 2], (cx["gV_pair"][(t + 1) % 2] if t + 1 < T else None)
                psi_t = cx["psi"][t]
                if cx["general"]:
                    gVr = p.alpha_mem * gV_next if gV_next is not None else cx["zero"]
                    if cx["reset_dz"] is not None:
                        rdz = cx["reset_dz"] if p.reset == "subtract" else cx["reset_dz"][t]
                        gz = torch.addcmul(gz, gVr, rdz)
                    if cx["keep"] is not None:
                        gVr = gVr * cx["keep"][t]
                    pg = gz * psi_t
                    if p.kind == "ALIF":
                        cx["ga"].mul_(p.rho).addcmul_(cx["neg_beta"], pg)
                    torch.add(gVr, pg, out=gV_t)
                else:
                    torch.mul(gz, psi_t, out=gV_t)
                    if p.kind == "ALIF":  # ga[t] = -beta psi gz + rho ga[t+1]
                        cx["ga"].mul_(p.rho).addcmul_(cx["neg_beta"], gV_t)
                    if gV_next is not None:
                        gV_t.addcmul_(p.alpha_mem, gV_next)
                gI_t = gI_rows[t]  # ext[t] was read into gz above; now gI[t] takes its own value
                if t + 1 < T and not p.delta:
                    torch.addcmul(gV_t if p.unit_gain else p.g * gV_t, p.alpha_syn, gI_rows[t + 1], out=gI_t)
                elif p.unit_gain:
                    gI_t.copy_(gV_t)
                else:
                    torch.mul(p.g, gV_t, out=gI_t)

    spikes = {**inputs, **spiking, **events}
    trainable = set(built.trainable_names())
    grads: dict[str, torch.Tensor] = {}
    for c in built.connections:
        key = f"{c.name}.weight"
        if key not in trainable:
            continue
        src, tgt = spikes[c.source], gI_all[c.target]
        if c.delay < T and isinstance(src, (SpikeTrain, SpikeEvents)):
            g = src.weight_grad(c.delay, tgt[c.delay :])
        elif c.delay < T:
            g = xt_g(src[: T - c.delay].reshape(-1, src.shape[2]), tgt[c.delay :].reshape(-1, tgt.shape[2]))
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
