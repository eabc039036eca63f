"""The hooks a spikeloom plugin may implement (pluggy project name ``"spikeloom"``).

A plugin is a module or object with functions decorated by :data:`hookimpl`, made known through
the ``spikeloom.backends`` entry-point group::

    [project.entry-points."spikeloom.backends"]
    mybackend = "my_package.plugin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .registry import BackendRegistry

__all__ = ["hookspec", "hookimpl", "spikeloom_register_backends"]

PROJECT = "spikeloom"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def spikeloom_register_backends(registry: BackendRegistry) -> None:
    """Add backends with ``registry.add(backend)``.

    ``backend`` is an instance of :class:`spikeloom.Backend`; the registry checks its name,
    version and capabilities and refuses a name that is already taken.  The module holding this
    hook must import cheaply: import heavy libraries (torch, cupy) inside the backend's methods,
    so that ``spikeloom backends`` works where they are missing.
    """
