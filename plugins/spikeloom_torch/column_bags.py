"""``x^T G`` for a sparse matrix ``x`` ``[R, N]`` known by the positions of its non-zero entries:
for each column of ``x``, the sum of the rows of ``G`` ``[R, M]`` that its entries select (one
"bag" of ``torch.nn.functional.embedding_bag``).

Taken over all ``R`` rows at once, the rows a column selects lie anywhere in ``G`` (hundreds of
MiB for a weight gradient at T = 1000, B = 256), and each row added is a cache miss.  Here the
rows of ``x`` are cut into blocks of :data:`BLOCK_ROWS`: each block is one ``embedding_bag`` over
its own rows of ``G`` (a few MiB, which stay in the cache), and the blocks' results are added up.
With Numba, for enough work (:data:`COMPILED_MIN_WORK`), one compiled call adds the rows instead
(:func:`.bag_kernels.add_selected_rows`): the entries in row order, one share per thread, each
adding into its own ``[n, M]``, with no sorting (a BPTT step at T = 1000, B = 256 took 0.89 of
its time with it).  The order of the sums differs from a dense product's, not the terms.
"""

from __future__ import annotations

import numpy as np
import torch

from . import chunk_compiled, devices

__all__ = ["ColumnBags", "BLOCK_ROWS", "COMPILED_MIN_WORK"]

#: rows of ``x`` (and ``G``) per block: 2 MiB of ``G`` at 256 float32 columns
BLOCK_ROWS = 2048

#: the compiled kernel runs from this many additions (entries x columns of ``G``) on; below it a
#: training step need not load Numba (about 160 MiB of resident memory and a second)
COMPILED_MIN_WORK = 1 << 25


def _compiled(entries: int, G: torch.Tensor) -> bool:
    return (
        chunk_compiled.AVAILABLE
        and entries * G.shape[1] >= COMPILED_MIN_WORK
        and devices.host_paths(G.device)
        and G.dtype in (torch.float32, torch.float64)
    )


class ColumnBags:
    """The entries ``(rows[k], cols[k])`` of ``x`` ``[R, n]`` (``rows`` ascending; ``vals`` their
    values, None where all are 1); the torch path groups them by block of rows, then by column
    (stable), when it first runs."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n: int, vals: np.ndarray | None, dtype: torch.dtype) -> None:
        self.n, self.dtype = n, dtype
        self._entries = (rows, cols, vals)
        self._bags = None  # the blocks' bags, made when first needed

    def _make_bags(self) -> None:
        rows, cols, vals = self._entries
        n = self.n
        n_blocks = -(-(int(rows[-1]) + 1) // BLOCK_ROWS) if rows.size else 0
        bounds = np.searchsorted(rows, np.arange(n_blocks + 1) * BLOCK_ROWS)
        keys = cols.astype(np.uint16) if n <= 2**16 else cols  # small keys: numpy's stable sort is a radix sort
        order = np.empty(rows.size, dtype=np.int64)
        offsets = np.zeros((n_blocks, n), dtype=np.int64)  # where each column's bag starts in its block
        for b in range(n_blocks):
            s, e = bounds[b], bounds[b + 1]
            order[s:e] = np.argsort(keys[s:e], kind="stable") + s
            np.cumsum(np.bincount(keys[s:e], minlength=n)[:-1], out=offsets[b, 1:])
        self._rows = torch.from_numpy(rows[order].astype(np.int64, copy=False))
        self._offsets = torch.from_numpy(offsets)
        self._vals = None if vals is None else torch.from_numpy(np.ascontiguousarray(vals[order])).to(self.dtype)
        self._bags = [(b, int(bounds[b]), int(bounds[b + 1])) for b in range(n_blocks) if bounds[b + 1] > bounds[b]]

    def sum_rows(self, G: torch.Tensor) -> torch.Tensor:
        """``x^T G`` ``[n, M]`` for ``G`` ``[R, M]``."""
        rows, cols, vals = self._entries
        if _compiled(rows.size, G):
            return self._sum_rows_compiled(G)
        if self._bags is None:
            self._make_bags()
        g = torch.zeros((self.n, G.shape[1]), dtype=G.dtype, device=G.device)
        for b, s, e in self._bags:
            w = None if self._vals is None else self._vals[s:e]
            g.add_(
                torch.nn.functional.embedding_bag(
                    self._rows[s:e], G, self._offsets[b], mode="sum", per_sample_weights=w
                )
            )
        return g

    def _sum_rows_compiled(self, G: torch.Tensor) -> torch.Tensor:
        from .bag_kernels import add_selected_rows

        rows, cols, vals = self._entries
        G = G.contiguous()
        P = chunk_compiled.numba_threads()
        out = torch.zeros((P, self.n, G.shape[1]), dtype=G.dtype)
        dt = G.numpy().dtype
        weights = np.zeros(1, dtype=dt) if vals is None else np.ascontiguousarray(vals, dtype=dt)
        add_selected_rows(
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(cols, dtype=np.int64),
            weights,
            vals is not None,
            G.numpy(),
            out.numpy(),
        )
        return out.sum(dim=0) if P > 1 else out[0]
