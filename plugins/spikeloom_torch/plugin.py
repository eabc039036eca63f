"""Registers the PyTorch backend through the ``spikeloom.backends`` entry point (``torch``).

Importing this module does not import torch: the backend reports a missing torch through
``availability()`` instead.
"""

from spikeloom.hookspecs import hookimpl

from .backend import TorchBackend


@hookimpl
def spikeloom_register_backends(registry):
    registry.add(TorchBackend())
