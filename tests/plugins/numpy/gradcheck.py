"""Helpers for checking reference gradients against central finite differences.

The spiking forward pass is not differentiable, so these checks swap the Heaviside step for a
smooth function whose derivative *is* the surrogate (``x / (beta |x| + 1)`` for SuperSpike).
BPTT with ``detach_reset=False`` is then the exact gradient of that smooth network, and central
differences of the loss must match it.
"""

from __future__ import annotations

import numpy as np


def smooth_superspike(beta: float):
    """Antiderivative of SuperSpike(beta): ``F(x) = x / (beta |x| + 1)``."""
    return lambda x: x / (beta * np.abs(x) + 1.0)


def finite_difference(compiled, x, labels, name: str, index: tuple, eps: float = 1e-6) -> float:
    """Central difference of the loss with respect to ``params[name][index]``."""
    params = compiled.get_params()
    base = params[name].copy()
    out = []
    for sign in (+1, -1):
        p = base.copy()
        p[index] += sign * eps
        compiled.set_params({name: p})
        out.append(compiled.loss_and_grads(x, labels).loss)
    compiled.set_params({name: base})
    return (out[0] - out[1]) / (2 * eps)
