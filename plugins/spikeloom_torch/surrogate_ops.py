"""The SPEC §5 surrogates evaluated in place on torch tensors.

``spikeloom.surrogates`` writes each surrogate once against the Array API; on a ``[T, B, N]``
array each of its operations makes a new array of that size.  Here the known kinds overwrite
their argument instead (same formulas, same order of operations); other surrogates fall back to
the generic object.
"""

from __future__ import annotations

import math

import torch

from spikeloom.surrogates import Atan, Sigmoid, SuperSpike, Surrogate, Triangle

__all__ = ["surrogate_"]


def surrogate_(sg: Surrogate, x: torch.Tensor, v_thresh: torch.Tensor) -> torch.Tensor:
    """``sg(x, v_thresh)`` written into ``x`` (``x = V - theta``, ``v_thresh`` broadcasting
    against it); returns ``x``."""
    if type(sg) is SuperSpike:  # 1 / (beta |x| + 1)^2
        return x.abs_().mul_(sg.beta).add_(1.0).pow_(-2)  # pow -2 is one pass: 1 / (y * y)
    if type(sg) is Triangle:  # (gamma / v_thresh) max(0, 1 - |x| / v_thresh)
        return x.abs_().div_(v_thresh).neg_().add_(1.0).clamp_min_(0.0).mul_(sg.gamma / v_thresh)
    if type(sg) is Sigmoid:  # slope e / (1 + e)^2, e = exp(-slope |x|)
        e = x.abs_().mul_(-sg.slope).exp_()
        d = torch.add(e, 1.0)
        return e.mul_(sg.slope).div_(d.mul_(d))
    if type(sg) is Atan:  # (alpha / 2) / (1 + (pi/2 alpha x)^2)
        y = x.mul_(math.pi / 2.0 * sg.alpha)
        return y.mul_(y).add_(1.0).reciprocal_().mul_(sg.alpha / 2.0)
    return x.copy_(sg(x, v_thresh))
