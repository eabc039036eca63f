"""A stand-in for the cuBLAS bindings that :class:`spikeloom_cupy.gemm.BlasGemm` calls, computing on
host memory: ``sgemm``/``dgemm`` read their matrices column by column from the addresses, leading
dimensions and operations they are given, as the BLAS reference defines them.  With it the
emulated backend runs the same ``gemm`` arguments that CuPy passes to cuBLAS on a GPU.
"""

from __future__ import annotations

import ctypes
from collections import Counter

import numpy as np

from spikeloom_cupy.gemm import BlasGemm

CUBLAS_OP_N = 0
CUBLAS_OP_T = 1
CUBLAS_POINTER_MODE_HOST = 0
CUBLAS_POINTER_MODE_DEVICE = 1

#: calls by name, for the tests
CALLS: Counter = Counter()

_HANDLE = 7
_modes = {_HANDLE: CUBLAS_POINTER_MODE_DEVICE}


def get_handle() -> int:
    return _HANDLE


def setPointerMode(handle, mode) -> None:  # noqa: N802 - the binding's name
    if handle not in _modes:
        raise ValueError(f"setPointerMode: unknown handle {handle!r}")
    _modes[handle] = mode


def _matrix(address: int, rows: int, cols: int, ld: int, dtype) -> np.ndarray:
    """The column-major ``rows x cols`` matrix at ``address`` with leading dimension ``ld``, as a
    writable view."""
    dtype = np.dtype(dtype)
    n = ld * (cols - 1) + rows
    buf = (ctypes.c_char * (n * dtype.itemsize)).from_address(address)
    flat = np.frombuffer(buf, dtype=dtype, count=n)
    return np.lib.stride_tricks.as_strided(flat, shape=(rows, cols), strides=(dtype.itemsize, ld * dtype.itemsize))


def _scalar(address: int, dtype) -> float:
    return float(np.frombuffer((ctypes.c_char * np.dtype(dtype).itemsize).from_address(address), dtype=dtype)[0])


def _gemm(dtype, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) -> None:
    CALLS[np.dtype(dtype).char + "gemm"] += 1
    if _modes.get(handle) != CUBLAS_POINTER_MODE_HOST:
        raise ValueError("gemm: scalars are read from host memory only in CUBLAS_POINTER_MODE_HOST")
    if min(m, n, k) < 0 or transa not in (0, 1) or transb not in (0, 1):
        raise ValueError(f"gemm: invalid value (m, n, k, transa, transb) = {(m, n, k, transa, transb)}")
    a_rows, a_cols = (k, m) if transa else (m, k)
    b_rows, b_cols = (n, k) if transb else (k, n)
    for name, ld, rows in (("lda", lda, a_rows), ("ldb", ldb, b_rows), ("ldc", ldc, m)):
        if ld < max(1, rows):
            raise ValueError(f"gemm: {name} = {ld} below the matrix's {rows} rows")
    opA = _matrix(A, a_rows, a_cols, lda, dtype)
    opB = _matrix(B, b_rows, b_cols, ldb, dtype)
    opA, opB = (opA.T if transa else opA), (opB.T if transb else opB)
    c = _matrix(C, m, n, ldc, dtype)
    a_, b_ = _scalar(alpha, dtype), _scalar(beta, dtype)
    prod = np.matmul(opA, opB)
    if a_ != 1.0:
        prod = prod * dtype(a_)
    # beta = 0: C is written without being read (it may hold anything, NaN included)
    c[...] = prod if b_ == 0.0 else ((c * dtype(b_) if b_ != 1.0 else c) + prod)


def sgemm(*args) -> None:
    _gemm(np.float32, *args)


def dgemm(*args) -> None:
    _gemm(np.float64, *args)


def host_gemm(dtype) -> BlasGemm:
    """A :class:`BlasGemm` that runs on NumPy arrays through this module."""
    import sys

    return BlasGemm(sys.modules[__name__], get_handle, dtype, lambda x: x.ctypes.data)
