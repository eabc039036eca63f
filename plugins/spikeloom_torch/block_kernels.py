"""The Numba kernels of :mod:`.block_forward` (their arguments are described there), imported the
first time a population runs a block of steps compiled.  Compiled on first use and cached next to
this file (``cache=True``)."""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import intrinsic

__all__ = ["gather_positions", "run_block"]


@intrinsic
def fma(typingctx, x, y, z):
    """``x * y + z`` rounded once, as torch's ``addcmul`` computes on the CPU (Numba would round
    the product and the sum separately); all three of one floating type."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return x(x, y, z), codegen


@numba.njit(parallel=True, cache=True, nogil=True)
def run_block(hext, W, delay, past, consts, n_ref, flags, I, V, a, z, ref, rec_V, rec_a, rec_z, rec_r, counts, cols):
    """``L`` steps of one LIF/ALIF population, one example per iteration; see
    :func:`.block_forward.BlockRunner.run` for the arguments."""
    L, B, J = rec_z.shape
    has_ext, has_rec, alif, delta, unit_gain, subtract, refractory = flags
    am, as_, g, vt, rho, beta = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    one = consts.dtype.type(1)
    zero = consts.dtype.type(0)
    for b in numba.prange(B):
        h = np.empty(J, dtype=V.dtype)
        acc = np.empty(J, dtype=V.dtype)
        Ib, Vb, ab, zb, rb = I[b], V[b], a[b], z[b], ref[b]
        for t in range(L):
            if has_ext:
                h[:] = hext[t, b]
            else:
                h[:] = 0
            if has_rec:
                ts = t - delay
                src = rec_z[ts, b] if ts >= 0 else past[-ts - 1, b]
                first = True
                for i in range(src.shape[0]):
                    if src[i] != 0:  # the row of W the spike selects, summed in column order
                        w = W[i]
                        if first:
                            acc[:] = w
                            first = False
                        else:
                            for j in range(J):
                                acc[j] += w[j]
                if not first:
                    for j in range(J):
                        h[j] += acc[j]
            # one simple loop per operation, the flags tested outside them: each loop vectorises
            zr, Vr = rec_z[t, b], rec_V[t, b]
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
                ar = rec_a[t, b]
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
            if subtract:
                for j in range(J):
                    Vb[j] = Vr[j] - vt[j] * zr[j]
            else:
                for j in range(J):
                    Vb[j] = Vr[j] * (one - zr[j])
            n = 0
            for j in range(J):
                zb[j] = zr[j]
                if zr[j] != zero:
                    cols[t, b, n] = j
                    n += 1
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
