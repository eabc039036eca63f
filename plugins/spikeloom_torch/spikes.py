"""Input spike trains and the two products the backend takes of them, for all steps at once.

Input spikes are usually sparse (a few percent of the entries).  On the CPU, when few enough
entries are non-zero, the products ``x[:T-d] @ W`` (delivery) and ``x[:T-d]^T @ G`` (weight
gradient) add up the rows of ``W`` (or ``G``) that the non-zero entries select, each row of the
result one "bag" of ``torch.nn.functional.embedding_bag``; the positions are found once per call
from the host array, which may stay bool or uint8.  Elsewhere they are dense matrix products.
Both sum the same terms; only the order of the sums differs.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SpikeTrain", "SpikeEvents", "StreamedInput", "SPARSE_BELOW", "SPARSE_STEP_MIN_WORK"]

#: CPU inputs with a smaller fraction of non-zero entries use sparse products
SPARSE_BELOW = 0.05
#: a recurrent connection is delivered step by step from the positions of the spikes (on the CPU,
#: while fewer than SPARSE_BELOW of them are non-zero) when ``B * N_pre * N_post`` is at least
#: this; smaller dense products cost less than finding the positions
SPARSE_STEP_MIN_WORK = 1 << 22


class SpikeTrain:
    """One input population's spikes ``[T, B, N]`` (host array ``host`` of the run's dtype, or
    bool / uint8 counts), delivered to the run's ``device`` as ``dtype``.

    On the CPU, when few enough entries are non-zero, the spikes are kept as the positions of
    their non-zero entries only (and their counts where they are not all 1): delivery and weight
    gradients then add up rows of the weights or of the gradient, and no dense ``[T, B, N]``
    float array is made unless :attr:`dense` is asked for.
    """

    def __init__(self, host: np.ndarray, device: torch.device, dtype: torch.dtype) -> None:
        self.host = host
        self.shape = tuple(host.shape)
        self.device = device
        self.dtype = dtype
        self._dense: torch.Tensor | None = None
        self._coo = None
        if device.type == "cpu" and host.size:
            flat = host.reshape(-1)
            nz = np.flatnonzero(flat)
            if nz.size < SPARSE_BELOW * flat.size:
                rows, cols = np.divmod(nz, self.shape[2])
                vals = None if host.dtype == np.bool_ else flat[nz]
                if vals is not None and np.all(vals == 1):
                    vals = None  # plain 0/1 spikes: sums of rows, no weights
                self._coo = (rows, cols, vals)
        self._fwd: dict[int, tuple] = {}
        self._bwd: dict[int, tuple] = {}

    @property
    def dense(self) -> torch.Tensor:
        """All spikes ``[T, B, N]`` as a dense tensor of the run's dtype on the device."""
        if self._dense is None:
            self._dense = torch.from_numpy(self.host).to(self.device).to(self.dtype)
        return self._dense

    def _rows(self, delay: int) -> int:
        T, B, _ = self.shape
        return (T - delay) * B

    def _weights(self, vals: np.ndarray | None) -> torch.Tensor | None:
        return None if vals is None else torch.from_numpy(np.ascontiguousarray(vals)).to(self.dtype)

    def _by_row(self, delay: int) -> tuple:
        """``x[:T-delay]`` ``[(T-delay) B, N]`` as bags: the columns of each row's entries
        (``indices``), where each row starts (``offsets``) and the entries' counts."""
        if delay not in self._fwd:
            rows, cols, vals = self._coo
            R = self._rows(delay)
            starts = np.searchsorted(rows, np.arange(R + 1))
            k = int(starts[-1])
            self._fwd[delay] = (
                torch.from_numpy(cols[:k].astype(np.int64)),
                torch.from_numpy(starts[:-1].astype(np.int64)),
                None if vals is None else self._weights(vals[:k]),
            )
        return self._fwd[delay]

    def _by_column(self, delay: int) -> tuple:
        """``x[:T-delay]^T`` ``[N, (T-delay) B]`` as bags (see :meth:`_by_row`)."""
        if delay not in self._bwd:
            rows, cols, vals = self._coo
            R = self._rows(delay)
            k = int(np.searchsorted(rows, R))
            # a stable sort by column: radix sort on small integer keys
            keys = cols[:k].astype(np.uint16) if self.shape[2] <= 2**16 else cols[:k]
            order = np.argsort(keys, kind="stable")
            starts = np.searchsorted(cols[:k][order], np.arange(self.shape[2]))
            self._bwd[delay] = (
                torch.from_numpy(rows[:k][order].astype(np.int64)),
                torch.from_numpy(starts.astype(np.int64)),
                None if vals is None else self._weights(vals[:k][order]),
            )
        return self._bwd[delay]

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= x[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        if self._coo is not None:
            idx, offsets, counts = self._by_row(delay)
            h = torch.nn.functional.embedding_bag(idx, W, offsets, mode="sum", per_sample_weights=counts)
            if accumulate:
                out.add_(h)
            else:
                out.copy_(h)
            return
        x = self.dense[: T - delay].reshape(-1, n)
        if accumulate:
            out.addmm_(x, W)
        else:
            torch.mm(x, W, out=out)

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of x[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if self._coo is not None:
            idx, offsets, counts = self._by_column(delay)
            return torch.nn.functional.embedding_bag(idx, G2, offsets, mode="sum", per_sample_weights=counts)
        return self.dense[: T - delay].reshape(-1, n).T @ G2


class StreamedInput:
    """One input population's spikes ``[T, B, N]`` kept on the host (the run's dtype, or bool /
    uint8 counts); :meth:`at` moves one step to the device as ``dtype``.  e-prop reads its inputs
    this way, so its device memory does not grow with ``T``."""

    def __init__(self, host: np.ndarray, device, dtype: torch.dtype) -> None:
        self.host = host
        self.shape = tuple(host.shape)
        self.device = device
        self.dtype = dtype

    def at(self, t: int) -> torch.Tensor:
        """``x[t]`` ``[B, N]`` on the device."""
        return torch.from_numpy(self.host[t]).to(self.device).to(self.dtype)


class SpikeEvents:
    """The spikes ``z`` ``[T, B, N]`` of a LIF/ALIF population together with the positions of its
    non-zero entries in the leading ``covered`` steps, found step by step during the forward pass
    (``steps``: ``(t, nonzero(z[t]))`` in order of ``t``).  Products with the covered steps add up
    rows selected by the spikes (as :class:`SpikeTrain` does for inputs); others fall back to dense
    products of ``dense``."""

    def __init__(self, dense: torch.Tensor, steps: list[tuple[int, torch.Tensor]], covered: int) -> None:
        self.dense = dense
        self.shape = tuple(dense.shape)
        self.covered = covered
        T, B, n = self.shape
        device = dense.device
        if steps:
            counts = torch.tensor([nz.shape[0] for _, nz in steps], device=device)
            t_of = torch.repeat_interleave(torch.tensor([t for t, _ in steps], device=device), counts)
            nz = torch.cat([nz for _, nz in steps])
            self._rows = t_of * B + nz[:, 0]  # row of [T B, N], ascending
            self._cols = nz[:, 1]
        else:
            self._rows = self._cols = torch.zeros(0, dtype=torch.int64, device=device)
        self._by_column: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _prefix(self, delay: int) -> tuple[int, int]:
        T, B, _ = self.shape
        R = (T - delay) * B
        return R, int(torch.searchsorted(self._rows, R))

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= z[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        if T - delay > self.covered:
            x = self.dense[: T - delay].reshape(-1, n)
            if accumulate:
                out.addmm_(x, W)
            else:
                torch.mm(x, W, out=out)
            return
        R, k = self._prefix(delay)
        offsets = torch.searchsorted(self._rows[:k], torch.arange(R, device=W.device))
        h = torch.nn.functional.embedding_bag(self._cols[:k], W, offsets, mode="sum")
        if accumulate:
            out.add_(h)
        else:
            out.copy_(h)

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of z[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if T - delay > self.covered:
            return self.dense[: T - delay].reshape(-1, n).T @ G2
        if delay not in self._by_column:
            R, k = self._prefix(delay)
            cols = self._cols[:k].cpu().numpy()
            # a stable sort by column: radix sort on small integer keys
            order = np.argsort(cols.astype(np.uint16) if n <= 2**16 else cols, kind="stable")
            starts = np.searchsorted(cols[order], np.arange(n))
            rows = self._rows[:k][torch.from_numpy(order).to(G.device)]
            self._by_column[delay] = (rows, torch.from_numpy(starts.astype(np.int64)).to(G.device))
        rows, offsets = self._by_column[delay]
        return torch.nn.functional.embedding_bag(rows, G2, offsets, mode="sum")
