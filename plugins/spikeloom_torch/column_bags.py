"""``x^T G`` for a sparse matrix ``x`` ``[R, N]`` known by the positions of its non-zero entries:
for each column of ``x``, the sum of the rows of ``G`` ``[R, M]`` that its entries select (one
"bag" of ``torch.nn.functional.embedding_bag``).

Taken over all ``R`` rows at once, the rows a column selects lie anywhere in ``G`` (hundreds of
MiB for a weight gradient at T = 1000, B = 256), and each row added is a cache miss.  Here the
rows of ``x`` are cut into blocks of :data:`BLOCK_ROWS`: each block is one ``embedding_bag`` over
its own rows of ``G`` (a few MiB, which stay in the cache), and the blocks' results are added up.
The order of the sums differs from a dense product's, not the terms.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ColumnBags", "BLOCK_ROWS"]

#: rows of ``x`` (and ``G``) per block: 2 MiB of ``G`` at 256 float32 columns
BLOCK_ROWS = 2048


class ColumnBags:
    """The entries ``(rows[k], cols[k])`` of ``x`` ``[R, n]`` (``rows`` ascending; ``vals`` their
    values, None where all are 1) grouped by block of rows, then by column (stable)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n: int, vals: np.ndarray | None, dtype: torch.dtype) -> None:
        self.n = n
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
        self._vals = None if vals is None else torch.from_numpy(np.ascontiguousarray(vals[order])).to(dtype)
        self._blocks = [(b, int(bounds[b]), int(bounds[b + 1])) for b in range(n_blocks) if bounds[b + 1] > bounds[b]]

    def sum_rows(self, G: torch.Tensor) -> torch.Tensor:
        """``x^T G`` ``[n, M]`` for ``G`` ``[R, M]``."""
        g = torch.zeros((self.n, G.shape[1]), dtype=G.dtype, device=G.device)
        for b, s, e in self._blocks:
            w = None if self._vals is None else self._vals[s:e]
            g.add_(
                torch.nn.functional.embedding_bag(
                    self._rows[s:e], G, self._offsets[b], mode="sum", per_sample_weights=w
                )
            )
        return g
