"""The Numba kernel of :mod:`.column_bags`, imported the first time a product runs compiled.
Compiled on first use and cached next to this file (``cache=True``)."""

from __future__ import annotations

import numba

__all__ = ["add_selected_rows"]


@numba.njit(parallel=True, cache=True, nogil=True)
def add_selected_rows(rows, cols, vals, weighted, G, out):
    """``out[p, cols[q]] += vals[q] G[rows[q]]`` (``vals`` read only when ``weighted``) for the
    entries ``q`` of part ``p`` of ``out`` ``[P, n, M]``: the entries are cut into ``P``
    consecutive parts, one per thread, each adding into its own zeroed ``[n, M]``.  Entries in
    ascending ``rows`` read ``G`` once from start to end; the ``n`` rows added to stay in cache."""
    P, M = out.shape[0], G.shape[1]
    k = rows.shape[0]
    for p in numba.prange(P):
        acc = out[p]
        for q in range(k * p // P, k * (p + 1) // P):
            g, a = G[rows[q]], acc[cols[q]]
            if weighted:
                v = vals[q]
                for m in range(M):
                    a[m] += v * g[m]
            else:
                for m in range(M):
                    a[m] += g[m]
