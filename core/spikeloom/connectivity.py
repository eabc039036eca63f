"""Connectivity of a connection: which (pre, post) synapses exist.

Every connectivity materialises to a boolean mask ``[N_pre, N_post]``; weights live in a dense
``[N_pre, N_post]`` matrix that is zero (and receives zero gradient) outside the mask.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np

from .distributions import real
from .parameters import array_field, frozen_array

__all__ = ["Connectivity", "Dense", "FixedProbability", "Explicit", "CONNECTIVITY_KINDS"]


class Connectivity:
    kind: ClassVar[str] = ""

    def mask(self, n_pre: int, n_post: int, rng_factory, where: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover
        raise NotImplementedError


@attrs.frozen
class Dense(Connectivity):
    """All-to-all (self-synapses of a recurrent connection are still excluded unless allowed)."""

    kind: ClassVar[str] = "dense"

    def mask(self, n_pre, n_post, rng_factory, where):
        return np.ones((n_pre, n_post), dtype=bool)

    def to_dict(self):
        return {"kind": self.kind}


def _probability(instance, attribute, value):
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"FixedProbability.p must be in (0, 1], got {value!r}")


@attrs.frozen
class FixedProbability(Connectivity):
    """Each synapse exists independently with probability ``p`` (drawn from the network seed)."""

    kind: ClassVar[str] = "fixed_probability"
    p: float = attrs.field(converter=real("FixedProbability.p"), validator=_probability)

    def mask(self, n_pre, n_post, rng_factory, where):
        return rng_factory().random((n_pre, n_post)) < self.p

    def to_dict(self):
        return {"kind": self.kind, "p": self.p}


def _index_array(value, field):
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"Explicit.{field} must be a 1-d array of neuron indices, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"Explicit.{field} must hold integers, got dtype {arr.dtype}")
    return frozen_array(arr, np.int64, f"Explicit.{field}", ndim=1)


@attrs.frozen
class Explicit(Connectivity):
    """Synapses given as index arrays: synapse k goes from ``pre[k]`` to ``post[k]``."""

    kind: ClassVar[str] = "explicit"
    pre: np.ndarray = array_field(converter=lambda v: _index_array(v, "pre"))
    post: np.ndarray = array_field(converter=lambda v: _index_array(v, "post"))

    def __attrs_post_init__(self) -> None:
        if self.pre.shape != self.post.shape:
            raise ValueError(
                f"Explicit.pre and Explicit.post must have equal length, got {self.pre.size} and {self.post.size}"
            )
        if self.pre.size == 0:
            raise ValueError("Explicit connectivity needs at least one synapse (pre and post are empty)")
        if self.pre.min() < 0 or self.post.min() < 0:
            raise ValueError("Explicit.pre and Explicit.post must be >= 0")
        if np.unique(np.stack([self.pre, self.post]), axis=1).shape[1] != self.pre.size:
            raise ValueError("Explicit connectivity lists a (pre, post) pair more than once; give each synapse once")

    def mask(self, n_pre, n_post, rng_factory, where):
        if self.pre.max() >= n_pre:
            raise ValueError(
                f"{where}: Explicit.pre index {int(self.pre.max())} out of range for a source of {n_pre} neurons"
            )
        if self.post.max() >= n_post:
            raise ValueError(
                f"{where}: Explicit.post index {int(self.post.max())} out of range for a target of {n_post} neurons"
            )
        m = np.zeros((n_pre, n_post), dtype=bool)
        m[self.pre, self.post] = True
        return m

    def to_dict(self):
        return {"kind": self.kind, "pre": self.pre.tolist(), "post": self.post.tolist()}


CONNECTIVITY_KINDS: dict[str, type[Connectivity]] = {c.kind: c for c in (Dense, FixedProbability, Explicit)}


def connectivity_from_dict(obj, where: str) -> Connectivity:
    if not isinstance(obj, dict) or obj.get("kind") not in CONNECTIVITY_KINDS:
        raise ValueError(
            f"{where}: connectivity must be a dict with kind in {sorted(CONNECTIVITY_KINDS)}, got {obj!r:.80}"
        )
    kwargs = {k: v for k, v in obj.items() if k != "kind"}
    try:
        return CONNECTIVITY_KINDS[obj["kind"]](**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: bad connectivity arguments: {exc}") from None
