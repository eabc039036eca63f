"""The Numba kernels of :mod:`.block_forward` (their arguments are described there), imported the
first time a population runs a block of steps compiled.  Compiled on first use and cached next to
this file (``cache=True``)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from .chunk_kernels import surrogate_at

__all__ = ["gather_positions", "run_block", "scan_rows", "step_positions"]


@intrinsic
def fma(typingctx, x, y, z):
    """``x * y + z`` rounded once, as torch's ``addcmul`` computes on the CPU (Numba would round
    the product and the sum separately); all three of one floating type."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return x(x, y, z), codegen


@numba.njit(parallel=True, cache=True, nogil=True)
def run_block(
    hext,
    inp,
    W_in,
    W,
    delay,
    past,
    consts,
    n_ref,
    flags,
    I,
    V,
    a,
    z,
    ref,
    rec_V,
    rec_a,
    rec_z,
    rec_r,
    counts,
    cols,
    sg,
    rec_psi,
):
    """``L`` steps of one LIF/ALIF population, one example per iteration; see
    :func:`.block_forward.BlockRunner.run` for the arguments.  ``sg``: ``(kind, slope, scale)``
    of the surrogate written into ``rec_psi`` as :func:`.chunk_kernels.surrogate` computes it
    (kind -1: none); ``V`` and ``a`` are then not recorded (``rec_V`` and ``rec_a`` unused)."""
    L, B, J = rec_z.shape
    has_ext, has_in, has_rec, alif, delta, unit_gain, subtract, refractory = flags
    sg_kind, slope, scale = sg
    with_psi = sg_kind >= 0
    in_flat, in_bounds = inp
    n_in = W_in.shape[0]
    am, as_, g, vt, rho, beta = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    one = consts.dtype.type(1)
    zero = consts.dtype.type(0)
    for b in numba.prange(B):
        h = np.empty(J, dtype=V.dtype)
        acc = np.empty(J, dtype=V.dtype)
        V_row = np.empty(J, dtype=V.dtype)  # this step's V and a where they are not recorded
        a_row = np.empty(J, dtype=V.dtype)
        past_cols = np.empty(J, dtype=cols.dtype)  # the spiking columns of a step before the block
        Ib, Vb, ab, zb, rb = I[b], V[b], a[b], z[b], ref[b]
        for t in range(L):
            if has_ext:
                h[:] = hext[t, b]
            else:
                h[:] = 0
            if has_in:  # the input's 0/1 spikes: the rows of W_in they select, in column order
                r = t * B + b
                lo, hi = in_bounds[r], in_bounds[r + 1]
                if hi > lo:
                    acc[:] = W_in[in_flat[lo] - r * n_in]
                    for q in range(lo + 1, hi):
                        w = W_in[in_flat[q] - r * n_in]
                        for j in range(J):
                            acc[j] += w[j]
                    for j in range(J):
                        h[j] += acc[j]
            if has_rec:
                ts = t - delay
                if ts >= 0:  # a step of this block: its spiking columns are listed already
                    spiked, m = cols[ts, b], counts[ts, b]
                else:  # a step before the block: list them here, as below
                    src, spiked, m = past[-ts - 1, b], past_cols, 0
                    for i in range(src.shape[0]):
                        spiked[m] = i
                        m += src[i] != 0
                if m > 0:  # the rows of W the spikes select, summed in column order
                    acc[:] = W[spiked[0]]
                    for q in range(1, m):
                        w = W[spiked[q]]
                        for j in range(J):
                            acc[j] += w[j]
                    for j in range(J):
                        h[j] += acc[j]
            # one simple loop per operation, the flags tested outside them: each loop vectorises
            zr = rec_z[t, b]
            Vr = V_row if with_psi else rec_V[t, b]
            if delta:
                for j in range(J):
                    Ib[j] = h[j]
            else:
                for j in range(J):
                    Ib[j] = fma(as_[j], Ib[j], h[j])
            if unit_gain:
                for j in range(J):
                    Vr[j] = fma(am[j], Vb[j], Ib[j])
            else:
                for j in range(J):
                    Vr[j] = fma(am[j], Vb[j], g[j] * Ib[j])
            if alif:
                ar = a_row if with_psi else rec_a[t, b]
                for j in range(J):
                    ab[j] = fma(rho[j], ab[j], zb[j])
                    ar[j] = ab[j]
                for j in range(J):
                    zr[j] = one if Vr[j] >= fma(beta[j], ab[j], vt[j]) else zero
            else:
                for j in range(J):
                    zr[j] = one if Vr[j] >= vt[j] else zero
            if refractory:
                held = rec_r[t, b]
                for j in range(J):
                    held[j] = rb[j] > 0
                    if held[j]:
                        zr[j] = zero
                    rb[j] = n_ref[j] if zr[j] > zero else max(rb[j] - 1, 0)
            if with_psi:  # as chunk_kernels.surrogate computes it, then 0 while refractory
                pr = rec_psi[t, b]
                for j in range(J):
                    pr[j] = surrogate_at(Vr[j], ab[j], beta[j], vt[j], alif, sg_kind, slope, scale[j], one)
                if refractory:
                    held = rec_r[t, b]
                    for j in range(J):
                        if held[j]:
                            pr[j] = zero
            if subtract:
                for j in range(J):
                    Vb[j] = Vr[j] - vt[j] * zr[j]
            else:
                for j in range(J):
                    Vb[j] = Vr[j] * (one - zr[j])
            for j in range(J):
                zb[j] = zr[j]
            # the spiking columns, without a branch: every column is written at the next free
            # place, which moves on only past a spike (a branch per neuron mispredicts on
            # sparse spikes: 8-9 % of the kernel's time at B = 256, 256 ALIF)
            n = 0
            cr = cols[t, b]
            for j in range(J):
                cr[n] = j
                n += zr[j] != zero
            counts[t, b] = n


@numba.njit(parallel=True, cache=True, nogil=True)
def gather_positions(counts, cols, offsets, flat, columns, starts):
    """The spikes :func:`run_block` found, as :func:`.dynamics.spike_positions` gives them per step:
    ``flat[offsets[t]:offsets[t + 1]]`` the ascending indices ``b J + j`` of step ``t``, ``columns``
    their ``j``, ``starts[t, b]`` where example ``b``'s start within the step."""
    L, B, J = cols.shape
    for t in numba.prange(L):
        q = offsets[t]
        for b in range(B):
            starts[t, b] = q - offsets[t]
            for k in range(counts[t, b]):
                j = cols[t, b, k]
                flat[q] = b * J + j
                columns[q] = j
                q += 1


@intrinsic
def _popcount(typingctx, x):
    """The number of set bits of an unsigned integer."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@intrinsic
def _trailing_zeros(typingctx, x):
    """The number of trailing zero bits of a non-zero unsigned integer."""

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return x(x), codegen


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)


@numba.njit(inline="always")
def _nonzero_bytes(w):
    """The high bit of each non-zero byte of ``w``, nothing else."""
    return (((w & _LOW7) + _LOW7) | w) & _HIGH


@numba.njit(parallel=True, cache=True, nogil=True)
def scan_rows(x, words, n, counts, flat, fill):
    """The non-zero entries of the rows ``r`` (entries ``r n .. (r + 1) n - 1``) of the bytes ``x``
    (``words``: the same memory as ``uint64``, read eight entries at a time; most are all zero):
    ``counts[r]`` how many, or with ``fill`` their flat indices, ascending, written into ``flat``
    from ``counts[r]`` on (then the rows' starts).  Little-endian: entry ``8 k + m`` is byte ``m``
    of word ``k``."""
    R = counts.shape[0]
    for r in numba.prange(R):
        lo, hi = r * n, (r + 1) * n
        a = min(hi, (lo + 7) // 8 * 8)  # the row's whole words: a .. e
        e = max(a, hi // 8 * 8)
        q = counts[r] if fill else 0
        for i in range(lo, a):
            if x[i] != 0:
                if fill:
                    flat[q] = i
                q += 1
        for k in range(a >> 3, e >> 3):
            w = _nonzero_bytes(words[k])
            if fill:
                if w != 0:  # mostly one non-zero byte: take it without testing again
                    flat[q] = 8 * k + np.int64(
                        _trailing_zeros(w) >> np.uint64(3)
                    )  # int64 (Numba's int64 + uint64 is a float)
                    q += 1
                    w &= w - np.uint64(1)
                    while w != 0:
                        flat[q] = 8 * k + np.int64(_trailing_zeros(w) >> np.uint64(3))
                        q += 1
                        w &= w - np.uint64(1)
            else:
                q += np.int64(_popcount(w))
        for i in range(e, hi):
            if x[i] != 0:
                if fill:
                    flat[q] = i
                q += 1
        if not fill:
            counts[r] = q


@numba.njit(inline="always")
def _take(i, q, b, row_end, n, flat, cols, starts):
    """Entry ``i`` (ascending) becomes spike ``q``: the rows before its own are closed first."""
    while i >= row_end:
        b += 1
        starts[b] = q
        row_end += n
    flat[q] = i
    cols[q] = i - (row_end - n)
    return b, row_end


@numba.njit(cache=True, nogil=True)
def step_positions(bits, words, per_word, n, flat, cols, starts):
    """The non-zero entries of one step's spikes ``[B, n]`` of a floating dtype, as
    :func:`.dynamics.spike_positions` gives them: their flat indices (ascending) written into
    ``flat``, their columns into ``cols``, where each example's start into ``starts`` ``[B]``;
    returns how many, or -1 once there are more than ``flat.size`` of them (the caller's limit).

    ``bits``: the entries' bit patterns (``uint32`` for float32, ``uint64`` for float64);
    ``words``: their leading whole ``uint64`` words, ``per_word`` entries each, skipped while all
    zero (most are).  An entry is non-zero where its bits other than the sign are (``-0.0 == 0``).
    """
    limit = flat.shape[0]
    sign_free = bits.dtype.type(~(bits.dtype.type(1) << bits.dtype.type(8 * bits.itemsize - 1)))
    q, b, row_end = 0, 0, n
    starts[0] = 0
    for k in range(words.shape[0]):
        if words[k] != 0:
            for i in range(k * per_word, (k + 1) * per_word):
                if bits[i] & sign_free != 0:
                    if q == limit:
                        return -1
                    b, row_end = _take(i, q, b, row_end, n, flat, cols, starts)
                    q += 1
    for i in range(words.shape[0] * per_word, bits.shape[0]):
        if bits[i] & sign_free != 0:
            if q == limit:
                return -1
            b, row_end = _take(i, q, b, row_end, n, flat, cols, starts)
            q += 1
    for r in range(b + 1, starts.shape[0]):
        starts[r] = q
    return q
