"""The Numba kernels of :mod:`.state_pass`, imported the first time the pass runs (importing Numba
and loading its compiled code adds about 160 MiB to the process).  Compiled on first use and
cached next to this file (``cache=True``)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["by_row", "pass_rows"]


@numba.njit(cache=True, nogil=True)
def by_row(rows, ks, vals, n_rows):
    """Counting sort of the entries by row: ``(start [n_rows + 1], k, value)`` grouped by row."""
    start = np.zeros(n_rows + 1, dtype=np.int64)
    for r in rows:
        start[r + 1] += 1
    for r in range(n_rows):
        start[r + 1] += start[r]
    at = start[:-1].copy()
    k_out = np.empty(rows.size, dtype=np.int64)
    v_out = np.empty(rows.size, dtype=vals.dtype)
    for q in range(rows.size):
        r = rows[q]
        k_out[at[r]] = ks[q]
        v_out[at[r]] = vals[q]
        at[r] += 1
    return start, k_out, v_out


@numba.njit(parallel=True, cache=True, nogil=True)
def pass_rows(S, dims, fresh, update, grads, M0, Mix, coef, start, ks, vals, E, Eb):
    B, n_pre, n_states, J = dims
    X = E.shape[0]
    parts = grads.shape[0]
    for part in numba.prange(parts):  # part: a contiguous range of examples, its own gradient
        grad = grads[part]
        old = np.empty((n_states, J), dtype=grads.dtype)
        for b in range(part * B // parts, (part + 1) * B // parts):
            for i in range(n_pre):
                g = grad[i]
                if not fresh:
                    s = S[b, i]
                    for n in range(n_states):
                        m0, sn = M0[b, n], s[n]
                        for j in range(J):
                            g[j] += m0[j] * sn[j]
                    if update:
                        for n in range(n_states):
                            for j in range(J):
                                old[n, j] = s[n, j]
                        for n in range(n_states):
                            sn, mix = s[n], Mix[b, n]
                            for j in range(J):
                                sn[j] = mix[0, j] * old[0, j]
                            for m in range(1, n_states):
                                for j in range(J):
                                    sn[j] += mix[m, j] * old[m, j]
                elif update:
                    S[b, i] = 0
                r = b * n_pre + i
                for q in range(start[r], start[r + 1]):
                    k, v = ks[q], vals[q]
                    c = coef[k, 0, b]
                    for j in range(J):
                        g[j] += v * c[j]
                    if update:
                        s = S[b, i]
                        for n in range(n_states):
                            sn, c = s[n], coef[k, 1 + n, b]
                            for j in range(J):
                                sn[j] += v * c[j]
                if update:
                    s = S[b, i]
                    for x in range(X):
                        e = E[x, b, i]
                        if e != 0:
                            for n in range(n_states):
                                sn, c = s[n], Eb[x, n, b]
                                for j in range(J):
                                    sn[j] += e * c[j]
