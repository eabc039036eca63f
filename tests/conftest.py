"""Shared fixtures: fake ``spikeloom.backends`` entry points for the plugin host; and the ``gpu``
marker: tests carrying it are skipped at collection where no CUDA device can be used."""

from __future__ import annotations

import pytest

import spikeloom as sl
import spikeloom.host as host_mod
from spikeloom.hookspecs import hookimpl


def _cuda_missing() -> str:
    """Why CUDA tests cannot run here, or ``""``; torch is imported only when a gpu test was collected."""
    try:
        import torch
    except ImportError:
        return "needs a CUDA device (torch is not installed)"
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    return ""


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    reason = _cuda_missing()
    if reason:
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason=reason))


class FakeEntryPoint:
    """Stands in for ``importlib.metadata.EntryPoint``: a ``name`` and a ``load()``."""

    def __init__(self, name: str, target) -> None:
        self.name = name
        self._target = target
        self.loaded = False

    def load(self):
        self.loaded = True
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


class ToyBackend(sl.Backend):
    """A backend whose name, capabilities, availability and priority are set per instance."""

    def __init__(self, name="toy", *, caps=None, available=True, reason="", priority=0, version="1.2.3"):
        self.name = name
        self.version = version
        self.priority = priority
        self.description = f"toy backend {name}"
        self._caps = sl.Capabilities() if caps is None else caps
        self._available = available
        self._reason = reason

    def capabilities(self):
        return self._caps

    def availability(self):
        if isinstance(self._available, BaseException):
            raise self._available
        return sl.Availability(self._available, self._reason)

    def _compile(self, request):
        return request


def plugin_adding(*backends, then_raise: BaseException | None = None):
    """A plugin object whose hook adds ``backends`` (anything), then optionally raises."""

    class Plugin:
        @hookimpl
        def spikeloom_register_backends(self, registry):
            for b in backends:
                registry.add(b)
            if then_raise is not None:
                raise then_raise

    return Plugin()


@pytest.fixture
def fake_plugins(monkeypatch):
    """``install(name=plugin_or_exception, ...)`` makes those the only entry points and rebuilds
    the host; the cached host and ``entry_points`` are restored after the test."""
    monkeypatch.setattr(host_mod, "_host", None)
    eps: list[FakeEntryPoint] = []

    def fake_entry_points(*, group):
        return list(eps) if group == host_mod.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(host_mod, "entry_points", fake_entry_points)

    def install(**plugins):
        eps[:] = [FakeEntryPoint(name, target) for name, target in plugins.items()]
        host_mod.get_plugin_manager(refresh=True)
        return {ep.name: ep for ep in eps}

    return install


@pytest.fixture
def toy_backend():
    """The :class:`ToyBackend` class."""
    return ToyBackend


@pytest.fixture
def make_plugin():
    """:func:`plugin_adding`."""
    return plugin_adding
