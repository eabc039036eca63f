"""The Numba kernels of :mod:`.chunk_compiled` (their arguments are described there), imported
the first time a chunk runs compiled: importing Numba and loading its compiled code adds about
160 MiB to the process.  Compiled on first use and cached next to this file (``cache=True``)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["backward", "backward_one", "carry2", "filter_ends", "fold", "pass_rows", "row_bounds", "surrogate"]


@numba.njit(cache=True, nogil=True)
def carry2(s0, s1, g, m00, m01, x00, x01, x10, x11, e0, e1, b00, b01, b10, b11):
    """One row of :func:`pass_rows` with two states and two presynaptic traces, in one loop over
    ``j``: the states' share of the gradient, their carry through the chunk and the traces before
    it (with a loop per state and trace, the pass took about a sixth more time on the benchmark's
    shapes at B = 256, timed alone)."""
    for j in range(g.shape[0]):
        a, c = s0[j], s1[j]
        g[j] = g[j] + m00[j] * a + m01[j] * c
        s0[j] = x00[j] * a + x01[j] * c + e0 * b00[j] + e1 * b10[j]
        s1[j] = x10[j] * a + x11[j] * c + e0 * b01[j] + e1 * b11[j]


@numba.njit(parallel=True, cache=True, nogil=True)
def pass_rows(
    S, dims, fresh, update, grads, M0, Mix, coef, Ks, flat, bounds, vals, unit, E, Eb,
    redo, Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds,
):  # fmt: skip
    """:func:`.chunk_compiled.chunk_pass` on numpy arrays: ``grads`` ``[parts, I, J]`` (one gradient
    per part of the examples); ``coef`` ``[G', K, rows, B, J]`` the coefficients of the ``G``
    chunks, of which chunk ``h`` has ``Ks[h]`` steps: all of them (``G' = G``), or with ``redo``
    all but the last (``G' = G - 1``), whose coefficients :func:`backward_one` recomputes per
    example from its arguments ``Psi`` to ``seeds``; the spikes' flat indices
    ``flat`` (chunk after chunk, each ascending into its ``[K_h, B, I]``), ``bounds``
    ``[G, K B + 1]`` where each chunk's ``(k, b)`` starts in ``flat``, their values ``vals`` (all 1
    when ``unit``)."""
    B, n_pre, n_states, J = dims
    X = E.shape[0]
    parts = grads.shape[0]
    G, K, rows = Ks.shape[0], coef.shape[1], coef.shape[2]
    C = out_c.shape[1]
    S_redo = rows if update else 1  # the run's last chunk keeps only the gradient's row
    fused = not fresh and update and n_states == 2 and X == 2  # e.g. the benchmark's ALIF: carry2
    for part in numba.prange(parts):  # part: a contiguous range of examples, its own gradient
        grad = grads[part]
        old = np.empty((n_states, J), dtype=grads.dtype)
        # example b's spike coefficients, copied together: coef[k, n, b] for all k and n lie
        # B J apart, a power of two in the benchmarks, and would evict each other from the caches
        cb = np.empty((G, K, rows, 1, J), dtype=coef.dtype)
        # the recursion's adjoints and scratch where the last chunk's coefficients are recomputed
        lw, lu = np.empty((S_redo, C, 1, J), dtype=coef.dtype), np.empty((S_redo, C, 1, J), dtype=coef.dtype)
        la, lx = np.empty((S_redo, 1, J), dtype=coef.dtype), np.empty((S_redo, 1, J), dtype=coef.dtype)
        le = np.empty(J, dtype=coef.dtype)
        # example b's spikes of chunk h by row i: ks, vs[start[h, i]:start[h, i + 1]]
        start = np.empty((G, n_pre + 1), dtype=np.int64)
        at = np.empty(n_pre, dtype=np.int64)
        for b in range(part * B // parts, (part + 1) * B // parts):
            # counting sort of example b's spikes by chunk, then row (they come ordered by step, then row)
            total = 0
            for h in range(G):
                for k in range(Ks[h]):
                    total += bounds[h, k * B + b + 1] - bounds[h, k * B + b]
            ks = np.empty(total, dtype=np.int64)
            vs = np.empty(total, dtype=vals.dtype)
            done = 0
            for h in range(G):
                st = start[h]
                st[:] = 0
                for k in range(Ks[h]):
                    base = (k * B + b) * n_pre
                    for q in range(bounds[h, k * B + b], bounds[h, k * B + b + 1]):
                        st[flat[q] - base + 1] += 1
                st[0] = done
                for i in range(n_pre):
                    st[i + 1] += st[i]
                at[:] = st[:-1]
                for k in range(Ks[h]):
                    base = (k * B + b) * n_pre
                    for q in range(bounds[h, k * B + b], bounds[h, k * B + b + 1]):
                        i = flat[q] - base
                        ks[at[i]] = k
                        vs[at[i]] = 1 if unit else vals[q]
                        at[i] += 1
                if st[n_pre] > done:
                    if redo and h == G - 1:
                        # fmt: off
                        backward_one(Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds,
                                     b, cb[h], 0, lw, lu, la, lx, 0, le)
                        # fmt: on
                    else:
                        for k in range(Ks[h]):
                            for n in range(rows if update else 1):
                                cb[h, k, n, 0] = coef[h, k, n, b]
                done = st[n_pre]
            for i in range(n_pre):
                g = grad[i]
                if fused:
                    s = S[b, i]
                    carry2(
                        s[0],
                        s[1],
                        g,
                        M0[b, 0],
                        M0[b, 1],
                        Mix[b, 0, 0],
                        Mix[b, 0, 1],
                        Mix[b, 1, 0],
                        Mix[b, 1, 1],
                        E[0, b, i],
                        E[1, b, i],
                        Eb[0, 0, b],
                        Eb[0, 1, b],
                        Eb[1, 0, b],
                        Eb[1, 1, b],
                    )
                elif not fresh:
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
                for h in range(G):
                    for q in range(start[h, i], start[h, i + 1]):
                        k, v = ks[q], vs[q]
                        c = cb[h, k, 0, 0]
                        for j in range(J):
                            g[j] += v * c[j]
                        if update:
                            s = S[b, i]
                            for n in range(n_states):
                                sn, c = s[n], cb[h, k, 1 + n, 0]
                                for j in range(J):
                                    sn[j] += v * c[j]
                if update and not fused:
                    s = S[b, i]
                    for x in range(X):
                        e = E[x, b, i]
                        if e != 0:
                            for n in range(n_states):
                                sn, c = s[n], Eb[x, n, b]
                                for j in range(J):
                                    sn[j] += e * c[j]


@numba.njit(inline="always")
def surrogate_at(v, a, beta, v_thresh, alif, kind, slope, scale, one):
    """The surrogate of ``d = v - theta`` for one neuron, with the operations in the order (and the
    rounding) of the torch path (``v - (a beta + v_thresh)``, then :mod:`.surrogate_ops`):
    ``kind`` 0, SuperSpike ``1 / (slope |d| + 1)^2``; 1, Triangle ``max(0, 1 - |d| / v_thresh)
    scale`` (``scale``: gamma / v_thresh as torch computes it).  ``one`` is 1 in the arrays'
    dtype (a Python 1.0 would compute in float64).  Shared by :func:`surrogate` and the forward
    pass's :func:`.block_kernels.run_block`."""
    zero = one - one
    if alif:
        t = a * beta
        t = t + v_thresh
        d = v - t
    else:
        d = v - v_thresh
    if kind == 0:
        y = abs(d) * slope
        y = y + one
        return one / (y * y)
    y = abs(d) / v_thresh
    y = one - y
    return (zero if y < zero else y) * scale  # a NaN stays NaN, as with clamp_min


@numba.njit(parallel=True, cache=True, nogil=True)
def surrogate(x, out, a, beta, v_thresh, kind, slope, scale, one, alif):
    """:func:`.chunk_compiled.surrogate_` on numpy arrays: ``x`` ``[K, B, J]`` the membrane
    potentials, ``a`` the adaptation (read with ``alif``); :func:`surrogate_at` of each written
    into ``out`` (which may be ``x``)."""
    K, B, J = x.shape
    for kb in numba.prange(K * B):
        xr = x[kb // B, kb % B]
        yr = out[kb // B, kb % B]
        ar = a[kb // B, kb % B]
        for j in range(J):
            yr[j] = surrogate_at(xr[j], ar[j], beta[j], v_thresh[j], alif, kind, slope, scale[j], one)


@numba.njit(cache=True, nogil=True)
def row_bounds(flat, n_pre, rows):
    """``bounds`` ``[rows + 1]``: where each row ``r`` (entries ``r n_pre .. (r + 1) n_pre - 1``)
    starts in the ascending indices ``flat``; ``np.searchsorted(flat, arange(rows + 1) n_pre)`` in
    one pass instead of a binary search per row."""
    bounds = np.empty(rows + 1, dtype=np.int64)
    q, n = 0, flat.shape[0]
    for r in range(rows + 1):  # ascending: a merge, no division per spike
        while q < n and flat[q] < r * n_pre:
            q += 1
        bounds[r] = q
    return bounds


@numba.njit(parallel=True, cache=True, nogil=True)
def filter_ends(flat, bounds, vals, unit, wk, ends):
    """:func:`.chunk_compiled.filter_ends` on numpy arrays: ``ends[w, b, i] = sum_k wk[w, k] p[k, b, i]``
    for the spikes ``flat`` (``bounds`` from :func:`row_bounds`) with values ``vals`` (all 1 when
    ``unit``), one example per iteration, summed in float64."""
    W, B, n_pre = ends.shape
    K = wk.shape[1]
    for b in numba.prange(B):
        acc = np.zeros((n_pre, W))
        for k in range(K):
            base = (k * B + b) * n_pre
            for q in range(bounds[k * B + b], bounds[k * B + b + 1]):
                v = 1.0 if unit else vals[q]
                for w in range(W):
                    acc[flat[q] - base, w] += wk[w, k] * v
        for w in range(W):
            for i in range(n_pre):
                ends[w, b, i] = acc[i, w]


@numba.njit(parallel=True, cache=True, nogil=True)
def fold(coef, R, Q, W, w, update):
    """:func:`.chunk_compiled.fold_coefs` on numpy arrays, one example per iteration."""
    K, rows, B, J = coef.shape
    n_states = rows - 1
    X = W.shape[0]
    for b in numba.prange(B):
        new = np.empty((n_states, J), dtype=coef.dtype)
        for k in range(K):
            c = coef[k]
            g = c[0, b]
            for m in range(n_states):
                r, cm = R[b, m], c[1 + m, b]
                for j in range(J):
                    g[j] += r[j] * cm[j]
            if not update:
                continue
            for n in range(n_states):
                nn, q = new[n], Q[b, n]
                for j in range(J):
                    nn[j] = q[0, j] * c[1, b, j]
                for m in range(1, n_states):
                    cm = c[1 + m, b]
                    for j in range(J):
                        nn[j] += q[m, j] * cm[j]
                for x in range(X):
                    wx, wn = w[x, k], W[x, n, b]
                    for j in range(J):
                        nn[j] += wx * wn[j]
            for n in range(n_states):
                c[1 + n, b] = new[n]


@numba.njit(cache=True, nogil=True)
def backward_one(Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds, b, coef, bc, lw, lu, la, lx, bl, le):
    """Example ``b``'s backward recursion over the chunk's steps (arguments as :func:`backward`'s):
    writes ``coef[:, :S, bc]`` and the adjoints ``lw[:, :, bl]``, ``lu[:, :, bl]``, ``la[:, bl]``,
    ``lx[:, bl]`` before the chunk; ``le`` ``[J]`` scratch.  Shared by :func:`backward` and
    :func:`pass_rows` (which recomputes a group's last chunk per example into its own scratch)."""
    K, J = Psi.shape[0], Psi.shape[2]
    S, C = lw.shape[0], lw.shape[1]
    has_sig, has_reg, zero_reset, alif, out_delta, out_unit_gain, pop_delta, unit_gain, per_syn, seed = flags
    row_a, row_x, row_I = seeds[0], seeds[1], seeds[2]
    p_am, p_as, p_g = pop_c[0], pop_c[1], pop_c[2]
    for s in range(S):
        for c in range(C):
            lw[s, c, bl] = 0
            lu[s, c, bl] = 0
        la[s, bl] = 0
        lx[s, bl] = 0
    if seed and alif:
        la[row_a, bl] = 1
    for k in range(K - 1, -1, -1):
        psi = Psi[k, b]
        first = seed and k == K - 1
        for s in range(S):
            le[:] = 0
            for c in range(C):
                w, u = lw[s, c, bl], lu[s, c, bl]
                am, as_, g = out_c[0, c], out_c[1, c], out_c[2, c]
                for j in range(J):
                    w[j] *= am
                if has_sig and s == 0:
                    sig = Sig[k, c, b]
                    for j in range(J):
                        w[j] += sig[j]
                if first and s == seeds[3 + c]:
                    for j in range(J):
                        w[j] += 1
                if out_delta:
                    for j in range(J):
                        u[j] = w[j] if out_unit_gain else g * w[j]
                else:
                    for j in range(J):
                        u[j] = (w[j] if out_unit_gain else g * w[j]) + as_ * u[j]
                    if first and s == seeds[3 + C + c]:
                        for j in range(J):
                            u[j] += 1
                for j in range(J):
                    le[j] += u[j]
            for j in range(J):
                le[j] = psi[j] * le[j]
            if has_reg and s == 0:
                reg = Reg[k, b]
                for j in range(J):
                    le[j] += reg[j]
            x = lx[s, bl]
            if alif:
                a = la[s, bl]
                for j in range(J):
                    ax = le[j] + psi[j] * a[j]
                    a[j] = a[j] * (rho[j] - psi[j] * beta[j]) - beta[j] * le[j]
                    le[j] = ax
            if zero_reset:
                keep = Keep[k, b]
                for j in range(J):
                    x[j] = le[j] + p_am[j] * keep[j] * x[j]
            else:
                for j in range(J):
                    x[j] = le[j] + p_am[j] * x[j]
            if first and per_syn and s == row_x:
                for j in range(J):
                    x[j] += 1
            out = coef[k, s, bc]
            for j in range(J):
                out[j] = x[j] if unit_gain else p_g[j] * x[j]
            if not pop_delta:
                if k + 1 < K:
                    later = coef[k + 1, s, bc]
                    for j in range(J):
                        out[j] += p_as[j] * later[j]
                if first and per_syn and s == row_I:
                    for j in range(J):
                        out[j] += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def backward(Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds, coef, store, lw, lu, la, lx, lI, parts):
    """The chunk's backward recursion over its steps (see ``_ChunkedPop._chunk``), per example.

    ``Psi``, ``Reg``, ``Keep`` ``[K, B, J]`` (the last two read only where ``flags`` says so),
    ``Sig`` ``[K, C, B, J]``; ``out_c`` ``[3, C]`` the readout channels' (alpha_mem, alpha_syn, g);
    ``pop_c`` ``[3, J]`` the population's (alpha_mem, alpha_syn, g); ``flags``: has_sig, has_reg,
    zero_reset, alif, out_delta, out_unit_gain, pop_delta, unit_gain, per_syn, seed; ``seeds``:
    the rows of a, x, I, then of w and u per channel (-1: none).  Writes the adjoints ``lw``,
    ``lu`` ``[S, C, B, J]``, ``la``, ``lx`` ``[S, B, J]`` before the chunk, and ``coef[:, :S]``
    (``[K, S, B, J]``) when ``store``; otherwise each of the ``parts`` shares of the examples keeps
    them in a scratch ``[K, S, J]`` and only their first step, the adjoint of eps_I before the
    chunk, is written, into ``lI`` ``[S, B, J]``."""
    K, B, J = Psi.shape
    S = lw.shape[0]
    for part in numba.prange(parts):
        le = np.empty(J, dtype=Psi.dtype)
        scratch = np.empty((K, S, 1, J), dtype=Psi.dtype)
        for b in range(part * B // parts, (part + 1) * B // parts):
            if store:
                backward_one(
                    Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds, b, coef, b, lw, lu, la, lx, b, le
                )
            else:
                backward_one(
                    Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds, b, scratch, 0, lw, lu, la, lx, b, le
                )
                for s in range(S):
                    lI[s, b] = scratch[0, s, 0]
