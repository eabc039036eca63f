"""e-prop on torch tensors: the reference's online algorithm (``spikeloom_numpy.eprop``), step by step.

For a trained population j, each trainable incoming connection c (presynaptic i, delivered spikes
``p_i[t] = s_i[t - delay]``) keeps eligibility traces::

    eps_a[t] = psi[t-1] eps_v[t-1] + (rho - psi[t-1] beta) eps_a[t-1]     (ALIF)
    eps_I[t] = alpha_syn eps_I[t-1] + p[t]
    eps_v[t] = alpha_mem (1 - z[t-1] if reset == "zero") eps_v[t-1] + g eps_I[t]
    e[t]     = psi[t] (eps_v[t] - beta eps_a[t])

``e`` is filtered like the readout filters the population's spikes into ``e_bar``; the gradient is
``sum_t sum_b L[t] e_bar[t]`` with ``L[t] = delta[t] B^T``.  Memory does not grow with ``T``
beyond the inputs themselves (whose contributions are computed for all steps at once).

Layout: per-synapse traces are ``[N_post, B, N_pre]`` (the reference uses ``[B, N_pre, N_post]``),
so that elementwise updates run along the long presynaptic axis and the sum over the batch of
``L e_bar`` is one batched product per step.  A trace that is the same for every target neuron
keeps a leading axis of 1.  ``e`` itself is never formed: the history keeps its two factors
``psi`` ``[N_post, B, 1]`` and ``eps_v - beta eps_a``.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, feedback_matrices, trained_populations

from .dynamics import PopConst, Stepper
from .losses import onehot
from .spikes import StreamedInput

__all__ = ["eprop_loss_and_grads"]

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0


def _all_equal(x: torch.Tensor) -> bool:
    return bool(torch.all(x == x[0]))


def _per_post(x: torch.Tensor) -> torch.Tensor:
    """A per-neuron constant ``[N]`` as a 0-d tensor when all neurons share it (the traces then stay
    per presynaptic neuron), else as ``[N, 1, 1]`` for the ``[N_post, B, N_pre]`` layout."""
    return x[0] if _all_equal(x) else x[:, None, None]


class _Traces:
    """The eligibility traces of one trainable connection into a trained population."""

    def __init__(
        self, depth: int, readout_conns: list, shape: tuple[int, int], dtype: torch.dtype, device: torch.device
    ) -> None:
        self.eps_I = 0.0
        self.eps_v = torch.zeros((), dtype=dtype, device=device)
        self.eps_a = None  # ALIF only, per synapse
        # (psi, eps_v - beta eps_a) of the last ``depth`` steps, newest first (None before t = 0)
        self.hist: deque = deque([None] * depth, maxlen=depth)
        # per readout connection: [filtered current, filtered membrane], allocated on first use
        self.ebar = {rc.name: None for rc in readout_conns}
        self.grad = torch.zeros(shape, dtype=dtype, device=device)  # accumulated gradient, [N_post, N_pre]


def eprop_loss_and_grads(
    built: BuiltNetwork,
    pops: dict[str, PopConst],
    weights: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    rule: EProp,
    readout: Readout,
    inputs: dict[str, StreamedInput],
    labels: torch.Tensor,
):
    """``(loss, grads by trainable name, predictions)`` for one batch; grads are device tensors.

    Runs the chunked evaluation (:mod:`.eprop_chunked`, the same gradients with the per-synapse
    updates as matrix products) wherever it applies, else the per-step algorithm below.
    """
    from . import eprop_chunked

    if eprop_chunked.CHUNK > 0 and eprop_chunked.chunked_blocker(built, pops) is None:
        return eprop_chunked.eprop_chunked(
            built, pops, weights, params, masks, rule, readout, inputs, labels, chunk=eprop_chunked.CHUNK
        )
    some = next(iter(weights.values()))
    dtype, device = some.dtype, some.device
    sim = Stepper(built, pops, weights, inputs)
    T, B = sim.T, sim.B
    out_name = readout.population
    out = pops[out_name]
    n_out = out.n
    window = np.zeros(T, dtype=bool)
    window[readout.steps(T)] = True
    n_window = int(window.sum())
    hot = onehot(labels, n_out, dtype)

    # the readout's filter; with per-neuron readout time constants e_bar gains a readout axis (last)
    hetero_out = not (_all_equal(out.alpha_mem) and _all_equal(out.alpha_syn) and _all_equal(out.g))
    o_am, o_as, o_g = (
        (out.alpha_mem, out.alpha_syn, out.g) if hetero_out else (out.alpha_mem[0], out.alpha_syn[0], out.g[0])
    )
    out_delta, out_unit_gain = bool(torch.all(out.alpha_syn == 0)), bool(torch.all(out.g == 1))

    def readout_filter(f, x):
        """One step of the readout's filter on ``f = [current, membrane]`` with input ``x`` (small arrays)."""
        f[0] = x if out_delta else o_as * f[0] + x
        f[1] = o_am * f[1] + (f[0] if out_unit_gain else o_g * f[0])

    # the filter's constants for per-synapse e_bar, whose readout axis sits before N_pre
    e_am, e_as, e_g = (o_am[:, None], o_as[:, None], o_g[:, None]) if hetero_out else (o_am, o_as, o_g)

    def ebar_step(eb, psi_d, elig_d):
        """The same filter, in place on per-synapse ``eb``, with input ``e = psi_d elig_d``."""
        if hetero_out:
            psi_d, elig_d = psi_d[:, :, None], elig_d[:, :, None]
        if out_delta:
            eb[1].mul_(e_am).addcmul_(psi_d if out_unit_gain else psi_d * e_g, elig_d)
            return
        eb[0].mul_(e_as).addcmul_(psi_d, elig_d)
        eb[1].mul_(e_am)
        if out_unit_gain:
            eb[1].add_(eb[0])
        else:
            eb[1].addcmul_(eb[0], e_g)

    trainable = built.trainable_names()
    grads = {name: torch.zeros_like(params[name]) for name in trainable}
    feedback = {
        k: torch.as_tensor(v, dtype=dtype, device=device)
        for k, v in feedback_matrices(built, rule, readout, params).items()
    }

    readout_conns = [c for c in built.incoming(out_name) if f"{c.name}.weight" in grads]
    zbar = {c.name: [0.0, 0.0] for c in readout_conns}  # [filtered current, filtered membrane]
    bbar = torch.zeros(n_out, dtype=dtype, device=device)

    state = {}
    for name in trained_populations(built):
        p = pops[name]
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in grads]
        to_out = [c for c in built.outgoing(name) if c.target == out_name]
        depth = max(c.delay for c in to_out)
        zero_reset = p.reset == "zero"
        zeros = torch.zeros((B, p.n), dtype=dtype, device=device)
        state[name] = {
            "p": p,
            "am": p.alpha_mem[:, None, None] if zero_reset else _per_post(p.alpha_mem),
            "as": _per_post(p.alpha_syn),
            "g": _per_post(p.g),
            "rho": None if p.rho is None else p.rho[:, None, None],
            "beta": None if p.beta is None else p.beta[:, None, None],
            "zero_reset": zero_reset,
            "to_out": to_out,
            "psi_prev": zeros.T[:, :, None],
            "z_prev": zeros,
            "rate": zeros,
            "traces": {c: _Traces(depth, to_out, (p.n, c.mask.shape[0]), dtype, device) for c in conns},
        }

    rate_decay = math.exp(-built.dt / RATE_TAU)
    rate_target = rule.target_rate * built.dt / 1000.0
    step_loss = torch.zeros(T, dtype=dtype, device=device)
    prob_sum = torch.zeros((B, n_out), dtype=dtype, device=device)
    for t in range(T):
        rec = sim.step()
        Y = rec[out_name]["V"]
        if window[t]:
            m = Y.amax(dim=1, keepdim=True)
            e = torch.exp(Y - m)
            s = e.sum(dim=1, keepdim=True)
            prob = e / s
            step_loss[t] = torch.sum(((Y - m) - torch.log(s)) * hot)
            prob_sum = prob_sum + prob
            delta = (prob - hot) / (B * n_window)
        else:
            delta = None

        # readout weights and bias: exact, from presynaptic spikes and a constant filtered like Y
        bbar = o_am * bbar + o_g
        if delta is not None:
            grads[f"{out_name}.bias"] += (delta * bbar).sum(dim=0)
        for c in readout_conns:
            zb = zbar[c.name]
            s = sim.delivered(c)
            readout_filter(zb, s[:, :, None] if hetero_out else s)
            if delta is not None:
                if hetero_out:
                    grads[f"{c.name}.weight"] += (zb[1] * delta[:, None, :]).sum(dim=0)
                else:
                    grads[f"{c.name}.weight"] += zb[1].T @ delta

        for name, st in state.items():
            p, r = st["p"], rec[name]
            theta = p.v_thresh + p.beta * r["a"] if p.kind == "ALIF" else p.v_thresh
            psi = rule.surrogate(r["V"] - theta, p.v_thresh)
            if "refractory" in r:
                psi = psi * (1 - r["refractory"].to(dtype))
            psi_j = psi.T[:, :, None]  # [N_post, B, 1]
            if rule.c_reg:
                st["rate"] = rate_decay * st["rate"] + (1 - rate_decay) * r["z"]
                reg_j = ((st["rate"] - rate_target) * psi).T.contiguous()  # [N_post, B]
            psi_prev = st["psi_prev"]
            keep = (1 - st["z_prev"]).T[:, :, None]
            # learning signals of this step, [N_post, B] (or [N_post, B, N_out] with a readout axis)
            signals = {}
            if delta is not None:
                for rc in st["to_out"]:
                    fb = feedback[rc.name]
                    signals[rc.name] = (fb[:, None, :] * delta[None]) if hetero_out else fb @ delta.T
            for c, tr in st["traces"].items():
                pre = sim.delivered(c)[None]  # [1, B, N_pre]
                if p.kind == "ALIF":
                    if tr.eps_a is None:
                        tr.eps_a = torch.zeros((p.n, B, pre.shape[2]), dtype=dtype, device=device)
                    tr.eps_a.mul_(st["rho"] - psi_prev * st["beta"]).addcmul_(psi_prev, tr.eps_v)
                tr.eps_I = st["as"] * tr.eps_I + pre
                decay = st["am"] * keep if st["zero_reset"] else st["am"]
                tr.eps_v = torch.addcmul(st["g"] * tr.eps_I, decay, tr.eps_v)
                elig = torch.addcmul(tr.eps_v, st["beta"], tr.eps_a, value=-1) if p.kind == "ALIF" else tr.eps_v
                if rule.c_reg:
                    _accumulate(tr.grad, elig, reg_j, rule.c_reg / B)
                for rc in st["to_out"]:
                    e_d = tr.hist[rc.delay - 1]  # (psi, elig) of step t - delay
                    if e_d is None:
                        continue  # no eligibility has reached the readout yet: e_bar is still 0
                    eb = tr.ebar[rc.name]
                    if eb is None:
                        shape = (p.n, B) + ((n_out,) if hetero_out else ()) + (pre.shape[2],)
                        eb = tr.ebar[rc.name] = [
                            None if out_delta else torch.zeros(shape, dtype=dtype, device=device),
                            torch.zeros(shape, dtype=dtype, device=device),
                        ]
                    ebar_step(eb, *e_d)
                    if delta is not None:
                        _accumulate(tr.grad, eb[1], signals[rc.name])
                tr.hist.appendleft((psi_j, elig))
            st["psi_prev"], st["z_prev"] = psi_j, r["z"]

    loss = 0.0
    for t, v in enumerate(step_loss.cpu().numpy().tolist()):
        if window[t]:
            loss -= v / (B * n_window)
    for st in state.values():
        for c, tr in st["traces"].items():
            grads[f"{c.name}.weight"] += tr.grad.T
    for c in built.connections:
        key = f"{c.name}.weight"
        if key in grads and c.name in masks:
            grads[key] = grads[key] * masks[c.name]
    pred = torch.argmax(prob_sum, dim=1).cpu().numpy()
    return loss, {k: grads[k] for k in trainable}, pred


def _accumulate(acc: torch.Tensor, trace: torch.Tensor, signal: torch.Tensor, scale: float = 1.0) -> None:
    """``acc[j, i] += scale * sum_b signal[j, b] trace[j, b, i]``, in place.

    ``acc`` is ``[N_post, N_pre]``, ``trace`` ``[N_post or 1, B, N_pre]`` and ``signal``
    ``[N_post, B]``; with a readout axis, ``trace`` is ``[N_post, B, K, N_pre]`` and ``signal``
    ``[N_post, B, K]``, summed over ``b`` and ``k``.
    """
    if trace.ndim == 4:
        J, B, K, I = trace.shape
        acc[:, None, :].baddbmm_(signal.reshape(J, 1, B * K), trace.reshape(J, B * K, I), alpha=scale)
    elif trace.shape[0] == 1:
        acc.addmm_(signal, trace[0], alpha=scale)
    else:
        acc[:, None, :].baddbmm_(signal[:, None, :], trace, alpha=scale)
