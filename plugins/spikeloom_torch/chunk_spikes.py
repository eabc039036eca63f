"""The spikes one connection delivers during one chunk of chunked e-prop (:mod:`.eprop_chunked`),
``p`` ``[K, B, N_pre]``, and the three things the chunk takes of them.

- :meth:`ChunkSpikes.weight_grad`: ``sum over k, b of p[k, b, i] G[k B + b, j]``, ``[N_pre, M]``.
- :meth:`ChunkSpikes.add_to_states`: per example ``b``, ``S[b, i, :] += sum_k p[k, b, i] C[k B + b, :]``
  plus dense terms ``E[b, i] C[(K + x) B + b, :]`` (the presynaptic traces before the chunk).
- :meth:`ChunkSpikes.filter_end`: ``sum_k w[k] p[k]`` ``[B, N_pre]`` (the traces at the chunk's end).

On the CPU, when fewer than ``SPARSE_BELOW`` of the entries are non-zero, the spikes are kept as
the positions of their non-zero entries: the gradient adds up rows of ``G``
(:class:`~.column_bags.ColumnBags`), and the state update is one sparse (CSR) x dense product
whose rows are ``(b, i)`` and whose columns are ``(k, b)``, written into the states in place.
Otherwise (or on another device) both are dense matrix products.  Both sum the same terms.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from . import devices
from .column_bags import ColumnBags
from .spikes import SPARSE_BELOW, flatnonzero, split_index, xt_g

__all__ = ["ChunkSpikes"]


class ChunkSpikes:
    """``p`` ``[K, B, I]``: either ``dense`` (a tensor of the run's dtype on the device) or the
    flat indices ``flat`` (ascending, numpy int64) of its non-zero entries and their values ``vals``
    (numpy float64, None where all are 1)."""

    def __init__(self, shape, dtype, device, dense=None, flat=None, vals=None, starts=None) -> None:
        self.K, self.B, self.I = shape
        self.dtype, self.device = dtype, device
        self.dense, self.flat, self.vals = dense, flat, vals
        #: compiled path: where each row ``k B + b`` starts in ``flat`` ``[K B + 1]``, where the
        #: caller knows it, else found when needed (:func:`.chunk_compiled.row_starts`)
        self.starts: np.ndarray | None = starts

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_host(
        cls, host: np.ndarray, tau0: int, tau1: int, delay: int, dtype, device, below: float | None = None
    ) -> ChunkSpikes:
        """``p[k] = host[tau0 + k - delay]`` (zero before the first step) for an input ``host``
        ``[T, B, I]``, kept as positions below ``below`` (default ``SPARSE_BELOW``) non-zero."""
        below = SPARSE_BELOW if below is None else below
        K, (B, n) = tau1 - tau0, host.shape[1:]
        lo, hi = max(tau0 - delay, 0), max(tau1 - delay, 0)
        lead = K - (hi - lo)  # steps before the input's first step reaches the connection
        block = host[lo:hi]
        if devices.host_paths(device) and block.size:
            nz = flatnonzero(block.reshape(-1))
            if nz.size < below * block.size:
                vals = None
                if block.dtype != np.bool_:
                    vals = block.reshape(-1)[nz].astype(np.float64)
                    if np.all(vals == 1):
                        vals = None
                return cls((K, B, n), dtype, device, flat=nz + lead * B * n, vals=vals)
        dense = torch.zeros((K, B, n), dtype=dtype, device=device)
        if block.size:
            dense[lead:] = torch.from_numpy(np.ascontiguousarray(block)).to(device).to(dtype)
        return cls((K, B, n), dtype, device, dense=dense)

    @classmethod
    def from_steps(
        cls, steps: list[torch.Tensor], flats: list[np.ndarray | None], below: float | None = None
    ) -> ChunkSpikes:
        """The chunk's delivered spikes, one ``[B, I]`` tensor per step, with the flat indices of
        their non-zero entries where the caller knows them (0/1 spikes; None: not known), kept as
        positions below ``below`` (default ``SPARSE_BELOW``) non-zero."""
        below = SPARSE_BELOW if below is None else below
        some = steps[0]
        (B, n), K = some.shape, len(steps)
        shape = (K, B, n)
        if all(f is not None for f in flats):
            flat = np.concatenate([f + k * B * n for k, f in enumerate(flats)])
            if flat.size < below * K * B * n:
                return cls(shape, some.dtype, some.device, flat=flat)
        dense = torch.stack(steps)
        if devices.host_paths(dense.device) and dense.numel():
            host = dense.numpy().reshape(-1)
            nz = flatnonzero(host)
            if nz.size < below * host.size:
                vals = host[nz].astype(np.float64)
                return cls(shape, dense.dtype, dense.device, flat=nz, vals=None if np.all(vals == 1) else vals)
        return cls(shape, dense.dtype, dense.device, dense=dense)

    # -- products -------------------------------------------------------------------------------------

    def _entries(self):
        """``(rows k B + b, columns i, b)`` of the non-zero entries."""
        rows, cols = split_index(self.flat, self.I)
        return rows, cols, rows % self.B

    def _values(self) -> torch.Tensor:
        if self.vals is None:
            return torch.ones(self.flat.size, dtype=self.dtype)
        return torch.from_numpy(self.vals).to(self.dtype)

    def weight_grad(self, G: torch.Tensor) -> torch.Tensor:
        """``p^T G`` ``[I, M]`` for ``G`` ``[K B, M]`` (rows ``k B + b``)."""
        if self.dense is not None:
            return xt_g(self.dense.reshape(-1, self.I), G)
        rows, cols, _ = self._entries()
        return ColumnBags(rows, cols, self.I, self.vals, self.dtype).sum_rows(G.contiguous())

    def add_to_states(self, S: torch.Tensor, C: torch.Tensor, E: list[torch.Tensor]) -> None:
        """``S[b, i] += sum_k p[k, b, i] C[k B + b] + sum_x E[x][b, i] C[(K + x) B + b]`` in place, for
        ``S`` ``[B, I, M]`` (contiguous), ``C`` ``[(K + len(E)) B, M]`` and each ``E[x]`` ``[B, I]``."""
        K, B, n = self.K, self.B, self.I
        M, n_extra, R_rows = S.shape[2], len(E), B * n
        if self.dense is not None:
            S.baddbmm_(self.dense.permute(1, 2, 0), C[: K * B].view(K, B, M).transpose(0, 1))
            if E:
                S.baddbmm_(torch.stack(E, dim=2), C[K * B :].view(n_extra, B, M).transpose(0, 1))
            return
        # one CSR matrix [B I, (K + n_extra) B]: row b I + i holds its entries for E first
        # (columns (K + x) B + b), then its spikes in step order (columns k B + b)
        rows, cols, b = self._entries()
        dest = b * n + cols
        order = torch.sort(torch.from_numpy(dest), stable=True).indices.numpy()
        dest_sorted = dest[order]
        count = np.bincount(dest, minlength=R_rows)
        first = np.zeros(R_rows + 1, dtype=np.int64)
        np.cumsum(count, out=first[1:])
        crow = first + n_extra * np.arange(R_rows + 1, dtype=np.int64)
        col = np.empty(int(crow[-1]), dtype=np.int64)
        val = torch.empty(int(crow[-1]), dtype=self.dtype)
        at = crow[dest_sorted] + n_extra + (np.arange(dest.size) - first[dest_sorted])
        col[at] = rows[order]
        val[torch.from_numpy(at)] = self._values()[torch.from_numpy(order)]
        row_b = np.repeat(np.arange(B, dtype=np.int64), n)
        for x, e in enumerate(E):
            col[crow[:-1] + x] = (K + x) * B + row_b
            val[torch.from_numpy(crow[:-1] + x)] = e.reshape(-1)
        with warnings.catch_warnings():  # torch warns once that sparse CSR tensors are a beta feature
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            A = torch.sparse_csr_tensor(
                torch.from_numpy(crow),
                torch.from_numpy(col),
                val,
                size=(R_rows, (K + n_extra) * B),
                check_invariants=False,
            )
        S.view(R_rows, M).addmm_(A, C)

    def filter_end(self, w: np.ndarray) -> torch.Tensor:
        """``sum_k w[k] p[k]`` ``[B, I]`` for weights ``w`` ``[K]`` (float64)."""
        if self.dense is not None:
            return torch.tensordot(torch.as_tensor(w, dtype=self.dtype, device=self.device), self.dense, dims=1)
        k, rest = split_index(self.flat, self.B * self.I)
        weights = w[k] if self.vals is None else w[k] * self.vals
        out = np.bincount(rest, weights=weights, minlength=self.B * self.I)
        return torch.from_numpy(out.reshape(self.B, self.I)).to(self.dtype)
