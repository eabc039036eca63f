"""The validating registry that plugins add their backends to."""

from __future__ import annotations

import re

import attrs

from .backend import Backend
from .capabilities import Capabilities

__all__ = ["BackendRegistry", "BackendInfo"]

_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


@attrs.frozen
class BackendInfo:
    """What ``spikeloom backends`` shows for one backend (or a plugin that failed to load)."""

    name: str
    version: str
    plugin: str
    available: bool
    reason: str
    capabilities: Capabilities | None
    description: str = ""
    priority: int = 0


class BackendRegistry:
    """Collects backends from the ``spikeloom_register_backends`` hook, checking each one."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._plugin_of: dict[str, str] = {}
        self._current_plugin = "?"

    def add(self, backend: Backend) -> None:
        """Register ``backend``; raises ``ValueError`` if it is malformed or its name is taken."""
        if not isinstance(backend, Backend):
            raise ValueError(f"registry.add expects a spikeloom.Backend instance, got {backend!r:.80}")
        name = backend.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"backend name must be lower-case letters, digits, '_' or '-', got {name!r}")
        if not isinstance(backend.version, str) or not backend.version:
            raise ValueError(f"backend {name!r}: version must be a non-empty string, got {backend.version!r}")
        if name in self._backends:
            raise ValueError(
                f"backend {name!r} registered by plugin {self._current_plugin!r} is already registered "
                f"by plugin {self._plugin_of[name]!r}"
            )
        caps = backend.capabilities()
        if not isinstance(caps, Capabilities):
            raise ValueError(
                f"backend {name!r}: capabilities() must return spikeloom.Capabilities, got {type(caps).__name__}"
            )
        self._backends[name] = backend
        self._plugin_of[name] = self._current_plugin

    def _remove_plugin(self, plugin: str) -> None:
        for name in [n for n, p in self._plugin_of.items() if p == plugin]:
            del self._backends[name], self._plugin_of[name]

    def __contains__(self, name: str) -> bool:
        return name in self._backends

    def __iter__(self):
        return iter(self._backends.values())

    def get(self, name: str) -> Backend:
        return self._backends[name]

    def plugin_of(self, name: str) -> str:
        return self._plugin_of[name]

    def names(self) -> list[str]:
        return list(self._backends)
