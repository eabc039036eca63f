"""The hook the spikeloom plugin host calls (found through the ``spikeloom.backends`` entry point)."""

from spikeloom.hookspecs import hookimpl

from .backend import ExampleBackend


@hookimpl
def spikeloom_register_backends(registry):
    registry.add(ExampleBackend())
