"""Spike events kept ragged (one variable-length list per example) and binned onto the time grid
only when a batch is asked for.

:class:`RaggedEvents` stores the events of ``S`` examples flat, in CSR form: example ``s`` owns
entries ``offsets[s]:offsets[s + 1]`` of ``steps`` (time-step index) and ``channels`` (input
index).  :class:`RaggedDataset` is a :class:`~spikeloom.data.dataset.Dataset` over such events:
memory grows with the number of events, never with ``S x T x N``; ``batch(indices)`` builds the
dense ``[T, B, N]`` block for those examples alone.  The SHD reader, the tonic-style event arrays
and randman all return a :class:`RaggedDataset`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .dataset import _as_indices

__all__ = ["RaggedEvents", "RaggedDataset", "bin_events", "time_to_step", "n_steps_for"]

# events that sit on a bin edge up to float round-off (0.003 s * 1000 / 1 ms) count in the later bin
_EDGE_EPS = 1e-9


def n_steps_for(duration: float, dt: float, where: str) -> int:
    """Number of steps of width ``dt`` (ms) that cover ``duration`` (ms): ``ceil(duration / dt)``."""
    for field, value in (("dt", dt), ("duration", duration)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{where}: {field} must be a positive number of milliseconds, got {value!r}")
    return max(1, int(np.ceil(duration / dt - _EDGE_EPS)))


def time_to_step(t_ms: np.ndarray, dt: float) -> np.ndarray:
    """Step index ``floor(t / dt)`` (int64) of times ``t_ms`` (ms); bin ``k`` is ``[k dt, (k + 1) dt)``."""
    return np.floor(np.asarray(t_ms, dtype=np.float64) / dt + _EDGE_EPS).astype(np.int64)


def _small_uint(limit: int):
    return np.uint16 if limit <= np.iinfo(np.uint16).max + 1 else np.int64


class RaggedEvents:
    """The events of ``S`` examples in CSR form (read-only).

    ``offsets`` int64 ``[S + 1]`` (non-decreasing, from 0); ``steps`` and ``channels`` ``[E]``
    with ``0 <= steps < n_steps`` and ``0 <= channels < n_channels``.  Both are stored in the
    smallest unsigned type that holds them (uint16 for SHD) to keep memory at 4 bytes per event.
    """

    def __init__(self, offsets, steps, channels, *, n_steps: int, n_channels: int) -> None:
        offsets = np.asarray(offsets, dtype=np.int64)
        steps = np.asarray(steps)
        channels = np.asarray(channels)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise ValueError("RaggedEvents.offsets: must be a non-decreasing 1-d array starting at 0")
        if steps.shape != (offsets[-1],) or channels.shape != (offsets[-1],):
            raise ValueError(
                f"RaggedEvents: steps and channels must both have offsets[-1] = {offsets[-1]} entries, "
                f"got {steps.shape} and {channels.shape}"
            )
        if steps.size:
            if steps.min() < 0 or steps.max() >= n_steps:
                raise ValueError(
                    f"RaggedEvents.steps: must lie in [0, {n_steps - 1}], got {steps.min()}..{steps.max()}"
                )
            if channels.min() < 0 or channels.max() >= n_channels:
                raise ValueError(
                    f"RaggedEvents.channels: must lie in [0, {n_channels - 1}], got {channels.min()}..{channels.max()}"
                )
        self.offsets = offsets
        self.steps = steps.astype(_small_uint(n_steps), copy=False)
        self.channels = channels.astype(_small_uint(n_channels), copy=False)
        for arr in (self.offsets, self.steps, self.channels):
            arr.setflags(write=False)
        self.n_steps = int(n_steps)
        self.n_channels = int(n_channels)

    @classmethod
    def from_lists(cls, steps_per_example, channels_per_example, *, n_steps: int, n_channels: int) -> RaggedEvents:
        """From one ``(steps, channels)`` pair of equal-length 1-d arrays per example."""
        lengths = np.fromiter((len(s) for s in steps_per_example), dtype=np.int64, count=len(steps_per_example))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        if len(lengths):
            steps = np.concatenate([np.asarray(s) for s in steps_per_example]) if offsets[-1] else np.zeros(0, int)
            chans = np.concatenate([np.asarray(c) for c in channels_per_example]) if offsets[-1] else np.zeros(0, int)
        else:
            steps = chans = np.zeros(0, np.int64)
        return cls(offsets, steps, chans, n_steps=n_steps, n_channels=n_channels)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.steps.nbytes + self.channels.nbytes

    def counts(self) -> np.ndarray:
        """Events per example, int64 ``[S]``."""
        return np.diff(self.offsets)

    def take(self, indices: np.ndarray) -> RaggedEvents:
        """The events of the examples at ``indices`` (in that order), as a new :class:`RaggedEvents`."""
        example, pos = self._positions(np.asarray(indices, dtype=np.int64))
        lengths = np.bincount(example, minlength=len(indices))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return RaggedEvents(
            offsets, self.steps[pos], self.channels[pos], n_steps=self.n_steps, n_channels=self.n_channels
        )

    def _positions(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        total = int(lengths.sum())
        example = np.repeat(np.arange(len(indices)), lengths)
        # position of each gathered event in the flat arrays: its example's start + rank within the example
        first = np.cumsum(lengths) - lengths
        pos = np.arange(total, dtype=np.int64) - np.repeat(first - starts, lengths)
        return example, pos

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(example, step, channel)`` of every event of the examples at ``indices``; ``example``
        is the position in ``indices`` (0..B-1)."""
        example, pos = self._positions(np.asarray(indices, dtype=np.int64))
        return example, self.steps[pos], self.channels[pos]

    def dense(self, indices, *, counts: bool = False) -> np.ndarray:
        """``[T, B, N]`` spikes of the examples at ``indices`` (see :func:`bin_events`)."""
        idx = np.asarray(indices, dtype=np.int64)
        example, step, channel = self.gather(idx)
        return bin_events(
            example, step, channel, n_steps=self.n_steps, batch=len(idx), n_channels=self.n_channels, counts=counts
        )


def bin_events(
    example, step, channel, *, n_steps: int, batch: int, n_channels: int, counts: bool = False
) -> np.ndarray:
    """Dense time-major spikes ``[T, B, N]`` from events ``(example, step, channel)`` (each ``[E]``).

    Bool by default: a bin holds at most one spike per channel, however many events fall in it.
    With ``counts`` the bin holds the number of events as uint8; ``ValueError`` if a bin would
    hold more than 255 (use a smaller ``dt`` or less channel pooling).
    """
    shape = (int(n_steps), int(batch), int(n_channels))
    flat = (np.asarray(step, dtype=np.int64) * shape[1] + np.asarray(example, dtype=np.int64)) * shape[2]
    flat += np.asarray(channel, dtype=np.int64)
    if not counts:
        out = np.zeros(shape, dtype=bool)
        out.reshape(-1)[flat] = True
        return out
    out = np.zeros(shape, dtype=np.uint8)
    if flat.size:
        where, number = np.unique(flat, return_counts=True)
        if number.max() > 255:
            t, rest = divmod(int(where[np.argmax(number)]), shape[1] * shape[2])
            b, n = divmod(rest, shape[2])
            raise ValueError(
                f"counts: {number.max()} events fall in one bin (step {t}, example {b}, channel {n}); uint8 counts "
                "hold at most 255: use a smaller dt or less channel pooling"
            )
        out.reshape(-1)[where] = number
    return out


class RaggedDataset:
    """A :class:`~spikeloom.data.dataset.Dataset` over :class:`RaggedEvents` and labels ``[S]``.

    ``batch(indices)`` returns ``(x [T, B, N], labels int64 [B])``, ``x`` bool (at most one spike
    per channel per step) or, with ``counts=True``, uint8 event counts.  ``dt`` is the step width
    in ms (the network that reads the data should use the same ``dt``).  ``class_names`` and
    ``extra`` (per-example arrays such as SHD's speaker) are carried along when known.
    """

    def __init__(
        self,
        events: RaggedEvents,
        labels,
        n_classes: int,
        *,
        dt: float = 1.0,
        counts: bool = False,
        name: str = "",
        class_names: tuple[str, ...] | None = None,
        extra: dict[str, np.ndarray] | None = None,
        dropped_events: int = 0,
    ) -> None:
        y = np.asarray(labels)
        if y.dtype.kind not in "iu":
            raise ValueError(f"{name or 'RaggedDataset'}.labels: must be integers, got dtype {y.dtype}")
        if y.shape != (len(events),):
            raise ValueError(
                f"{name or 'RaggedDataset'}.labels: expected one label per example ({len(events)}), got shape {y.shape}"
            )
        if len(events) == 0:
            raise ValueError(f"{name or 'RaggedDataset'}: empty data set; need at least one example")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"{name or 'RaggedDataset'}.labels: must lie in [0, {n_classes - 1}], got {y.min()}..{y.max()}"
            )
        self.events = events
        self._y = y.astype(np.int64)
        self._y.setflags(write=False)
        self._n_classes = int(n_classes)
        self.dt = float(dt)
        self.counts = bool(counts)
        self.name = name
        self.class_names = None if class_names is None else tuple(class_names)
        self.extra = dict(extra or {})
        self.dropped_events = int(dropped_events)

    @property
    def labels(self) -> np.ndarray:
        """The read-only labels, int64 ``[S]``."""
        return self._y

    @property
    def n_inputs(self) -> int:
        return self.events.n_channels

    @property
    def n_steps(self) -> int:
        return self.events.n_steps

    @property
    def n_classes(self) -> int:
        return self._n_classes

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return (
            f"<RaggedDataset{name}: {len(self)} examples, {self.n_steps} steps of {self.dt:g} ms, "
            f"{self.n_inputs} inputs, {self.n_classes} classes, {self.events.n_events} events>"
        )

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(x [T, B, N], labels int64 [B])`` for the examples at ``indices`` (in that order)."""
        idx = _as_indices(indices, len(self), f"{self.name or 'RaggedDataset'}.batch")
        return self.events.dense(idx, counts=self.counts), self._y[idx].copy()

    def subset(self, indices) -> RaggedDataset:
        """A new data set of the examples at ``indices`` (events copied; same options)."""
        idx = _as_indices(indices, len(self), f"{self.name or 'RaggedDataset'}.subset")
        return RaggedDataset(
            self.events.take(idx),
            self._y[idx],
            self._n_classes,
            dt=self.dt,
            counts=self.counts,
            name=self.name,
            class_names=self.class_names,
            extra={k: np.asarray(v)[idx] for k, v in self.extra.items()},
        )

    def class_counts(self) -> np.ndarray:
        """Examples per class, ``[n_classes]``."""
        return np.bincount(self._y, minlength=self._n_classes)
