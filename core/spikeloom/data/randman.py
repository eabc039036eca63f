"""Randman (Zenke & Vogels 2021): classes as random smooth manifolds, coded by spike timing alone.

Each class ``c`` is a smooth map ``f_c: [0, 1]^dim -> [0, 1]^n_units`` drawn at random; an
example of class ``c`` is ``f_c(u)`` at a point ``u`` drawn uniformly from ``[0, 1]^dim``, and each
input unit ``i`` fires exactly one spike, at step ``floor(f_c(u)_i n_steps)`` (the last step for 1).
No unit's rate says anything; the class lies in the joint timing.

Coordinate ``i`` of ``f_c`` is a product over the manifold dimensions ``d`` of a random smooth
curve ``g(u_d) = sum_k a_k k^-alpha sin(2 pi (k b_k u_d + p_k))`` over ``n_basis`` Fourier
components with ``a_k, b_k, p_k`` uniform in ``[0, 1)``: ``alpha`` sets how fast the spectrum
decays, so larger ``alpha`` gives smoother, easier manifolds.  Each unit is then scaled to
``[0, 1]`` by its minimum and maximum over a fixed reference sample of every class (values of
later draws outside it are clipped), so the units keep the class differences in their range.

Everything is drawn with NumPy from ``seed``: the same seed gives the same manifolds and the
same examples.  Defaults (10 classes, 20 units, a 1-d manifold, alpha 2, 100 steps, 500 examples
per class) give a small task that a recurrent network learns within a few epochs.
"""

from __future__ import annotations

import numbers

import numpy as np

from .ragged import RaggedDataset, RaggedEvents

__all__ = ["randman_manifolds", "randman_spike_times", "load_randman", "RANDMAN_DEFAULTS"]

RANDMAN_DEFAULTS = {
    "n_classes": 10,
    "n_units": 20,
    "dim": 1,
    "alpha": 2.0,
    "n_steps": 100,
    "n_basis": 8,
    "samples_per_class": 500,
    "test_fraction": 0.2,
    "dt": 1.0,
}
_REFERENCE_POINTS = 1024


def _int(value, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"randman: {field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(value, field: str, *, low: float = 0.0, strict: bool = True) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        relation = ">" if strict else ">="
        raise ValueError(f"randman: {field} must be a finite number {relation} {low}, got {value!r}")
    return float(value)


class _Manifolds:
    """The random maps of every class: coefficients ``[C, U, D, K]`` and per-unit scaling ``[U]``."""

    def __init__(self, n_classes, n_units, dim, alpha, n_basis, seed) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A4D]))
        shape = (n_classes, n_units, dim, n_basis)
        k = np.arange(1, n_basis + 1, dtype=np.float64)
        self.amplitude = rng.random(shape) / k**alpha
        self.frequency = k * rng.random(shape)
        self.phase = rng.random(shape)
        reference = rng.random((n_classes, _REFERENCE_POINTS, dim))
        raw = self.raw(reference)  # [C, P, U]
        self.low = raw.min(axis=(0, 1))
        self.span = np.maximum(raw.max(axis=(0, 1)) - self.low, 1e-12)

    def raw(self, points: np.ndarray) -> np.ndarray:
        """Unscaled values ``[C, P, U]`` of every class's map at ``points`` ``[C, P, D]``."""
        # angle [C, P, U, D, K]
        angle = 2 * np.pi * (points[:, :, None, :, None] * self.frequency[:, None] + self.phase[:, None])
        curves = np.sum(self.amplitude[:, None] * np.sin(angle), axis=-1)  # [C, P, U, D]
        return np.prod(curves, axis=-1)

    def values(self, points: np.ndarray) -> np.ndarray:
        """Values in ``[0, 1]``, ``[C, P, U]``."""
        return np.clip((self.raw(points) - self.low) / self.span, 0.0, 1.0)


def randman_manifolds(
    *,
    n_classes: int = 10,
    n_units: int = 20,
    dim: int = 1,
    alpha: float = 2.0,
    n_basis: int = 8,
    seed: int = 0,
):
    """The class maps as a callable ``points [C, P, dim] -> values [C, P, n_units]`` in ``[0, 1]``."""
    return _Manifolds(
        _int(n_classes, "n_classes", 2),
        _int(n_units, "n_units", 1),
        _int(dim, "dim", 1),
        _real(alpha, "alpha", strict=False),
        _int(n_basis, "n_basis", 1),
        _int(seed, "seed", 0),
    ).values


def randman_spike_times(
    *,
    n_classes: int = 10,
    n_units: int = 20,
    dim: int = 1,
    alpha: float = 2.0,
    n_steps: int = 100,
    n_basis: int = 8,
    samples_per_class: int = 500,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps int64 [S, n_units], labels int64 [S])``: the spike step of every unit of every
    example, ``S = n_classes * samples_per_class`` examples in a seeded random order."""
    n_classes = _int(n_classes, "n_classes", 2)
    n_units = _int(n_units, "n_units", 1)
    dim = _int(dim, "dim", 1)
    n_steps = _int(n_steps, "n_steps", 1)
    n_basis = _int(n_basis, "n_basis", 1)
    samples_per_class = _int(samples_per_class, "samples_per_class", 1)
    seed = _int(seed, "seed", 0)
    alpha = _real(alpha, "alpha", strict=False)
    maps = _Manifolds(n_classes, n_units, dim, alpha, n_basis, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A4E]))
    points = rng.random((n_classes, samples_per_class, dim))
    values = maps.values(points).reshape(-1, n_units)  # [C * P, U], class-major
    steps = np.minimum(np.floor(values * n_steps).astype(np.int64), n_steps - 1)
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), samples_per_class)
    order = rng.permutation(len(labels))
    return steps[order], labels[order]


def _dataset(steps: np.ndarray, labels: np.ndarray, n_steps: int, n_classes: int, dt: float, name: str):
    S, U = steps.shape
    offsets = np.arange(S + 1, dtype=np.int64) * U
    channels = np.tile(np.arange(U), S)
    events = RaggedEvents(offsets, steps.reshape(-1), channels, n_steps=n_steps, n_channels=U)
    return RaggedDataset(events, labels, n_classes, dt=dt, name=name)


def load_randman(
    *,
    n_classes: int = 10,
    n_units: int = 20,
    dim: int = 1,
    alpha: float = 2.0,
    n_steps: int = 100,
    n_basis: int = 8,
    samples_per_class: int = 500,
    test_fraction: float = 0.2,
    dt: float = 1.0,
    seed: int = 0,
    limit: int | None = None,
) -> tuple[RaggedDataset, RaggedDataset]:
    """``(train, test)`` :class:`~spikeloom.data.ragged.RaggedDataset` of randman examples.

    ``round(test_fraction * samples_per_class)`` examples of each class go to the test set (both
    parts drawn from the same manifolds).  ``x [T, B, N]`` has ``T = n_steps`` steps of ``dt`` ms
    and ``N = n_units`` inputs, exactly one spike per unit.  ``limit`` keeps the first ``limit``
    examples of each part (the order is already random).
    """
    if not isinstance(test_fraction, numbers.Real) or isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise ValueError(f"randman: test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    _real(dt, "dt")
    if limit is not None:
        _int(limit, "limit", 1)
    steps, labels = randman_spike_times(
        n_classes=n_classes,
        n_units=n_units,
        dim=dim,
        alpha=alpha,
        n_steps=n_steps,
        n_basis=n_basis,
        samples_per_class=samples_per_class,
        seed=seed,
    )
    n_test = round(test_fraction * samples_per_class)
    if n_test < 1 or n_test >= samples_per_class:
        raise ValueError(
            f"randman: test_fraction {test_fraction} of samples_per_class {samples_per_class} leaves an empty part; "
            "raise samples_per_class"
        )
    # the first n_test examples of each class (in the random order) form the test set
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in range(int(n_classes)):
        members = np.flatnonzero(labels == c)
        rank[members] = np.arange(len(members))
    is_test = rank < n_test
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if limit is not None:
        train_idx, test_idx = train_idx[:limit], test_idx[:limit]
    return (
        _dataset(steps[train_idx], labels[train_idx], int(n_steps), int(n_classes), float(dt), "randman-train"),
        _dataset(steps[test_idx], labels[test_idx], int(n_steps), int(n_classes), float(dt), "randman-test"),
    )
