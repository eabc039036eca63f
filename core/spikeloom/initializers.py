"""Weight initialisers that need to know the connection (fan-in), beside the plain distributions.

``Normal``/``Uniform`` (from :mod:`spikeloom.distributions`), a scalar constant, an explicit array,
or an initialiser below can be given as a connection's ``weight``.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from .distributions import real

__all__ = ["Initializer", "KaimingUniform", "INITIALIZERS"]


class Initializer:
    """Draws the values of the existing synapses of one connection."""

    def sample(self, rng: np.random.Generator, n: int, *, fan_in: float) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"initializer": type(self).__name__, **attrs.asdict(self)}


def _gain(instance, attribute, value):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"KaimingUniform.gain must be a finite number > 0, got {value!r}")


@attrs.frozen
class KaimingUniform(Initializer):
    """PyTorch's default: ``U(-gain/sqrt(fan_in), +gain/sqrt(fan_in))``.

    ``fan_in`` is the mean number of synapses onto a target neuron (``N_pre`` when dense).
    """

    gain: float = attrs.field(default=1.0, converter=real("KaimingUniform.gain"), validator=_gain)

    def sample(self, rng, n, *, fan_in):
        bound = self.gain / math.sqrt(max(fan_in, 1.0))
        return rng.uniform(-bound, bound, size=n)


INITIALIZERS: dict[str, type[Initializer]] = {c.__name__: c for c in (KaimingUniform,)}
