"""Exceptions raised by spikeloom."""

from __future__ import annotations

__all__ = ["SpikeloomError", "UnsupportedFeature", "BackendUnavailable"]


class SpikeloomError(Exception):
    """Base class of spikeloom's own exceptions (bad input raises plain `ValueError`)."""


class UnsupportedFeature(SpikeloomError, NotImplementedError):
    """A backend was asked for something its capabilities do not declare.

    ``feature`` names the capability field (``"models"``, ``"dtypes"``, ...) and ``value`` the
    value that was asked for, so callers (and the conformance kit) can tell which one is missing.
    """

    def __init__(self, backend: str, feature: str, value: object, hint: str = "") -> None:
        self.backend = backend
        self.feature = feature
        self.value = value
        msg = f"backend {backend!r} does not support {feature}={value!r}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class BackendUnavailable(SpikeloomError, RuntimeError):
    """A backend is registered but cannot run here (e.g. its library or device is missing)."""
