"""The plugin host: one pluggy manager, the backends it registered, and lookups by name."""

from __future__ import annotations

import os
import threading
import warnings
from importlib.metadata import entry_points

import attrs
import pluggy

from . import hookspecs
from .backend import Backend
from .errors import BackendUnavailable
from .registry import BackendInfo, BackendRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "BLOCKLIST_ENV",
    "PluginLoadWarning",
    "get_plugin_manager",
    "list_backends",
    "get_backend",
    "best_backend",
    "compile_on_best",
]

ENTRY_POINT_GROUP = "spikeloom.backends"
#: comma-separated entry-point names that are not loaded (the NumPy reference cannot be blocked)
BLOCKLIST_ENV = "SPIKELOOM_DISABLE_PLUGINS"
REFERENCE = "numpy"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded or failed in its hook; the others still load."""


@attrs.frozen
class _Host:
    pm: pluggy.PluginManager
    registry: BackendRegistry
    failures: tuple[BackendInfo, ...]


_lock = threading.Lock()
_host: _Host | None = None


def _blocked() -> set[str]:
    raw = os.environ.get(BLOCKLIST_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()} - {REFERENCE}


def _failure(name: str, exc: BaseException) -> BackendInfo:
    reason = f"plugin failed to load: {type(exc).__name__}: {exc}"
    warnings.warn(f"spikeloom plugin {name!r}: {reason}", PluginLoadWarning, stacklevel=3)
    return BackendInfo(name=name, version="?", plugin=name, available=False, reason=reason, capabilities=None)


def _build() -> _Host:
    import spikeloom_numpy.plugin as reference

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(reference, name=REFERENCE)
    failures: list[BackendInfo] = []
    blocked = _blocked()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name == REFERENCE or pm.has_plugin(ep.name):
            continue
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the host
            if pm.get_plugin(ep.name) is not None:  # pluggy may leave a half-registered plugin
                pm.unregister(name=ep.name)
            failures.append(_failure(ep.name, exc))
    while True:  # a plugin implementing a hook that has no spec is unloaded, not fatal
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            if name == REFERENCE:
                raise
            pm.unregister(exc.plugin)
            failures.append(_failure(name, exc))

    registry = BackendRegistry()
    for impl in pm.hook.spikeloom_register_backends.get_hookimpls():
        registry._current_plugin = impl.plugin_name
        try:
            impl.function(registry=registry)
        except Exception as exc:
            if impl.plugin_name == REFERENCE:
                raise
            registry._remove_plugin(impl.plugin_name)
            failures.append(_failure(impl.plugin_name, exc))
    return _Host(pm=pm, registry=registry, failures=tuple(failures))


def _get_host(refresh: bool = False) -> _Host:
    global _host
    with _lock:
        if _host is None or refresh:
            _host = _build()
        return _host


def get_plugin_manager(refresh: bool = False) -> pluggy.PluginManager:
    """The shared plugin manager (built on first use; ``refresh=True`` rebuilds it, e.g. after
    installing a plugin or changing ``SPIKELOOM_DISABLE_PLUGINS``)."""
    return _get_host(refresh).pm


def _info(registry: BackendRegistry, backend: Backend) -> BackendInfo:
    try:
        avail = backend.availability()
        available, reason = avail.available, avail.reason
    except Exception as exc:  # availability probes must not crash the listing
        available, reason = False, f"availability check failed: {type(exc).__name__}: {exc}"
    return BackendInfo(
        name=backend.name,
        version=backend.version,
        plugin=registry.plugin_of(backend.name),
        available=available,
        reason=reason,
        capabilities=backend.capabilities(),
        description=backend.description,
        priority=backend.priority,
    )


def list_backends(refresh: bool = False) -> list[BackendInfo]:
    """Every registered backend (and every plugin that failed to load), with availability."""
    host = _get_host(refresh)
    return [_info(host.registry, b) for b in host.registry] + list(host.failures)


def get_backend(name: str) -> Backend:
    """The backend registered under ``name`` (``ValueError`` naming the known ones otherwise)."""
    host = _get_host()
    if name in host.registry:
        return host.registry.get(name)
    for f in host.failures:
        if f.name == name:
            raise BackendUnavailable(f"backend {name!r}: {f.reason}")
    if name in _blocked():
        raise ValueError(f"backend {name!r} is disabled by {BLOCKLIST_ENV}={os.environ.get(BLOCKLIST_ENV)!r}")
    raise ValueError(f"unknown backend {name!r}; registered backends are {host.registry.names()}")


def best_backend() -> Backend:
    """The available backend with the highest priority (the NumPy reference at worst)."""
    host = _get_host()
    infos = [i for i in (_info(host.registry, b) for b in host.registry) if i.available]
    infos.sort(key=lambda i: -i.priority)
    return host.registry.get(infos[0].name)


def compile_on_best(network, rule, readout, *, dtype: str = "float32", device: str = "cpu", backend: str | None = None):
    """``(backend, compiled)``: compile on the named ``backend``, or else on the available backend
    of highest priority that supports this network, rule, readout, dtype and device (backends
    that declare less are skipped, never silently changed).  ``ValueError`` when none can."""
    from .errors import BackendUnavailable, UnsupportedFeature

    if backend is not None:
        be = get_backend(backend)
        return be, be.compile(network, rule=rule, readout=readout, dtype=dtype, device=device)
    skipped = []
    infos = sorted((i for i in list_backends() if i.available), key=lambda i: -i.priority)
    for info in infos:
        be = get_backend(info.name)
        try:
            return be, be.compile(network, rule=rule, readout=readout, dtype=dtype, device=device)
        except (UnsupportedFeature, BackendUnavailable) as exc:
            skipped.append(f"{info.name}: {exc}")
    raise ValueError("no available backend can run this experiment: " + "; ".join(skipped))
