"""Classification readouts and their losses (SPEC §4), with the NumPy reference of each loss.

Logits are the readout population's ``Y[t] = V[t]``, ``[T, B, C]``.  ``window=(start, stop)`` is a
Python slice over steps used by ``per_step``, ``max`` and ``mean``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np

from .populations import check_name

__all__ = ["Readout", "MODES", "readout_loss", "rate_regularizer", "check_labels"]

MODES = ("per_step", "max", "mean", "last")


def _window(value):
    if value is None:
        return None
    if isinstance(value, slice):
        if value.step not in (None, 1):
            raise ValueError(f"Readout.window: slice steps are not supported, got step={value.step}")
        value = (value.start, value.stop)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"Readout.window must be (start, stop) with ints or None, got {value!r}")
    for v in value:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise ValueError(f"Readout.window must be (start, stop) with ints or None, got {value!r}")
    return (None if value[0] is None else int(value[0]), None if value[1] is None else int(value[1]))


def _nonneg(instance, attribute, value):
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Readout.{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class Readout:
    """Which population's ``Y`` gives the logits, and how they become a loss.

    ``mode``: ``per_step`` (mean over window steps of the cross-entropy of ``softmax(Y[t])``;
    prediction ``argmax sum_t softmax(Y[t])``), ``max`` (of ``max_t Y``, ties to the first step),
    ``mean`` (of the time-mean), ``last`` (of ``Y[T-1]``; no window).  ``c_reg`` (default 0) adds
    ``c_reg * mean_j (rate_j - target_rate)^2`` over all spiking neurons, rates in Hz.
    """

    kind: ClassVar[str] = "readout"
    population: str = attrs.field(validator=lambda i, a, v: check_name("Readout population", v))
    mode: str = attrs.field(default="per_step")
    window: tuple[int | None, int | None] | None = attrs.field(default=None, converter=_window)
    c_reg: float = attrs.field(default=0.0, converter=float, validator=_nonneg, kw_only=True)
    target_rate: float = attrs.field(default=10.0, converter=float, validator=_nonneg, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Readout.mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "last" and self.window is not None:
            raise ValueError(
                "Readout.window cannot be used with mode='last'; drop the window or choose per_step/max/mean"
            )

    def steps(self, T: int) -> slice:
        """The slice of steps the loss looks at; ``ValueError`` if it is empty for ``T`` steps."""
        if self.mode == "last":
            return slice(T - 1, T)
        s = slice(*(self.window or (None, None)))
        if len(range(*s.indices(T))) == 0:
            raise ValueError(f"Readout.window {self.window} selects no step of a {T}-step input")
        return s

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def check_labels(labels, batch: int, n_classes: int) -> np.ndarray:
    """Labels as int64 ``[B]``; ``ValueError`` for the wrong shape, a non-integer dtype or a class out of range."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"labels must have shape [B] = [{batch}], got {list(arr.shape)}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes - 1}] (the readout has {n_classes} neurons), got min {arr.min()}, max {arr.max()}"
        )
    return arr.astype(np.int64)


def _softmax(y: np.ndarray) -> np.ndarray:
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(y: np.ndarray) -> np.ndarray:
    m = y.max(axis=-1, keepdims=True)
    return y - m - np.log(np.exp(y - m).sum(axis=-1, keepdims=True))


def readout_loss(Y: np.ndarray, labels: np.ndarray, readout: Readout) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss (batch mean), ``dloss/dY`` ``[T, B, C]`` and predictions ``[B]`` for logits ``Y``."""
    T, B, C = Y.shape
    s = readout.steps(T)
    steps = np.arange(T)[s]
    onehot = np.zeros((B, C), dtype=Y.dtype)
    onehot[np.arange(B), labels] = 1
    dY = np.zeros_like(Y)
    if readout.mode == "per_step":
        Yw = Y[steps]
        loss = -np.mean(np.sum(_log_softmax(Yw) * onehot, axis=-1))
        p = _softmax(Yw)
        dY[steps] = (p - onehot) / (B * len(steps))
        return float(loss), dY, np.argmax(p.sum(axis=0), axis=-1)
    if readout.mode == "max":
        Yw = Y[steps]
        idx = np.argmax(Yw, axis=0)  # first maximum: ties go to the earliest step
        logits = np.take_along_axis(Yw, idx[None], axis=0)[0]
        g = (_softmax(logits) - onehot) / B
        bb, cc = np.meshgrid(np.arange(B), np.arange(C), indexing="ij")
        dY[steps[idx], bb, cc] = g
    elif readout.mode == "mean":
        logits = Y[steps].mean(axis=0)
        dY[steps] = ((_softmax(logits) - onehot) / (B * len(steps)))[None]
    else:  # last
        logits = Y[T - 1]
        dY[T - 1] = (_softmax(logits) - onehot) / B
    loss = -np.mean(np.sum(_log_softmax(logits) * onehot, axis=-1))
    return float(loss), dY, np.argmax(logits, axis=-1)


def rate_regularizer(spikes: dict[str, np.ndarray], dt: float, c_reg: float, target_rate: float):
    """``c_reg * mean_j (rate_j - target)^2`` over the neurons of all given ``[T, B, N]`` spike
    arrays (rates in Hz), and its derivative with respect to each spike array."""
    if c_reg == 0 or not spikes:
        return 0.0, {k: None for k in spikes}
    n_total = sum(z.shape[2] for z in spikes.values())
    value = 0.0
    grads = {}
    for name, z in spikes.items():
        T, B, _ = z.shape
        rate = z.mean(axis=(0, 1)) * (1000.0 / dt)
        diff = rate - target_rate
        value += float(np.sum(diff**2))
        grads[name] = np.broadcast_to(c_reg * 2.0 * diff / n_total * (1000.0 / dt) / (T * B), z.shape).astype(z.dtype)
    return c_reg * value / n_total, grads
