"""The readout losses and the activity regulariser of SPEC §4 on torch tensors (the formulas of
``spikeloom.readout``, in the same order), so that ``dloss/dY`` stays on the device."""

from __future__ import annotations

import numpy as np
import torch

from spikeloom.readout import Readout

__all__ = ["readout_loss", "rate_regularizer", "onehot"]


def onehot(labels: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros((labels.shape[0], n), dtype=dtype, device=labels.device)
    out[torch.arange(labels.shape[0], device=labels.device), labels] = 1
    return out


def _softmax(y: torch.Tensor) -> torch.Tensor:
    e = torch.exp(y - y.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def _log_softmax(y: torch.Tensor) -> torch.Tensor:
    m = y.amax(dim=-1, keepdim=True)
    return y - m - torch.log(torch.exp(y - m).sum(dim=-1, keepdim=True))


def readout_loss(Y: torch.Tensor, labels: torch.Tensor, readout: Readout) -> tuple[float, torch.Tensor, np.ndarray]:
    """Loss (batch mean), ``dloss/dY`` ``[T, B, C]`` (on the device) and predictions ``[B]`` (host)."""
    T, B, C = Y.shape
    start, stop, _ = readout.steps(T).indices(T)
    n_steps = stop - start
    hot = onehot(labels, C, Y.dtype)
    dY = torch.zeros_like(Y)
    if readout.mode == "per_step":  # the formulas of _softmax and _log_softmax, sharing their passes
        shifted = Y[start:stop] - Y[start:stop].amax(dim=-1, keepdim=True)
        p = torch.exp(shifted)
        total = p.sum(dim=-1, keepdim=True)
        # the log-probability of each label: sum(log_softmax * hot) has no other non-zero term
        picked = torch.gather(shifted, -1, labels.view(1, B, 1).expand(n_steps, B, 1)) - torch.log(total)
        loss = -torch.mean(picked)
        p.div_(total)
        torch.sub(p, hot, out=dY[start:stop]).div_(B * n_steps)
        return float(loss), dY, torch.argmax(p.sum(dim=0), dim=-1).cpu().numpy()
    if readout.mode == "max":
        Yw = Y[start:stop]
        idx = torch.argmax(Yw, dim=0)  # the first maximum: ties go to the earliest step
        logits = torch.gather(Yw, 0, idx[None])[0]
        g = (_softmax(logits) - hot) / B
        dY[start:stop].scatter_(0, idx[None], g[None])
    elif readout.mode == "mean":
        logits = Y[start:stop].mean(dim=0)
        dY[start:stop] = ((_softmax(logits) - hot) / (B * n_steps))[None]
    else:  # last
        logits = Y[T - 1]
        dY[T - 1] = (_softmax(logits) - hot) / B
    loss = -torch.mean(torch.sum(_log_softmax(logits) * hot, dim=-1))
    return float(loss), dY, torch.argmax(logits, dim=-1).cpu().numpy()


def rate_regularizer(spikes: dict[str, torch.Tensor], dt: float, c_reg: float, target_rate: float):
    """``c_reg * mean_j (rate_j - target)^2`` over the neurons of all given ``[T, B, N]`` spike
    tensors (rates in Hz), and its derivative with respect to each spike tensor as ``[N]`` (the
    same at every step and example; None without a regulariser)."""
    if c_reg == 0 or not spikes:
        return 0.0, {k: None for k in spikes}
    n_total = sum(z.shape[2] for z in spikes.values())
    value = 0.0
    grads = {}
    for name, z in spikes.items():
        T, B, _ = z.shape
        rate = z.mean(dim=(0, 1)) * (1000.0 / dt)
        diff = rate - target_rate
        value += float(torch.sum(diff**2))
        grads[name] = c_reg * 2.0 * diff / n_total * (1000.0 / dt) / (T * B)
    return c_reg * value / n_total, grads
