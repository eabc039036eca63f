"""The readout losses of SPEC §4 on the device: the formulas of ``spikeloom.readout.readout_loss``
in the same order, on the runtime's arrays, so that ``Y`` ``[T, B, C]`` need not leave the device."""

from __future__ import annotations

import numpy as np

from spikeloom.readout import Readout

from .runtime import Runtime

__all__ = ["readout_loss"]


def _softmax(xp, y):
    e = xp.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(xp, y):
    m = y.max(axis=-1, keepdims=True)
    return y - m - xp.log(xp.exp(y - m).sum(axis=-1, keepdims=True))


def readout_loss(rt: Runtime, Y, labels: np.ndarray, readout: Readout):
    """Loss (batch mean, a float), ``dloss/dY`` ``[T, B, C]`` (device) and predictions ``[B]`` (host)."""
    xp = rt.xp
    T, B, C = Y.shape
    start, stop, _ = readout.steps(T).indices(T)
    n = stop - start
    onehot = xp.zeros((B, C), dtype=Y.dtype)
    onehot[xp.arange(B), rt.asarray(labels, np.int64)] = 1
    dY = xp.zeros_like(Y)
    if readout.mode == "per_step":
        Yw = Y[start:stop]
        loss = -xp.mean(xp.sum(_log_softmax(xp, Yw) * onehot, axis=-1))
        p = _softmax(xp, Yw)
        dY[start:stop] = (p - onehot) / (B * n)
        return rt.scalar(loss), dY, rt.host(xp.argmax(p.sum(axis=0), axis=-1))
    if readout.mode == "max":
        Yw = Y[start:stop]
        idx = xp.argmax(Yw, axis=0)  # the first maximum: ties go to the earliest step
        logits = xp.take_along_axis(Yw, idx[None], axis=0)[0]
        g = (_softmax(xp, logits) - onehot) / B
        dY[start + idx, xp.arange(B)[:, None], xp.arange(C)[None, :]] = g
    elif readout.mode == "mean":
        logits = Y[start:stop].mean(axis=0)
        dY[start:stop] = ((_softmax(xp, logits) - onehot) / (B * n))[None]
    else:  # last
        logits = Y[T - 1]
        dY[T - 1] = (_softmax(xp, logits) - onehot) / B
    loss = -xp.mean(xp.sum(_log_softmax(xp, logits) * onehot, axis=-1))
    return rt.scalar(loss), dY, rt.host(xp.argmax(logits, axis=-1))
