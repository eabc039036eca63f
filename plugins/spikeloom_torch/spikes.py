"""Input spike trains and the two products the backend takes of them, for all steps at once.

Input spikes are usually sparse (a few percent of the entries).  On the CPU, when few enough
entries are non-zero, the positions of the spikes are found once per call from the host array,
which may stay bool or uint8.  The delivery ``x[:T-d] @ W`` is then a sparse (CSR) x dense product,
written straight into its output; the weight gradient ``x[:T-d]^T @ G`` adds up, for each input,
the rows of ``G`` that its spikes select, block by block (:mod:`.column_bags`).  Elsewhere both are
dense matrix products.  All sum the same terms; only the order of the sums differs.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .column_bags import ColumnBags

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

    def _by_row(self, delay: int) -> torch.Tensor:
        """``x[:T-delay]`` ``[(T-delay) B, N]`` as a sparse CSR tensor of the run's dtype."""
        if delay not in self._fwd:
            rows, cols, vals = self._coo
            R = self._rows(delay)
            starts = np.searchsorted(rows, np.arange(R + 1))
            k = int(starts[-1])
            values = torch.ones(k, dtype=self.dtype) if vals is None else self._weights(vals[:k])
            with warnings.catch_warnings():  # torch warns once that sparse CSR tensors are a beta feature
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
                self._fwd[delay] = torch.sparse_csr_tensor(
                    torch.from_numpy(starts.astype(np.int64)),
                    torch.from_numpy(cols[:k].astype(np.int64)),
                    values,
                    size=(R, self.shape[2]),
                    check_invariants=False,  # built from sorted positions above
                )
        return self._fwd[delay]

    def _by_column(self, delay: int) -> ColumnBags:
        """``x[:T-delay]^T`` as bags by column in blocks of rows (see :class:`ColumnBags`)."""
        if delay not in self._bwd:
            rows, cols, vals = self._coo
            k = int(np.searchsorted(rows, self._rows(delay)))
            self._bwd[delay] = ColumnBags(
                rows[:k], cols[:k], self.shape[2], None if vals is None else vals[:k], self.dtype
            )
        return self._bwd[delay]

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= x[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        if self._coo is not None:  # a sparse (CSR) x dense product, written straight into out
            x = self._by_row(delay)
        else:
            x = self.dense[: T - delay].reshape(-1, n)
        if accumulate:
            out.addmm_(x, W)
        else:
            torch.addmm(out, x, W, beta=0, out=out)  # beta=0: whatever out held is ignored

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of x[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if self._coo is not None:
            return self._by_column(delay).sum_rows(G2)
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
        self._by_column: dict[int, ColumnBags] = {}

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
            rows, cols = self._rows[:k].cpu().numpy(), self._cols[:k].cpu().numpy()
            self._by_column[delay] = ColumnBags(rows, cols, n, None, G.dtype)
        return self._by_column[delay].sum_rows(G2)
