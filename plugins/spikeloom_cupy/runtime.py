"""Where the CuPy backend's arrays live and how its kernels run: an array module (CuPy on a GPU)
and a kernel launcher, bundled with the run's dtype.

The host code of the backend is written once against this bundle.  On a GPU it is
``Runtime(cupy, CupyKernels(dtype), dtype)``; the tests run the same host code on NumPy arrays
with a serial CPU emulation of the same kernels.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["Runtime"]


class Runtime:
    """``xp`` (the array module), ``kernels`` (a :class:`~spikeloom_cupy.launch.Kernels`), ``dtype``;
    ``gemm``: a :class:`~spikeloom_cupy.gemm.BlasGemm` for :meth:`gemm` (None: ``xp``'s products)."""

    def __init__(self, xp, kernels, dtype, device=None, gemm=None) -> None:
        self.xp = xp
        self.kernels = kernels
        self.dtype = np.dtype(dtype)
        #: a callable returning the context that makes this runtime's device current (CuPy:
        #: ``cupy.cuda.Device(index)``); None: nothing to switch
        self._device = device
        self._gemm = gemm
        #: passed for pointer arguments a kernel does not read (its flags say so)
        self.dummy = xp.zeros(1, dtype=self.dtype)
        self.dummy_l = xp.zeros(1, dtype=np.int64)

    def on_device(self):
        """A context manager in which arrays and launches go to this runtime's device."""
        return self._device() if self._device is not None else contextlib.nullcontext()

    def launch(self, name: str, n: int, *args, site=None) -> None:
        """Launch ``name`` over ``n`` elements; ``site`` names a call site of a time loop whose
        unchanged arguments need no new check (see ``Kernels.launch``)."""
        if site is None:
            self.kernels.launch(name, n, *args)
        else:
            self.kernels.launch(name, n, *args, site=site)

    def launch_blocks(self, name: str, cfg: tuple[int, int, int], *args) -> None:
        """Launch a block-sync kernel with ``cfg`` ``(grid, block, shared bytes)`` (``launch.block_config``)."""
        self.kernels.launch_blocks(name, *cfg, *args)

    def release(self) -> None:
        """Forget what the launches of the time loops kept (call when a loop is done)."""
        release = getattr(self.kernels, "release", None)
        if release is not None:
            release()

    def prepare(self, name: str, n: int, *args):
        """``run(t)`` launching ``name`` with these arguments and the first one replaced by ``t``."""
        return self.kernels.prepare(name, n, *args)

    def gemm(self, a, w, out, *, trans_w: bool = False, accumulate: bool = True) -> None:
        """``out += a @ w`` (``a @ w.T`` with ``trans_w``; ``out = ...`` without ``accumulate``) for
        C-contiguous 2-d arrays: one cuBLAS call on CuPy (:class:`~spikeloom_cupy.gemm.BlasGemm`)."""
        if self._gemm is not None:
            self._gemm(a, w, out, trans_w=trans_w, accumulate=accumulate)
            return
        wt = w.T if trans_w else w
        if accumulate:
            out += a @ wt
        else:
            self.xp.matmul(a, wt, out=out)

    def asarray(self, host, dtype=None):
        """A new C-contiguous device array (cast on the host first, as the reference casts)."""
        # cast (if needed) on the host; one copy to the device (or, with NumPy, one private copy)
        arr = np.ascontiguousarray(np.asarray(host), dtype=dtype or self.dtype)
        return self.xp.array(arr, copy=True)

    def spikes(self, host):
        """Input spikes as a new device array of the run's dtype: bool and uint8 arrays travel as
        one byte per entry (a quarter of float32's, and no cast on the host) and are cast on the
        device (exactly: they are small integers); other arrays as :meth:`asarray`."""
        dev = self.spikes_compact(host)
        return dev if dev.dtype == self.dtype else dev.astype(self.dtype)

    def spikes_compact(self, host):
        """Input spikes on the device as uint8 where they are bool/uint8 on the host (for assigning
        into an array of the run's dtype, which casts them), else as the run's dtype."""
        host = np.asarray(host)
        if host.dtype == np.bool_ or host.dtype == np.uint8:
            return self.xp.array(np.ascontiguousarray(host).view(np.uint8), copy=True)
        return self.asarray(host)

    def zeros(self, shape, dtype=None):
        return self.xp.zeros(shape, dtype=dtype or self.dtype)

    def empty(self, shape, dtype=None):
        """Uninitialised: only for arrays a kernel then writes entirely."""
        return self.xp.empty(shape, dtype=dtype or self.dtype)

    def host(self, arr) -> np.ndarray:
        """A host NumPy copy of a device array (NumPy arrays are copied too)."""
        if isinstance(arr, np.ndarray):
            return arr.copy()
        if hasattr(arr, "get"):
            return arr.get()
        return np.asarray(arr)

    def scalar(self, arr) -> float:
        return float(self.host(arr))
