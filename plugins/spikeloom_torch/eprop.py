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

import torch

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, trained_populations

from .dynamics import PopConst, Stepper
from .eprop_readout import RATE_TAU, ReadoutSide, all_equal
from .spikes import StreamedInput
from .workspace import Workspace

__all__ = ["eprop_loss_and_grads"]


def _per_post(x: torch.Tensor) -> torch.Tensor:
    """A per-neuron constant ``[N]`` as a 0-d tensor when all neurons share it (the traces then stay
    per presynaptic neuron), else as ``[N, 1, 1]`` for the ``[N_post, B, N_pre]`` layout."""
    return x[0] if all_equal(x) else x[:, None, None]


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
    workspace: Workspace | None = None,
):
    """``(loss, grads by trainable name, predictions)`` for one batch; grads are device tensors.

    Runs the chunked evaluation (:mod:`.eprop_chunked`, the same gradients with the per-synapse
    updates as matrix products; its buffers come from ``workspace``) unless ``eprop_chunked.CHUNK``
    is 0, then the per-step algorithm below.
    """
    from . import eprop_chunked

    if eprop_chunked.CHUNK > 0:
        return eprop_chunked.eprop_chunked(
            built,
            pops,
            weights,
            params,
            masks,
            rule,
            readout,
            inputs,
            labels,
            chunk=eprop_chunked.CHUNK,
            workspace=workspace,
        )
    some = next(iter(weights.values()))
    dtype, device = some.dtype, some.device
    sim = Stepper(built, pops, weights, inputs)
    T, B = sim.T, sim.B
    ro = ReadoutSide(built, pops, params, rule, readout, labels, T, B)
    n_out, hetero_out, out_delta, out_unit_gain = ro.n_out, ro.hetero, ro.delta_synapse, ro.unit_gain
    grads, feedback = ro.grads, ro.feedback

    # the readout's filter for per-synapse e_bar, whose readout axis sits before N_pre
    e_am, e_as, e_g = (ro.am[:, None], ro.as_[:, None], ro.g[:, None]) if hetero_out else (ro.am, ro.as_, ro.g)

    def ebar_step(eb, psi_d, elig_d):
        """The readout's filter, in place on per-synapse ``eb``, with input ``e = psi_d elig_d``."""
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

    state = {}
    for name in trained_populations(built):
        p = pops[name]
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in grads]
        to_out = [c for c in built.outgoing(name) if c.target == ro.name]
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
    for t in range(T):
        rec = sim.step()
        delta = ro.step(t, rec, sim)
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

    for st in state.values():
        for c, tr in st["traces"].items():
            grads[f"{c.name}.weight"] += tr.grad.T
    return ro.result(built, masks)


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
