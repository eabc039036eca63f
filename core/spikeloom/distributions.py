"""Distribution specs for per-neuron parameters and weights, and the seeded draws behind them.

A spec is a frozen value; it is materialised once, in NumPy float64, from the network's seed, so
every backend starts from bit-identical arrays.  Each draw gets its own random stream, keyed by
the network seed and a stable string (``"population/hidden/tau_mem"``), so adding a population
never changes the draws of another one.
"""

from __future__ import annotations

import math
import numbers
import zlib

import attrs
import numpy as np

__all__ = ["Distribution", "Gamma", "Normal", "Uniform", "rng_for"]


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The random generator for one named draw of a network with this seed.

    ``key`` is hashed with CRC-32 (stable across processes and platforms, unlike ``hash``).
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(key.encode())]))


def real(where: str):
    """An attrs converter to float that rejects anything but a real number, naming ``where``."""

    def convert(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be a number, got {value!r:.80}")
        return float(value)

    return convert


def _finite(name: str):
    def check(instance, attribute, value):
        if not math.isfinite(value):
            raise ValueError(f"{type(instance).__name__}.{name} must be finite, got {value!r}")

    return check


def _positive(name: str):
    def check(instance, attribute, value):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{type(instance).__name__}.{name} must be a finite number > 0, got {value!r}")

    return check


class Distribution:
    """Base of the distribution specs: ``sample(rng, n)`` draws ``n`` float64 values."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"distribution": type(self).__name__, **attrs.asdict(self)}


@attrs.frozen
class Gamma(Distribution):
    """Gamma distribution given by its ``mean`` and ``shape`` k (scale = mean / k).

    Perez-Nieves et al. (2021) draw time constants from ``Gamma(mean, shape=3)``.
    """

    mean: float = attrs.field(converter=real("Gamma.mean"), validator=_positive("mean"))
    shape: float = attrs.field(default=3.0, converter=real("Gamma.shape"), validator=_positive("shape"))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.mean / self.shape, size=n)


@attrs.frozen
class Normal(Distribution):
    """Normal distribution with ``mean`` and standard deviation ``std`` (>= 0)."""

    mean: float = attrs.field(default=0.0, converter=real("Normal.mean"), validator=_finite("mean"))
    std: float = attrs.field(default=1.0, converter=real("Normal.std"), validator=_finite("std"))

    def __attrs_post_init__(self) -> None:
        if self.std < 0:
            raise ValueError(f"Normal.std must be >= 0, got {self.std!r}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mean, self.std, size=n)


@attrs.frozen
class Uniform(Distribution):
    """Uniform distribution on ``[low, high)``."""

    low: float = attrs.field(default=0.0, converter=real("Uniform.low"), validator=_finite("low"))
    high: float = attrs.field(default=1.0, converter=real("Uniform.high"), validator=_finite("high"))

    def __attrs_post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got low={self.low!r}, high={self.high!r}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=n)


DISTRIBUTIONS: dict[str, type[Distribution]] = {c.__name__: c for c in (Gamma, Normal, Uniform)}
