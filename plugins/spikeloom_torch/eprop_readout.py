"""The readout's side of e-prop, shared by the per-step (:mod:`.eprop`) and chunked
(:mod:`.eprop_chunked`) evaluations: the per-step loss and its ``delta = dloss/dY[t]``, the exact
gradients of the readout's weights and bias (presynaptic spikes and a constant filtered like
``Y``), the feedback matrices, and the masking and collection of the gradients at the end."""

from __future__ import annotations

import numpy as np
import torch

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, feedback_matrices

from .dynamics import PopConst
from .losses import onehot

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0


def all_equal(x: torch.Tensor) -> bool:
    return bool(torch.all(x == x[0]))


class ReadoutSide:
    """Per batch: call :meth:`step` once per time step after the network's step; it returns
    ``delta`` ``[B, N_out]`` inside the loss window, else None.  ``grads`` (by trainable name,
    device tensors) receives the readout's gradients as it goes."""

    def __init__(
        self,
        built: BuiltNetwork,
        pops: dict[str, PopConst],
        params: dict[str, torch.Tensor],
        rule: EProp,
        readout: Readout,
        labels: torch.Tensor,
        T: int,
        B: int,
    ) -> None:
        some = next(iter(params.values()))
        self.dtype, self.device = dtype, device = some.dtype, some.device
        self.B = B
        self.name = readout.population
        out = pops[self.name]
        self.n_out = n_out = out.n
        self.window = np.zeros(T, dtype=bool)
        self.window[readout.steps(T)] = True
        self.n_window = int(self.window.sum())
        self.hot = onehot(labels, n_out, dtype)
        # the readout's filter; with per-neuron readout time constants e_bar gains a readout axis
        self.hetero = not (all_equal(out.alpha_mem) and all_equal(out.alpha_syn) and all_equal(out.g))
        self.am, self.as_, self.g = (
            (out.alpha_mem, out.alpha_syn, out.g) if self.hetero else (out.alpha_mem[0], out.alpha_syn[0], out.g[0])
        )
        self.delta_synapse = bool(torch.all(out.alpha_syn == 0))
        self.unit_gain = bool(torch.all(out.g == 1))
        self.trainable = built.trainable_names()
        self.grads = {name: torch.zeros_like(params[name]) for name in self.trainable}
        self.feedback = {
            k: torch.as_tensor(v, dtype=dtype, device=device)
            for k, v in feedback_matrices(built, rule, readout, params).items()
        }
        self.conns = [c for c in built.incoming(self.name) if f"{c.name}.weight" in self.grads]
        self.zbar = {c.name: [0.0, 0.0] for c in self.conns}  # [filtered current, filtered membrane]
        self.bbar = torch.zeros(n_out, dtype=dtype, device=device)
        self.step_loss = torch.zeros(T, dtype=dtype, device=device)
        self.prob_sum = torch.zeros((B, n_out), dtype=dtype, device=device)

    def filter(self, f, x) -> None:
        """One step of the readout's filter on ``f = [current, membrane]`` with input ``x``."""
        f[0] = x if self.delta_synapse else self.as_ * f[0] + x
        f[1] = self.am * f[1] + (f[0] if self.unit_gain else self.g * f[0])

    def step(self, t: int, rec: dict, sim) -> torch.Tensor | None:
        Y = rec[self.name]["V"]
        delta = None
        if self.window[t]:
            m = Y.amax(dim=1, keepdim=True)
            e = torch.exp(Y - m)
            s = e.sum(dim=1, keepdim=True)
            prob = e / s
            self.step_loss[t] = torch.sum(((Y - m) - torch.log(s)) * self.hot)
            self.prob_sum = self.prob_sum + prob
            delta = (prob - self.hot) / (self.B * self.n_window)
        self.bbar = self.am * self.bbar + self.g
        if delta is not None:
            self.grads[f"{self.name}.bias"] += (delta * self.bbar).sum(dim=0)
        for c in self.conns:
            zb = self.zbar[c.name]
            s = sim.delivered(c)
            self.filter(zb, s[:, :, None] if self.hetero else s)
            if delta is not None:
                if self.hetero:
                    self.grads[f"{c.name}.weight"] += (zb[1] * delta[:, None, :]).sum(dim=0)
                else:
                    self.grads[f"{c.name}.weight"] += zb[1].T @ delta
        return delta

    def result(self, built: BuiltNetwork, masks: dict[str, torch.Tensor]):
        """``(loss, grads by trainable name, predictions)`` once every step has run and the hidden
        populations' gradients were added to :attr:`grads`."""
        loss = 0.0
        for t, v in enumerate(self.step_loss.cpu().numpy().tolist()):
            if self.window[t]:
                loss -= v / (self.B * self.n_window)
        grads = self.grads
        for c in built.connections:
            key = f"{c.name}.weight"
            if key in grads and c.name in masks:
                grads[key] = grads[key] * masks[c.name]
        pred = torch.argmax(self.prob_sum, dim=1).cpu().numpy()
        return loss, {k: grads[k] for k in self.trainable}, pred
