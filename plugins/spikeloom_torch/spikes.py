"""Input spike trains and the two products the backend takes of them, for all steps at once.

Input spikes are usually sparse (a few percent of the entries).  On the CPU, when few enough
entries are non-zero, the products ``x[:T-d] @ W`` (delivery) and ``x[:T-d]^T @ G`` (weight
gradient) use compressed sparse rows, built once per call from the host array; elsewhere they are
dense matrix products.  Both sum the same terms; only the order of the sums differs.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["SpikeTrain", "StreamedInput", "SPARSE_BELOW"]

#: CPU inputs with a smaller fraction of non-zero entries use sparse products
SPARSE_BELOW = 0.05


def _csr(crow: np.ndarray, col: np.ndarray, val: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # torch's notes that sparse CSR is in beta and unchecked here
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        warnings.filterwarnings("ignore", message=".*[Ss]parse invariant checks.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow), torch.from_numpy(col), torch.from_numpy(val), shape, check_invariants=False
        )


class SpikeTrain:
    """One input population's spikes ``[T, B, N]``: ``dense`` on the device, plus a sparse form
    (CPU only) when the host array is sparse enough."""

    def __init__(self, host: np.ndarray, dense: torch.Tensor) -> None:
        self.dense = dense
        self.shape = tuple(dense.shape)
        self._coo = None
        if dense.device.type == "cpu" and host.size:
            flat = host.reshape(-1, host.shape[2])
            nz = np.flatnonzero(flat != 0)
            if nz.size < SPARSE_BELOW * flat.size:
                rows, cols = np.divmod(nz, flat.shape[1])
                self._coo = (rows, cols, flat.reshape(-1)[nz])
        self._fwd: dict[int, torch.Tensor] = {}
        self._bwd: dict[int, torch.Tensor] = {}

    def _rows(self, delay: int) -> int:
        T, B, _ = self.shape
        return (T - delay) * B

    def _sparse_prefix(self, delay: int) -> torch.Tensor:
        """``x[:T-delay]`` as CSR ``[(T-delay) B, N]``."""
        if delay not in self._fwd:
            rows, cols, vals = self._coo
            R = self._rows(delay)
            crow = np.searchsorted(rows, np.arange(R + 1))
            k = int(crow[-1])
            self._fwd[delay] = _csr(crow, cols[:k].copy(), vals[:k].copy(), (R, self.shape[2]))
        return self._fwd[delay]

    def _sparse_prefix_t(self, delay: int) -> torch.Tensor:
        """``x[:T-delay]^T`` as CSR ``[N, (T-delay) B]``."""
        if delay not in self._bwd:
            rows, cols, vals = self._coo
            R = self._rows(delay)
            k = int(np.searchsorted(rows, R))
            # a stable sort by column: radix sort on small integer keys
            keys = cols[:k].astype(np.uint16) if self.shape[2] <= 2**16 else cols[:k]
            order = np.argsort(keys, kind="stable")
            crow = np.searchsorted(cols[:k][order], np.arange(self.shape[2] + 1))
            self._bwd[delay] = _csr(crow, rows[:k][order].copy(), vals[:k][order].copy(), (self.shape[2], R))
        return self._bwd[delay]

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= x[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        x = self._sparse_prefix(delay) if self._coo is not None else self.dense[: T - delay].reshape(-1, n)
        if accumulate:
            out.addmm_(x, W)
        else:
            torch.mm(x, W, out=out)

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of x[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if self._coo is not None:
            return self._sparse_prefix_t(delay) @ G2
        return self.dense[: T - delay].reshape(-1, n).T @ G2


class StreamedInput:
    """One input population's spikes ``[T, B, N]`` kept on the host; :meth:`at` moves one step to
    the device.  e-prop reads its inputs this way, so its device memory does not grow with ``T``."""

    def __init__(self, host: np.ndarray, device) -> None:
        self.host = host
        self.shape = tuple(host.shape)
        self.device = device

    def at(self, t: int) -> torch.Tensor:
        """``x[t]`` ``[B, N]`` on the device."""
        return torch.from_numpy(self.host[t]).to(self.device)
