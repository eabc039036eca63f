"""spikeloom's NumPy reference backend."""

from .backend import NumpyBackend, NumpyCompiled

__all__ = ["NumpyBackend", "NumpyCompiled"]
