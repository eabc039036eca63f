"""spikeloom's PyTorch backend (CPU and CUDA); torch itself is imported only when the backend runs."""

from .backend import TorchBackend, TorchCompiled

__all__ = ["TorchBackend", "TorchCompiled"]
