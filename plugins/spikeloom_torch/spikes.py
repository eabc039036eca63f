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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from . import devices
from .column_bags import ColumnBags

__all__ = [
    "SpikeTrain",
    "SpikeEvents",
    "StreamedInput",
    "Positions",
    "SPARSE_BELOW",
    "SPARSE_STEP_MIN_WORK",
    "split_index",
    "xt_g",
]

#: CPU inputs with a smaller fraction of non-zero entries use sparse products
SPARSE_BELOW = 0.05
#: a recurrent connection is delivered step by step from the positions of the spikes (on the CPU,
#: while fewer than SPARSE_BELOW of them are non-zero) when ``B * N_pre * N_post`` is at least
#: this; smaller dense products cost less than finding the positions
SPARSE_STEP_MIN_WORK = 1 << 22


#: host arrays at least this large are scanned for spikes in parallel chunks
PARALLEL_SCAN_MIN = 1 << 22


def flatnonzero(flat: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(flat)`` for a 1-d host array, in one chunk per torch thread when it is large:
    numpy releases the GIL while it scans (2 threads: 98 ms against 168 ms for 179 M bools)."""
    parts = torch.get_num_threads()
    if parts < 2 or flat.size < PARALLEL_SCAN_MIN:
        return np.flatnonzero(flat)
    bounds = np.linspace(0, flat.size, parts + 1).astype(np.int64)

    def scan(i: int) -> np.ndarray:
        return np.flatnonzero(flat[bounds[i] : bounds[i + 1]]) + bounds[i]

    with ThreadPoolExecutor(parts) as pool:
        return np.concatenate(list(pool.map(scan, range(parts))))


def split_index(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.divmod(flat, n)`` for non-negative int64 indices, in about half its time (numpy's
    divmod handles signs it need not here): ``(flat // n, flat % n)``."""
    q = flat // n
    return q, flat - q * n


def xt_g(x: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``x^T @ G`` ``[n, M]`` for dense ``x`` ``[R, n]`` and ``G`` ``[R, M]``, computed as
    ``(G^T @ x)^T``: MKL's product with the long dimension inside and a narrow result (a readout's
    20 columns) takes about half the time that way (on the CPU; the same for square results)."""
    return (G.T @ x).T


def _product(x: torch.Tensor, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
    """``out (+)= x @ W``; ``x`` may be a sparse CSR tensor (MKL's sparse x dense product)."""
    if accumulate:
        out.addmm_(x, W)
    else:
        torch.addmm(out, x, W, beta=0, out=out)  # beta=0: whatever out held is ignored


class Positions:
    """The non-zero entries of spikes ``[T, B, N]``, given by their flat indices ``flat``
    (ascending, numpy int64), as entries ``(rows, cols)`` of the matrix ``[T B, N]`` (``vals``
    their values, None where all are 1),
    and the two products with its leading ``R`` rows: ``x[:R] @ W`` as a sparse CSR x dense
    product, ``x[:R]^T @ G`` as sums of rows of ``G`` (:class:`~.column_bags.ColumnBags`)."""

    def __init__(self, flat: np.ndarray, vals: np.ndarray | None, n: int, dtype: torch.dtype):
        self.flat, self.vals, self.n, self.dtype = flat, vals, n, dtype
        self.rows, self.cols = split_index(flat, n)
        self._csr: dict[int, torch.Tensor] = {}
        self._bags: dict[int, ColumnBags] = {}

    def _values(self, k: int) -> torch.Tensor:
        if self.vals is None:
            return torch.ones(k, dtype=self.dtype)
        return torch.from_numpy(np.ascontiguousarray(self.vals[:k])).to(self.dtype)

    def csr(self, R: int) -> torch.Tensor:
        """``x[:R]`` ``[R, n]`` as a sparse CSR tensor of the run's dtype."""
        if R not in self._csr:
            starts = np.searchsorted(self.rows, np.arange(R + 1))
            k = int(starts[-1])
            with warnings.catch_warnings():  # torch warns once that sparse CSR tensors are a beta feature
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
                self._csr[R] = torch.sparse_csr_tensor(
                    torch.from_numpy(starts.astype(np.int64, copy=False)),
                    torch.from_numpy(self.cols[:k].astype(np.int64, copy=False)),
                    self._values(k),
                    size=(R, self.n),
                    check_invariants=False,  # built from sorted positions
                )
        return self._csr[R]

    def deliver(self, R: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= x[:R] @ W`` for ``out`` ``[R, N_post]``."""
        _product(self.csr(R), W, out, accumulate)

    def weight_grad(self, R: int, G: torch.Tensor) -> torch.Tensor:
        """``x[:R]^T @ G`` ``[n, N_post]`` for ``G`` ``[R, N_post]``."""
        if R not in self._bags:
            k = int(np.searchsorted(self.rows, R))
            vals = None if self.vals is None else self.vals[:k]
            self._bags[R] = ColumnBags(self.rows[:k], self.cols[:k], self.n, vals, self.dtype)
        return self._bags[R].sum_rows(G)


class SpikeTrain:
    """One input population's spikes ``[T, B, N]`` (host array ``host`` of the run's dtype, or
    bool / uint8 counts), delivered to the run's ``device`` as ``dtype``.

    On the CPU, when few enough entries are non-zero, the spikes are kept as the positions of
    their non-zero entries only (and their counts where they are not all 1, :class:`Positions`),
    and no dense ``[T, B, N]`` float array is made unless :attr:`dense` is asked for.
    """

    def __init__(self, host: np.ndarray, device: torch.device, dtype: torch.dtype) -> None:
        self.host = host
        self.shape = tuple(host.shape)
        self.device = device
        self.dtype = dtype
        self._dense: torch.Tensor | None = None
        self._positions: Positions | None = None
        if devices.host_paths(device) and host.size:
            flat = host.reshape(-1)
            nz = flatnonzero(flat)
            if nz.size < SPARSE_BELOW * flat.size:
                vals = None if host.dtype == np.bool_ else flat[nz]
                if vals is not None and np.all(vals == 1):
                    vals = None  # plain 0/1 spikes: sums of rows, no weights
                self._positions = Positions(nz, vals, self.shape[2], dtype)

    @property
    def positions(self) -> Positions | None:
        """The positions of the spikes, where they are kept that way (CPU, sparse enough)."""
        return self._positions

    @property
    def dense(self) -> torch.Tensor:
        """All spikes ``[T, B, N]`` as a dense tensor of the run's dtype on the device."""
        if self._dense is None:
            self._dense = torch.from_numpy(self.host).to(self.device).to(self.dtype)
        return self._dense

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= x[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        if self._positions is not None:
            self._positions.deliver((T - delay) * B, W, out, accumulate)
        else:
            _product(self.dense[: T - delay].reshape(-1, n), W, out, accumulate)

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of x[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if self._positions is not None:
            return self._positions.weight_grad((T - delay) * B, G2)
        return xt_g(self.dense[: T - delay].reshape(-1, n), G2)


class StreamedInput:
    """One input population's spikes ``[T, B, N]`` kept on the host (the run's dtype, or bool /
    uint8 counts); :meth:`at` moves one step to the device as ``dtype``.  e-prop reads its inputs
    this way (one step, or a block of steps from :attr:`host`), so its device memory does not grow
    with ``T``."""

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
    (``steps``: for ``t`` in order, the flat indices of the non-zero entries of ``z[t]`` ``[B, N]``,
    ascending).  Products with the covered steps use them (:class:`Positions`, as for inputs);
    others fall back to dense products of ``dense``."""

    def __init__(self, dense: torch.Tensor, steps: list[np.ndarray], covered: int) -> None:
        self.dense = dense
        self.shape = tuple(dense.shape)
        self.covered = covered
        T, B, n = self.shape
        flat = np.concatenate([f + t * B * n for t, f in enumerate(steps)]) if steps else np.zeros(0, np.int64)
        self._positions = Positions(flat, None, n, dense.dtype)

    def deliver(self, delay: int, W: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
        """``out (+)= z[:T-delay] @ W`` for ``out`` ``[(T-delay) B, N_post]`` (``delay < T``)."""
        T, B, n = self.shape
        if T - delay > self.covered:
            _product(self.dense[: T - delay].reshape(-1, n), W, out, accumulate)
        else:
            self._positions.deliver((T - delay) * B, W, out, accumulate)

    def weight_grad(self, delay: int, G: torch.Tensor) -> torch.Tensor:
        """``sum over steps and batch of z[t - delay]^T G[t]`` for ``G = gI[delay:]`` ``[T-delay, B, N_post]``."""
        T, B, n = self.shape
        G2 = G.reshape(-1, G.shape[2])
        if T - delay > self.covered:
            return xt_g(self.dense[: T - delay].reshape(-1, n), G2)
        return self._positions.weight_grad((T - delay) * B, G2)
