"""spikeloom's CuPy backend: CUDA kernels kept as ``.cu`` files under ``kernels/``."""

from .backend import CupyBackend, CupyCompiled

__all__ = ["CupyBackend", "CupyCompiled"]
