"""An example third-party spikeloom backend (see README.md)."""

from .backend import ExampleBackend, ExampleCompiled

__all__ = ["ExampleBackend", "ExampleCompiled"]
