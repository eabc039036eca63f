"""Registers the CuPy backend through the ``spikeloom.backends`` entry point (``cupy``).

Importing this module does not import CuPy: the backend reports a missing CuPy or GPU through
``availability()`` instead.
"""

from spikeloom.hookspecs import hookimpl

from .backend import CupyBackend


@hookimpl
def spikeloom_register_backends(registry):
    registry.add(CupyBackend())
