"""Tonic-style event arrays as spike data sets (SPEC §9, interop); tonic itself is not needed.

An example is a NumPy structured array with fields ``t`` (time in **microseconds**, as tonic
stores it), ``x``, ``p`` (polarity) and optionally ``y``.  With ``sensor_size = (W, H, P)`` as
tonic gives it (``H = 1`` for one-dimensional sensors such as SHD's 700 channels), an event maps to
input

    ``p * H * W + y * W + x``        (``y = 0`` when the field is absent)

which is the index of a tonic ``ToFrame`` frame ``[P, H, W]`` flattened in C order; when
``P == 1`` the polarity is ignored, as tonic does (tonic's SHD stores ``p = 1`` with ``P = 1``).
An event at ``t`` falls in step ``floor(t / (1000 dt))``; events at or after ``duration`` are
dropped.  ``batch(indices)`` gives ``x [T, B, W H P]``, bool (at most one spike per input per step)
or uint8 counts.

:func:`events_dataset` takes a list of arrays and labels and keeps the events ragged;
:func:`from_tonic` wraps a tonic data set (anything indexable giving ``(events, label)`` with a
``sensor_size``) and reads its examples only when a batch needs them.
"""

from __future__ import annotations

import numbers

import numpy as np

from .dataset import _as_indices
from .ragged import RaggedDataset, RaggedEvents, bin_events, n_steps_for, time_to_step

__all__ = ["events_dataset", "from_tonic", "event_channels", "TonicDataset"]


def _sensor(sensor_size, where: str) -> tuple[int, int, int]:
    try:
        size = tuple(int(s) for s in sensor_size)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: sensor_size must be (W, H, P) integers, got {sensor_size!r}") from None
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"{where}: sensor_size must be three integers (W, H, P) >= 1, got {sensor_size!r}")
    return size


def event_channels(events, sensor_size, *, dt: float, n_steps: int | None, where: str = "events"):
    """``(steps, channels, dropped)`` of one tonic-style structured array: the step index and input
    index of each event inside ``n_steps`` steps of ``dt`` ms (all of them when ``n_steps`` is
    None), and how many fell after the end.

    ``ValueError`` naming ``where`` and the field when a field is missing or out of range.
    """
    W, H, P = _sensor(sensor_size, where)
    ev = np.asarray(events)
    names = ev.dtype.names
    if names is None:
        raise ValueError(
            f"{where}: expected a structured array with fields t, x, p (and optionally y), got dtype {ev.dtype}"
        )
    for field in ("t", "x", "p"):
        if field not in names:
            raise ValueError(f"{where}: missing field {field!r}; tonic-style events have fields t, x, p (optionally y)")
    if ev.ndim != 1:
        raise ValueError(f"{where}: expected a 1-d array of events, got shape {ev.shape}")
    t = np.asarray(ev["t"], dtype=np.float64)
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
        raise ValueError(f"{where}: field 't' must hold finite times >= 0 (microseconds), got min {t.min()}")
    index = np.zeros(len(ev), dtype=np.int64)
    limits = (("x", W, 1), ("y", H, W), ("p", P, W * H))
    for field, size, stride in limits:
        if field == "y" and field not in names:
            continue
        if field == "p" and P == 1:
            continue
        raw = np.asarray(ev[field])
        if raw.dtype.kind == "b":
            raw = raw.astype(np.int64)
        if raw.dtype.kind not in "iu" and raw.size:
            if raw.dtype.kind != "f" or np.any(raw != np.round(raw)):
                raise ValueError(f"{where}: field {field!r} must hold whole numbers, got dtype {raw.dtype}")
        values = raw.astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(
                f"{where}: field {field!r} must lie in [0, {size - 1}] for sensor_size {(W, H, P)}, "
                f"got {values.min()}..{values.max()}"
            )
        index += values * stride
    steps = time_to_step(t / 1000.0, dt)
    if n_steps is None:
        return steps, index, 0
    keep = steps < n_steps
    return steps[keep], index[keep], int((~keep).sum())


def events_dataset(
    events,
    labels,
    sensor_size,
    *,
    dt: float = 1.0,
    duration: float | None = None,
    n_classes: int | None = None,
    counts: bool = False,
    name: str = "events",
) -> RaggedDataset:
    """A :class:`~spikeloom.data.ragged.RaggedDataset` from a list of tonic-style event arrays.

    - ``events``: one structured array per example (fields ``t`` in µs, ``x``, ``p``, optional ``y``);
    - ``labels``: one integer per example; ``n_classes`` defaults to ``max(labels) + 1``;
    - ``sensor_size``: ``(W, H, P)``, giving ``N = W H P`` inputs (mapping in the module doc);
    - ``dt`` (ms, default 1) and ``duration`` (ms; default: up to the last event of any example),
      giving ``T = ceil(duration / dt)`` steps; ``counts``: uint8 counts instead of bool.

    Every array is checked once here; ``ValueError`` names the example and the field.
    """
    events = list(events)
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise ValueError(f"{name}: labels must be a 1-d sequence of integers, got dtype {y.dtype}, shape {y.shape}")
    if len(y) != len(events):
        raise ValueError(f"{name}: {len(events)} event arrays but {len(y)} labels; give one label per example")
    if not events:
        raise ValueError(f"{name}: no examples")
    if y.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, got min {y.min()}")
    if n_classes is None:
        n_classes = int(y.max()) + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"{name}: n_classes must be an integer >= 1, got {n_classes!r}")
    if y.max() >= n_classes:
        raise ValueError(f"{name}: labels must lie in [0, {n_classes - 1}], got max {y.max()}")
    W, H, P = _sensor(sensor_size, name)
    n_steps_for(1.0, dt, name)  # validates dt
    steps, chans = [], []
    for i, ev in enumerate(events):
        s, c, _ = event_channels(ev, (W, H, P), dt=dt, n_steps=None, where=f"{name}[{i}]")
        steps.append(s)
        chans.append(c)
    if duration is None:
        # just long enough that the last event of any example lands in the last step
        n_steps = 1 + max((int(s.max()) for s in steps if len(s)), default=0)
    else:
        n_steps = n_steps_for(duration, dt, name)
    dropped = 0
    for i, s in enumerate(steps):
        keep = s < n_steps
        dropped += int((~keep).sum())
        steps[i], chans[i] = s[keep], chans[i][keep]
    ragged = RaggedEvents.from_lists(steps, chans, n_steps=n_steps, n_channels=W * H * P)
    return RaggedDataset(
        ragged, y.astype(np.int64), int(n_classes), dt=dt, counts=counts, name=name, dropped_events=dropped
    )


class TonicDataset:
    """A tonic data set read lazily: ``source[i]`` gives ``(events, label)`` and is called only for
    the examples of a batch.  ``x [T, B, W H P]`` as in :func:`events_dataset`; no ``labels``
    property (reading every label would read every example), so splits are not stratified.
    """

    def __init__(
        self,
        source,
        sensor_size,
        *,
        n_classes: int,
        dt: float,
        duration: float,
        counts: bool = False,
        name: str = "tonic",
    ) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
            raise ValueError(f"{name}: n_classes must be an integer >= 1, got {n_classes!r}")
        self.source = source
        self.sensor_size = _sensor(sensor_size, name)
        self._n_steps = n_steps_for(duration, dt, name)
        self._n_classes = int(n_classes)
        self.dt = float(dt)
        self.counts = bool(counts)
        self.name = name
        if len(source) < 1:
            raise ValueError(f"{name}: the source holds no examples")

    @property
    def n_inputs(self) -> int:
        W, H, P = self.sensor_size
        return W * H * P

    @property
    def n_steps(self) -> int:
        return self._n_steps

    @property
    def n_classes(self) -> int:
        return self._n_classes

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"<TonicDataset {self.name!r}: {len(self)} examples, {self.n_steps} steps of {self.dt:g} ms, {self.n_inputs} inputs>"

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(x [T, B, N], labels int64 [B])``, reading only these examples from the source."""
        idx = _as_indices(indices, len(self), f"{self.name}.batch")
        example, steps, chans, labels = [], [], [], []
        for b, i in enumerate(idx):
            ev, label = self.source[int(i)]
            s, c, _ = event_channels(ev, self.sensor_size, dt=self.dt, n_steps=self._n_steps, where=f"{self.name}[{i}]")
            label = int(np.asarray(label))
            if not 0 <= label < self._n_classes:
                raise ValueError(f"{self.name}[{i}]: label {label} outside [0, {self._n_classes - 1}]")
            example.append(np.full(len(s), b, dtype=np.int64))
            steps.append(s)
            chans.append(c)
            labels.append(label)
        x = bin_events(
            np.concatenate(example),
            np.concatenate(steps),
            np.concatenate(chans),
            n_steps=self._n_steps,
            batch=len(idx),
            n_channels=self.n_inputs,
            counts=self.counts,
        )
        return x, np.asarray(labels, dtype=np.int64)


def from_tonic(
    dataset, *, dt: float = 1.0, duration: float, n_classes: int | None = None, sensor_size=None, counts: bool = False
) -> TonicDataset:
    """Wrap a tonic data set (``dataset[i] -> (events, label)``, ``dataset.sensor_size``,
    ``dataset.classes`` or ``n_classes``); see :class:`TonicDataset`.  ``duration`` (ms) is
    required: finding the longest example would read them all."""
    size = sensor_size if sensor_size is not None else getattr(dataset, "sensor_size", None)
    if size is None:
        raise ValueError("from_tonic: the data set has no sensor_size; pass sensor_size=(W, H, P)")
    if n_classes is None:
        classes = getattr(dataset, "classes", None)
        if classes is None:
            raise ValueError("from_tonic: the data set has no classes attribute; pass n_classes")
        n_classes = len(classes)
    return TonicDataset(
        dataset, size, n_classes=n_classes, dt=dt, duration=duration, counts=counts, name=type(dataset).__name__
    )
