"""One pass over the per-synapse states of a chunk of chunked e-prop (:mod:`.eprop_chunked`), on
the CPU, compiled with Numba.

A chunk reads, scales and adds to the states ``S`` ``[B, N_pre, states, N_post]`` (0.5 GB for
B = 256 and 956 presynaptic neurons in float32), and adds each spike's row of coefficients to
the gradient.  As separate torch operations that is four to six passes over ``S``; this kernel
makes one, row ``(b, i)`` at a time, the threads sharing out the presynaptic neurons ``i`` (each
owns its gradient rows)::

    grad[i]    += sum_n M0[b, n] * S[b, i, n]                       (the states' share, from S before the chunk)
    S[b, i, n]  = sum_m Mix[b, n, m] * S[b, i, m]                   (carried through the chunk)
    S[b, i, n] += sum_k p[k, b, i] coef[k, 1 + n, b]  + sum_x E[x, b, i] Eb[x, n, b]
    grad[i]    += sum_k p[k, b, i] coef[k, 0, b]

(all per postsynaptic neuron ``j``; ``p`` the chunk's delivered spikes, given by the rows and
steps of their non-zero entries).  The sums are those of the torch path in
:meth:`.chunk_spikes.ChunkSpikes.add_to_states` and :meth:`~.chunk_spikes.ChunkSpikes.weight_grad`, in
another order.  Numba is optional (the ``torch`` extra installs it): without it the torch
operations run.
"""

from __future__ import annotations

import numpy as np
import torch

try:  # optional: the torch operations of eprop_chunked run without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["AVAILABLE", "chunk_pass"]

#: whether the compiled pass can run (Numba importable)
AVAILABLE = numba is not None

if AVAILABLE:

    @numba.njit(cache=True, nogil=True)
    def _by_row(rows, ks, vals, n_rows):  # pragma: no cover - compiled
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
    def _pass(S, dims, fresh, update, grads, M0, Mix, coef, start, ks, vals, E, Eb):  # pragma: no cover - compiled
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


def chunk_pass(
    S: torch.Tensor | None,
    dims: tuple[int, int, int, int],
    fresh: bool,
    update: bool,
    grad: torch.Tensor,
    M0: torch.Tensor,
    Mix: torch.Tensor,
    coef: torch.Tensor,
    flat: np.ndarray,
    vals: np.ndarray | None,
    E: torch.Tensor,
    Eb: torch.Tensor,
) -> None:
    """The chunk's pass, in place on ``S`` and ``grad``.

    ``dims`` ``(B, I, n, J)``; ``S`` ``[B, I, n, J]`` the states before the chunk (``fresh``: all
    zero, not read; None when neither read nor updated), replaced by those after it when ``update``; ``grad`` ``[I, J]``; ``M0`` ``[B, n, J]`` and ``Mix``
    ``[B, n, n, J]`` the coefficients of the states before the chunk (read unless ``fresh``);
    ``coef`` ``[K, 1 + n, B, J]`` those of the spikes (row 0 for the gradient, rows ``1 + n`` for
    the states, read only when ``update``); the spikes as the flat indices ``flat`` of the non-zero
    entries of ``p`` ``[K, B, I]`` and their values (None: all 1); ``E`` ``[X, B, I]`` the
    presynaptic traces before the chunk and ``Eb`` ``[X, n, B, J]`` their coefficients.
    All tensors are contiguous CPU tensors of one floating dtype.
    """
    B, n_pre = dims[0], dims[1]
    dtype = grad.numpy().dtype
    k, rest = np.divmod(flat, B * n_pre)
    v = np.ones(flat.size, dtype=dtype) if vals is None else vals.astype(dtype)
    start, ks, vs = _by_row(rest, k, v, B * n_pre)
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, B))
    numba.set_num_threads(threads)
    if S is None:
        S = torch.empty((1, 1, 1, 1), dtype=grad.dtype)
    grads = np.zeros((threads,) + tuple(grad.shape), dtype=dtype)
    _pass(
        S.numpy(),
        dims,
        fresh,
        update,
        grads,
        M0.numpy(),
        Mix.numpy(),
        coef.numpy(),
        start,
        ks,
        vs,
        E.numpy(),
        Eb.numpy(),
    )
    grad += torch.from_numpy(grads.sum(axis=0))
