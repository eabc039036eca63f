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
from .spikes import xt_g
from .workspace import Workspace

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0


def all_equal(x: torch.Tensor) -> bool:
    return bool(torch.all(x == x[0]))


class ReadoutSide:
    """Per batch: call :meth:`step` once per time step after the network's step; it returns
    ``delta`` ``[B, N_out]`` inside the loss window, else None.  Or call :meth:`record` every step
    and :meth:`flush` when the learning signals are needed: the loss, ``delta`` and the readout's
    gradients are then computed for all steps since the last flush at once.  ``grads`` (by
    trainable name, device tensors) receives the readout's gradients as it goes."""

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
        workspace: Workspace | None = None,
        rows: int = 8,
    ) -> None:
        self.ws = workspace  # buffers kept between calls (None: fresh tensors)
        self.first_rows = max(1, rows)  # the kept rows' first size (see :meth:`_row`)
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
        # per connection: [filtered current, filtered membrane] (the latter a row of the kept rows
        # below, or of a scratch pair outside the loss window), made at the first step
        self.zbar: dict[str, list[torch.Tensor]] = {}
        self._scratch: dict[str, list[torch.Tensor]] = {}
        # per connection: the filtered spikes of the pending steps in the window, row by row
        # ([rows, B, N_pre] or [rows, B, N_pre, N_out]); grows when a flush comes later than its rows
        self._rows: dict[str, torch.Tensor] = {}
        self.bbar = torch.zeros(n_out, dtype=dtype, device=device)
        self.step_loss = torch.zeros(T, dtype=dtype, device=device)
        self.prob_sum = torch.zeros((B, n_out), dtype=dtype, device=device)
        # steps recorded and not yet flushed: (t, Y, bbar, filtered spikes by connection) inside
        # the loss window, and the steps outside it
        self.pending: list[tuple] = []
        self.pending_outside: list[int] = []

    def _filter(self, name: str, x: torch.Tensor, row: int | None) -> torch.Tensor:
        """One step of the readout's filter on connection ``name``'s ``[current, membrane]`` with
        input ``x``; the new membrane value is written into kept row ``row`` (None: outside the
        window, a scratch buffer), which it returns."""
        f = self.zbar.get(name)
        if f is None:  # zero before the first step
            shape = (x.shape[0], x.shape[1], self.n_out) if self.hetero else tuple(x.shape)
            f = self.zbar[name] = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in "IV"]
            self._scratch[name] = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in "01"]
        if self.delta_synapse:
            current = x.expand(f[1].shape)
        else:
            current = f[0] = torch.addcmul(x, self.as_, f[0], out=f[0])
        if row is None:
            pair = self._scratch[name]
            out = pair[0] if f[1] is not pair[0] else pair[1]
        else:
            out = self._row(name, row, tuple(f[1].shape))
        f[1] = torch.addcmul(current if self.unit_gain else self.g * current, self.am, f[1], out=out)
        return f[1]

    def _row(self, name: str, row: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Row ``row`` of connection ``name``'s kept rows (kept between calls in the workspace):
        ``rows`` of the constructor at first, the most steps its caller lets pass between two
        flushes, and twice as many each time they are full."""
        rows = self._rows.get(name)
        if rows is None and self.ws is not None:
            rows = self.ws.peek(("readout", ("Z", name)))
            if rows is not None and (tuple(rows.shape[1:]) != shape or rows.dtype != self.dtype):
                rows = None
        if rows is None or row >= rows.shape[0]:
            n = max(row + 1, self.first_rows if rows is None else 2 * rows.shape[0])
            grown = (
                torch.empty((n,) + shape, dtype=self.dtype, device=self.device)
                if self.ws is None
                else self.ws.get(("readout", ("Z", name)), (n,) + shape, self.dtype, self.device)
            )
            if rows is not None and row:
                grown[:row].copy_(rows[:row])
            rows = grown
        self._rows[name] = rows
        return rows[row]

    def record(self, t: int, rec: dict, sim) -> None:
        """Step ``t``'s readout ``Y`` and filtered presynaptic spikes, kept until :meth:`flush`."""
        self.bbar = self.am * self.bbar + self.g
        row = len(self.pending) if self.window[t] else None
        for c in self.conns:
            s = sim.delivered(c)
            self._filter(c.name, s[:, :, None] if self.hetero else s, row)
        if row is not None:
            self.pending.append((t, rec[self.name]["V"], self.bbar))
        else:
            self.pending_outside.append(t)

    def flush(self) -> dict[int, torch.Tensor | None]:
        """The learning signals ``delta`` ``[B, N_out]`` of the steps recorded since the last flush
        (None outside the loss window), all computed at once; adds their loss and gradients."""
        deltas: dict[int, torch.Tensor | None] = dict.fromkeys(self.pending_outside)
        self.pending_outside = []
        if not self.pending:
            return deltas
        steps = [t for t, *_ in self.pending]
        Y = torch.stack([y for _, y, _ in self.pending])  # [n, B, N_out]
        logp = torch.log_softmax(Y, dim=2)
        self.step_loss[steps] = torch.sum(logp * self.hot, dim=(1, 2))
        prob = torch.exp(logp)
        self.prob_sum += prob.sum(dim=0)
        delta = (prob - self.hot) / (self.B * self.n_window)
        bbar = torch.stack([b for _, _, b in self.pending])  # [n, N_out]
        self.grads[f"{self.name}.bias"] += (delta * bbar.reshape(len(steps), 1, -1)).sum(dim=(0, 1))
        for c in self.conns:
            Z = self._rows[c.name][: len(steps)]  # [n, B, N_pre] (or [n, B, N_pre, N_out])
            if self.hetero:
                self.grads[f"{c.name}.weight"] += (Z * delta[:, :, None, :]).sum(dim=(0, 1))
            else:
                self.grads[f"{c.name}.weight"] += xt_g(Z.reshape(-1, Z.shape[2]), delta.reshape(-1, self.n_out))
        self.pending = []
        deltas.update(zip(steps, delta.unbind(0), strict=True))
        return deltas

    def step(self, t: int, rec: dict, sim) -> torch.Tensor | None:
        """:meth:`record` and :meth:`flush` for one step: its ``delta``, or None outside the window."""
        self.record(t, rec, sim)
        return self.flush()[t]

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
