"""The CuPy backend's host code and kernels on the CPU, for tests: NumPy arrays, and the kernels
compiled as C++ and run serially (:mod:`.emulator`).  Test-only; never registered as a backend.
"""

from __future__ import annotations

import attrs
import numpy as np

from spikeloom import Availability
from spikeloom_cupy.backend import CupyBackend, CupyCompiled
from spikeloom_cupy.runtime import Runtime

from .blas import host_gemm
from .emulator import EmulatedKernels, gxx


class EmulatedCupyBackend(CupyBackend):
    """The cupy backend with ``xp = numpy``, emulated kernel launches and the stand-in cuBLAS of
    :mod:`.blas`, on ``device="cpu"``."""

    name = "cupy-emulated"
    description = "CuPy backend's kernels emulated serially on the CPU (tests only)"

    def capabilities(self):
        return attrs.evolve(super().capabilities(), devices=frozenset({"cpu"}))

    def availability(self, device=None):
        return Availability(True) if gxx() else Availability(False, "g++ is not installed")

    def _compile(self, request):
        runtime = Runtime(np, EmulatedKernels(request.dtype), request.dtype, gemm=host_gemm(request.dtype))
        return CupyCompiled(request, runtime)
