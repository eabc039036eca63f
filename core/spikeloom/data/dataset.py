"""Data sets of spike trains with one class label per example, and seeded splitting and batching.

Samples are stored sample-major, ``[S, T, N]`` (examples, steps, input channels); a batch comes
out time-major, ``x`` of shape ``[T, B, N]``, as every backend takes it (SPEC §0).
"""

from __future__ import annotations

import math
import numbers
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "Subset", "split", "batch_indices", "labels_of"]


@runtime_checkable
class Dataset(Protocol):
    """What the training loop needs from a data set.

    ``len(ds)`` examples, each ``n_steps`` steps of ``n_inputs`` spike channels and one label in
    ``[0, n_classes)``; ``batch(indices)`` returns ``(x [T, B, N] bool/uint8/float32, labels int64 [B])``.
    """

    @property
    def n_inputs(self) -> int: ...

    @property
    def n_classes(self) -> int: ...

    @property
    def n_steps(self) -> int: ...

    def __len__(self) -> int: ...

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]: ...


def _as_indices(indices, n: int, where: str) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"{where}: indices must be a 1-d sequence of integers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{where}: indices are empty; a batch needs at least one example")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{where}: indices must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"{where}: indices must lie in [0, {n - 1}], got min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)


def _spike_array(spikes) -> np.ndarray:
    try:
        arr = np.asarray(spikes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ArrayDataset.spikes: cannot be read as an array [S, T, N] ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"ArrayDataset.spikes: must be bool or integer spike counts, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"ArrayDataset.spikes: expected shape [S, T, N] (examples, steps, channels), got shape {arr.shape}"
        )
    if 0 in arr.shape:
        raise ValueError(
            f"ArrayDataset.spikes: empty data set (shape {arr.shape}); need at least one example, step and channel"
        )
    if arr.dtype.kind == "b":
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise ValueError("ArrayDataset.spikes: contains NaN; spikes must be finite counts")
        if not np.all(np.isfinite(arr)):
            raise ValueError("ArrayDataset.spikes: contains inf; spikes must be finite counts")
        if np.any(arr != np.round(arr)):
            raise ValueError("ArrayDataset.spikes: float values must be whole spike counts (0, 1, 2, ...)")
    if arr.min() < 0:
        raise ValueError(f"ArrayDataset.spikes: contains negative values (min {arr.min()}); spikes are counts >= 0")
    if arr.max() > 255:
        raise ValueError(f"ArrayDataset.spikes: counts above 255 per step are not supported (max {arr.max()})")
    if arr.max() <= 1:
        return arr.astype(bool)
    return arr.astype(np.uint8)


class ArrayDataset:
    """An in-memory data set: ``spikes`` ``[S, T, N]`` (bool, or uint8 spike counts) and ``labels`` ``[S]``.

    ``n_classes`` defaults to ``max(labels) + 1``.  Construction validates everything once: at
    least one example, three dimensions, no NaN/inf/negative values, integer labels in
    ``[0, n_classes)`` and one label per example.  Spike values of 0/1 are stored as bool, larger
    counts as uint8.  The arrays are read-only.
    """

    def __init__(self, spikes, labels, n_classes: int | None = None, *, name: str = "") -> None:
        x = _spike_array(spikes)
        y = np.asarray(labels)
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"ArrayDataset.labels: must be integers, got dtype {y.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(
                f"ArrayDataset.labels: expected shape [S] = [{x.shape[0]}] (one per example), got {list(y.shape)}"
            )
        if y.min() < 0:
            raise ValueError(f"ArrayDataset.labels: must be >= 0, got min {y.min()}")
        if n_classes is None:
            n_classes = int(y.max()) + 1
        elif isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
            raise ValueError(f"ArrayDataset.n_classes must be an integer >= 1, got {n_classes!r}")
        if y.max() >= n_classes:
            raise ValueError(
                f"ArrayDataset.labels: must lie in [0, {n_classes - 1}] for n_classes={n_classes}, got max {y.max()}"
            )
        self._x = x
        self._y = y.astype(np.int64)
        self._x.setflags(write=False)
        self._y.setflags(write=False)
        self._n_classes = int(n_classes)
        self.name = name

    @property
    def spikes(self) -> np.ndarray:
        """The read-only samples ``[S, T, N]``."""
        return self._x

    @property
    def labels(self) -> np.ndarray:
        """The read-only labels, int64 ``[S]``."""
        return self._y

    @property
    def n_inputs(self) -> int:
        return self._x.shape[2]

    @property
    def n_steps(self) -> int:
        return self._x.shape[1]

    @property
    def n_classes(self) -> int:
        return self._n_classes

    def __len__(self) -> int:
        return self._x.shape[0]

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return (
            f"<ArrayDataset{name}: {len(self)} examples, {self.n_steps} steps, "
            f"{self.n_inputs} inputs, {self.n_classes} classes>"
        )

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(x [T, B, N], labels int64 [B])`` for the examples at ``indices`` (in that order)."""
        idx = _as_indices(indices, len(self), "ArrayDataset.batch")
        return np.ascontiguousarray(self._x[idx].transpose(1, 0, 2)), self._y[idx].copy()

    def subset(self, indices) -> ArrayDataset:
        """A new data set of the examples at ``indices`` (copied; same ``n_classes``)."""
        idx = _as_indices(indices, len(self), "ArrayDataset.subset")
        return ArrayDataset(self._x[idx], self._y[idx], self._n_classes, name=self.name)

    def class_counts(self) -> np.ndarray:
        """Examples per class, ``[n_classes]``."""
        return np.bincount(self._y, minlength=self._n_classes)


class Subset:
    """A view on the examples ``indices`` of any :class:`Dataset` (no copy)."""

    def __init__(self, dataset: Dataset, indices) -> None:
        self.dataset = dataset
        self.indices = _as_indices(indices, len(dataset), "Subset")
        self.indices.setflags(write=False)

    @property
    def n_inputs(self) -> int:
        return self.dataset.n_inputs

    @property
    def n_steps(self) -> int:
        return self.dataset.n_steps

    @property
    def n_classes(self) -> int:
        return self.dataset.n_classes

    @property
    def labels(self) -> np.ndarray | None:
        full = labels_of(self.dataset)
        return None if full is None else full[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"<Subset of {len(self)} examples of {self.dataset!r}>"

    def batch(self, indices):
        idx = _as_indices(indices, len(self), "Subset.batch")
        return self.dataset.batch(self.indices[idx])


def labels_of(dataset) -> np.ndarray | None:
    """All labels ``[S]`` if the data set exposes them (``.labels``), else ``None``."""
    labels = getattr(dataset, "labels", None)
    return None if labels is None else np.asarray(labels)


def _check_fraction(fraction: float, where: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (0 < fraction < 1):
        raise ValueError(f"{where}: fraction must be a number strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def split(dataset: Dataset, fraction: float, *, seed: int = 0, stratify: bool = True) -> tuple[Subset, Subset]:
    """Split into ``(rest, part)`` with ``part`` holding about ``fraction`` of the examples.

    The choice depends only on ``seed`` and the labels.  With ``stratify`` (and labels available)
    each class contributes ``round(fraction * count)`` examples, so class proportions are kept.
    Both parts are non-empty; ``ValueError`` when that is impossible.
    """
    fraction = _check_fraction(fraction, "split")
    n = len(dataset)
    if n < 2:
        raise ValueError(f"split: need at least 2 examples to split, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5917]))
    labels = labels_of(dataset) if stratify else None
    if labels is None:
        perm = rng.permutation(n)
        k = min(max(1, round(fraction * n)), n - 1)
        part = perm[:k]
    else:
        chosen = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            k = round(fraction * len(members))
            chosen.append(rng.permutation(members)[:k])
        part = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        if len(part) == 0:
            part = rng.permutation(n)[:1]
        elif len(part) == n:
            part = part[:-1]
    mask = np.zeros(n, dtype=bool)
    mask[part] = True
    return Subset(dataset, np.flatnonzero(~mask)), Subset(dataset, np.flatnonzero(mask))


def batch_indices(
    n: int, batch_size: int, *, rng: np.random.Generator | None = None, drop_last: bool = False
) -> list[np.ndarray]:
    """Split ``range(n)`` into batches of ``batch_size`` indices; shuffled when ``rng`` is given.

    The last batch is smaller unless ``drop_last`` (then it is left out, unless it is the only one).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if n < 1:
        raise ValueError("cannot batch an empty data set")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    n_batches = math.ceil(n / batch_size)
    out = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
    if drop_last and len(out) > 1 and len(out[-1]) < batch_size:
        out.pop()
    return out
