"""Registers the NumPy reference with the plugin host (the host registers this module directly)."""

from spikeloom.hookspecs import hookimpl

from .backend import NumpyBackend


@hookimpl
def spikeloom_register_backends(registry):
    registry.add(NumpyBackend())
