"""Surrogate derivatives of the spike function (SPEC §5).

The forward pass is always the Heaviside step ``z = H(x)`` with ``x = V - theta``; a surrogate
replaces ``H'(x)`` in the backward pass.  Each is written once against the Array API, so the same
object evaluates NumPy, PyTorch or CuPy arrays.  Backends multiply by ``(1 - refractory)``: the
surrogate is 0 while a neuron is refractory.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
from array_api_compat import array_namespace

__all__ = ["Surrogate", "SuperSpike", "Triangle", "Sigmoid", "Atan", "SURROGATES", "surrogate_from_dict"]


def _positive(instance, attribute, value):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a finite number > 0, got {value!r}")


class Surrogate:
    kind: ClassVar[str] = ""

    def __call__(self, x, v_thresh):
        """``psi(x)`` for ``x = V - theta`` (any array type); ``v_thresh`` broadcasts against ``x``."""
        raise NotImplementedError  # pragma: no cover

    def to_dict(self) -> dict:
        return {"kind": self.kind, **attrs.asdict(self)}


@attrs.frozen
class SuperSpike(Surrogate):
    """``1 / (beta |x| + 1)^2`` (Zenke & Ganguli 2018)."""

    kind: ClassVar[str] = "superspike"
    beta: float = attrs.field(default=10.0, converter=float, validator=_positive)

    def __call__(self, x, v_thresh):
        xp = array_namespace(x)
        return 1.0 / (self.beta * xp.abs(x) + 1.0) ** 2


@attrs.frozen
class Triangle(Surrogate):
    """``(gamma / v_thresh) max(0, 1 - |x| / v_thresh)`` (Bellec et al.'s pseudo-derivative)."""

    kind: ClassVar[str] = "triangle"
    gamma: float = attrs.field(default=0.3, converter=float, validator=_positive)

    def __call__(self, x, v_thresh):
        xp = array_namespace(x)
        return (self.gamma / v_thresh) * xp.clip(1.0 - xp.abs(x) / v_thresh, 0.0, None)


@attrs.frozen
class Sigmoid(Surrogate):
    """snnTorch's sigmoid form ``d/dx sigmoid(slope x) = slope s (1 - s)``, evaluated as
    ``slope e / (1 + e)^2`` with ``e = exp(-slope |x|)`` (the same function, without overflow)."""

    kind: ClassVar[str] = "sigmoid"
    slope: float = attrs.field(default=25.0, converter=float, validator=_positive)

    def __call__(self, x, v_thresh):
        xp = array_namespace(x)
        e = xp.exp(-self.slope * xp.abs(x))
        return self.slope * e / (1.0 + e) ** 2


@attrs.frozen
class Atan(Surrogate):
    """snnTorch's arctan form ``(alpha / 2) / (1 + (pi/2 alpha x)^2)``."""

    kind: ClassVar[str] = "atan"
    alpha: float = attrs.field(default=2.0, converter=float, validator=_positive)

    def __call__(self, x, v_thresh):
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)


SURROGATES: dict[str, type[Surrogate]] = {c.kind: c for c in (SuperSpike, Triangle, Sigmoid, Atan)}


def surrogate_from_dict(obj) -> Surrogate:
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str) or obj["kind"] not in SURROGATES:
        raise ValueError(f"surrogate: 'kind' must be one of {sorted(SURROGATES)}, got {obj!r:.80}")
    try:
        return SURROGATES[obj["kind"]](**{k: v for k, v in obj.items() if k != "kind"})
    except TypeError as exc:
        raise ValueError(f"surrogate {obj['kind']}: {exc}") from None
