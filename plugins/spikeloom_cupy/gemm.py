"""Matrix products through cuBLAS's ``sgemm``/``dgemm``, called with arguments prepared by hand.

The time loops make one product per step: dense delivery of a step's spikes, BPTT's adjoint
through a recurrent connection, e-prop's learning signals.  ``cupy.matmul`` and
``cupy.cublas.gemm`` examine and normalise their operands and build the scalars on every call,
and ``out += a @ w`` adds a temporary array and an addition kernel.  :class:`BlasGemm` takes
C-contiguous 2-d arrays, reads their shapes and addresses, and makes one ``gemm`` call that
accumulates into ``out`` through ``beta = 1``.

cuBLAS reads matrices column by column.  A C-contiguous ``[M, K]`` array is, to it, the
``[K, M]`` matrix with leading dimension ``K``: its transpose.  So ``out = a @ op(w)`` (``[M, N]``)
is computed as ``out^T = op(w)^T @ a^T``: ``gemm(opw, N, m=N, n=M, k=K, w, ldw, a, K, out, N)``,
where ``w`` is ``[K, N]`` (``opw = N``, ``ldw = N``) or, for ``a @ w.T``, ``[N, K]``
(``opw = T``, ``ldw = K``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLAS_GEMM", "BlasGemm", "cupy_gemm"]

#: the CuPy backend's products go through :class:`BlasGemm` (False: ``cupy.matmul``, as before it;
#: the benchmark's variant ``cupy-matmul``)
BLAS_GEMM = True


class BlasGemm:
    """``out (+)= a @ w`` or ``a @ w.T`` with one ``sgemm``/``dgemm`` call.

    ``lib``: the cuBLAS bindings (``cupy_backends.cuda.libs.cublas``: ``sgemm``, ``dgemm``,
    ``setPointerMode`` and the ``CUBLAS_OP_N``, ``CUBLAS_OP_T``, ``CUBLAS_POINTER_MODE_HOST``
    constants; the tests pass a stand-in that computes on host memory); ``handle``: returns the
    current device's cuBLAS handle; ``address``: an array's data address.  The scalars
    ``alpha = 1`` and ``beta`` (0 or 1) are read from host memory this object holds.
    """

    def __init__(self, lib, handle, dtype, address) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype == np.float32:
            self._fn = lib.sgemm
        elif self.dtype == np.float64:
            self._fn = lib.dgemm
        else:
            raise ValueError(f"BlasGemm dtype: float32 or float64, got {self.dtype}")
        self._lib = lib
        self._handle = handle
        self._address = address
        #: beta = 0 and alpha = beta = 1, at fixed host addresses
        self._scalars = np.array([0.0, 1.0], dtype=self.dtype)
        self._zero = self._scalars.ctypes.data
        self._one = self._zero + self.dtype.itemsize

    def __call__(self, a, w, out, *, trans_w: bool = False, accumulate: bool = True) -> None:
        """``out += a @ w`` (``a @ w.T`` with ``trans_w``; ``out = ...`` without ``accumulate``).
        ``a`` ``[M, K]``, ``w`` ``[K, N]`` (``[N, K]`` with ``trans_w``), ``out`` ``[M, N]``: all
        C-contiguous, of this object's dtype."""
        for name, x in (("a", a), ("w", w), ("out", out)):
            if x.ndim != 2 or x.dtype != self.dtype or not x.flags.c_contiguous:
                raise ValueError(
                    f"gemm {name}: needs a C-contiguous 2-d {self.dtype} array, got shape "
                    f"{x.shape}, dtype {x.dtype}, C-contiguous {x.flags.c_contiguous}"
                )
        M, K = a.shape
        N, Kw = (w.shape[0], w.shape[1]) if trans_w else (w.shape[1], w.shape[0])
        if Kw != K or out.shape != (M, N):
            op = "a @ w.T" if trans_w else "a @ w"
            raise ValueError(f"gemm: {op} of a {a.shape} and w {w.shape} does not fit out {out.shape}")
        if M == 0 or N == 0:
            return
        if K == 0:
            if not accumulate:
                out[...] = 0
            return
        lib = self._lib
        handle = self._handle()
        lib.setPointerMode(handle, lib.CUBLAS_POINTER_MODE_HOST)
        self._fn(
            handle,
            lib.CUBLAS_OP_T if trans_w else lib.CUBLAS_OP_N,
            lib.CUBLAS_OP_N,
            N,
            M,
            K,
            self._one,
            self._address(w),
            K if trans_w else N,
            self._address(a),
            K,
            self._one if accumulate else self._zero,
            self._address(out),
            N,
        )


def cupy_gemm(dtype) -> BlasGemm | None:
    """The :class:`BlasGemm` of CuPy's cuBLAS bindings and handles (needs CuPy); None, so that
    products go through ``cupy.matmul``, where :data:`BLAS_GEMM` is off or this CuPy has no
    ``cupy_backends.cuda.libs.cublas``."""
    if not BLAS_GEMM:
        return None
    from cupy.cuda import device

    try:
        from cupy_backends.cuda.libs import cublas
    except ImportError:
        return None

    return BlasGemm(cublas, device.get_cublas_handle, dtype, lambda x: x.data.ptr)
