"""Large buffers kept from one training call to the next.

A BPTT step needs several arrays ``[T, B, N]`` (recorded states, adjoints).  Freed and allocated
anew every call, each of them is handed back to the operating system and faulted in again page by
page, which on the CPU costs about as much as the arithmetic done on it.  A :class:`Workspace`
keeps them instead: the same buffer serves every call of the same shape.  Only values that never
leave the backend live here (never a recording or gradient handed to the caller).
"""

from __future__ import annotations

from collections.abc import Hashable

import torch

__all__ = ["Workspace"]


class Workspace:
    """Uninitialised buffers by key, reused while the shape, dtype and device stay the same."""

    def __init__(self) -> None:
        self._buffers: dict[Hashable, torch.Tensor] = {}

    def get(self, key: Hashable, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The buffer named ``key`` of ``shape`` (its content is whatever the last user left)."""
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype or buf.device != device:
            self._buffers.pop(key, None)  # free the old one before asking for the new one
            buf = self._buffers[key] = torch.empty(shape, dtype=dtype, device=device)
        return buf

    def peek(self, key: Hashable) -> torch.Tensor | None:
        """The buffer named ``key`` as it is, or None."""
        return self._buffers.get(key)

    def clear(self) -> None:
        self._buffers.clear()
