"""``BlasGemm``'s cuBLAS arguments, run through the stand-in of ``emulation/blas.py``, which reads
the matrices column by column from the addresses, leading dimensions and operations it is given."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl
from spikeloom_cupy.gemm import BlasGemm

from .emulation import blas


@pytest.fixture
def gemm64():
    return blas.host_gemm("float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans_w", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (7, 1, 4), (16, 9, 33)])
def test_gemm_matches_numpy(dtype, trans_w, accumulate, shape):
    M, K, N = shape
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    a = rng.normal(size=(M, K)).astype(dtype)
    w = rng.normal(size=(N, K) if trans_w else (K, N)).astype(dtype)
    out = rng.normal(size=(M, N)).astype(dtype)
    want = a @ (w.T if trans_w else w) + (out if accumulate else 0)
    before = blas.CALLS[np.dtype(dtype).char + "gemm"]
    blas.host_gemm(dtype)(a, w, out, trans_w=trans_w, accumulate=accumulate)
    assert blas.CALLS[np.dtype(dtype).char + "gemm"] == before + 1
    np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == "float32" else 1e-13, atol=1e-5)


def test_gemm_writes_over_nan_without_accumulating(gemm64):
    a, w = np.ones((2, 3)), np.ones((3, 4))
    out = np.full((2, 4), np.nan)
    gemm64(a, w, out, accumulate=False)
    assert (out == 3).all()


def test_gemm_into_views_of_larger_arrays(gemm64):
    """Rows of a ``[T, B, N]`` array, as the time loops pass them."""
    rng = np.random.default_rng(0)
    g = rng.normal(size=(4, 3, 5))
    W = rng.normal(size=(5, 5))
    e = np.zeros((4, 3, 5))
    gemm64(g[2], W, e[1], trans_w=True)
    np.testing.assert_allclose(e[1], g[2] @ W.T, rtol=1e-13)
    assert not e[0].any() and not e[2:].any()


def test_gemm_with_empty_dimensions(gemm64):
    out = np.full((2, 3), 5.0)
    gemm64(np.zeros((2, 0)), np.zeros((0, 3)), out)
    assert (out == 5).all()
    gemm64(np.zeros((2, 0)), np.zeros((0, 3)), out, accumulate=False)
    assert (out == 0).all()
    gemm64(np.zeros((0, 4)), np.zeros((4, 3)), np.zeros((0, 3)))


def test_gemm_refuses_what_cublas_cannot_read(gemm64):
    a, w, out = np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 4))
    with pytest.raises(ValueError, match="gemm a: needs a C-contiguous 2-d float64"):
        gemm64(np.ones((3, 2)).T, w, out)
    with pytest.raises(
        ValueError, match="gemm w: needs a C-contiguous 2-d float64 array, got shape \\(3, 4\\), dtype float32"
    ):
        gemm64(a, w.astype(np.float32), out)
    with pytest.raises(ValueError, match="gemm out: needs a C-contiguous 2-d"):
        gemm64(a, w, np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match=r"gemm: a @ w.T of a \(2, 3\) and w \(3, 4\) does not fit out"):
        gemm64(a, w, out, trans_w=True)
    with pytest.raises(ValueError, match="BlasGemm dtype: float32 or float64, got int32"):
        BlasGemm(blas, blas.get_handle, "int32", lambda x: x.ctypes.data)


def test_the_emulated_backend_multiplies_through_the_cublas_stand_in(emulated):
    """Dense delivery and the learning signals of e-prop go through ``BlasGemm``."""
    from .emulation.counting import benchmark_setup

    net, inputs_for = benchmark_setup(B=2, n_hidden=12, n_in=20)
    compiled = emulated.compile(net, rule=sl.EProp(), readout=sl.Readout("out", "per_step"), dtype="float64")
    compiled.recurrent_mode = "dense"
    x, y = inputs_for(30)
    before = blas.CALLS["dgemm"]
    compiled.loss_and_grads(x, y)
    assert blas.CALLS["dgemm"] > before


def test_cupy_gemm_falls_back_to_matmul_without_the_bindings(monkeypatch):
    import sys
    import types

    import spikeloom_cupy.gemm as gm

    cuda = types.SimpleNamespace(device=types.SimpleNamespace(get_cublas_handle=blas.get_handle))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy_backends", None)  # import fails
    assert gm.cupy_gemm("float32") is None
    libs = types.SimpleNamespace(cublas=blas)
    monkeypatch.setitem(sys.modules, "cupy_backends", types.SimpleNamespace(cuda=types.SimpleNamespace(libs=libs)))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda", types.SimpleNamespace(libs=libs))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs", libs)
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs.cublas", blas)
    assert isinstance(gm.cupy_gemm("float32"), BlasGemm)
    monkeypatch.setattr(gm, "BLAS_GEMM", False)
    assert gm.cupy_gemm("float32") is None
