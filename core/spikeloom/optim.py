"""Adam (SPEC §6), written once against the Array API so it runs on NumPy, PyTorch and CuPy arrays.

Update, for step t = 1, 2, ... and each parameter p with gradient g::

    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g^2
    p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping

import attrs
import numpy as np
from array_api_compat import array_namespace

__all__ = ["Adam"]


def _check(instance, attribute, value):
    if attribute.name in ("beta1", "beta2"):
        ok, rng = math.isfinite(value) and 0 <= value < 1, "in [0, 1)"
    else:
        ok, rng = math.isfinite(value) and value > 0, "a finite number > 0"
    if not ok:
        raise ValueError(f"Adam.{attribute.name} must be {rng}, got {value!r}")


@attrs.define
class Adam:
    """Adam with ``lr`` (default 1e-3), ``beta1`` 0.9, ``beta2`` 0.999, ``eps`` 1e-8.

    :meth:`step` updates a dict of parameter arrays in place (entries are replaced by new arrays),
    one step per batch, from gradients averaged as the loss is.
    """

    lr: float = attrs.field(default=1e-3, converter=float, validator=_check)
    beta1: float = attrs.field(default=0.9, converter=float, validator=_check)
    beta2: float = attrs.field(default=0.999, converter=float, validator=_check)
    eps: float = attrs.field(default=1e-8, converter=float, validator=_check)
    t: int = attrs.field(default=0, init=False)
    m: dict = attrs.field(factory=dict, init=False, repr=False)
    v: dict = attrs.field(factory=dict, init=False, repr=False)

    def step(self, params: MutableMapping[str, object], grads: dict[str, object]) -> None:
        """Apply one update to every parameter named in ``grads``."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for name, g in grads.items():
            xp = array_namespace(g)
            if name not in self.m:
                self.m[name] = xp.zeros_like(g)
                self.v[name] = xp.zeros_like(g)
            m = self.beta1 * self.m[name] + (1.0 - self.beta1) * g
            v = self.beta2 * self.v[name] + (1.0 - self.beta2) * (g * g)
            self.m[name], self.v[name] = m, v
            params[name] = params[name] - self.lr * (m / c1) / (xp.sqrt(v / c2) + self.eps)

    def state_dict(self, to_host: Callable[[object], np.ndarray] = np.asarray) -> tuple[dict, dict[str, np.ndarray]]:
        """``(scalars, arrays)``: hyper-parameters and step count, and the moments as host arrays
        named ``"m/<param>"`` and ``"v/<param>"`` (for safetensors)."""
        scalars = {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "t": self.t}
        arrays = {f"m/{k}": to_host(v) for k, v in self.m.items()}
        arrays.update({f"v/{k}": to_host(v) for k, v in self.v.items()})
        return scalars, arrays

    def load_state_dict(self, scalars: dict, arrays: dict[str, object], from_host: Callable = lambda a: a) -> None:
        """Restore what :meth:`state_dict` returned (``from_host`` moves arrays to the device).

        Everything is checked before anything is changed: a malformed state leaves the optimiser as it was.
        """
        if not isinstance(scalars, dict):
            raise ValueError(f"optimizer state: scalars must be a dict, got {type(scalars).__name__}")
        hyper = {}
        for key in ("lr", "beta1", "beta2", "eps"):
            if key in scalars:
                value = scalars[key]
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise ValueError(f"optimizer state: Adam.{key} must be a number, got {value!r}")
                hyper[key] = float(value)
                _check(self, attrs.fields_dict(Adam)[key], hyper[key])
        t = scalars.get("t", 0)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"optimizer state: 't' must be an integer >= 0, got {t!r}")
        m, v = {}, {}
        for key, arr in arrays.items():
            kind, _, name = key.partition("/")
            if kind not in ("m", "v") or not name:
                raise ValueError(f"optimizer state: unexpected array {key!r}; expected 'm/<param>' or 'v/<param>'")
            (m if kind == "m" else v)[name] = arr
        if set(m) != set(v):
            raise ValueError("optimizer state: first and second moments name different parameters")
        for key, value in hyper.items():
            setattr(self, key, value)
        self.t = int(t)
        self.m = {k: from_host(a) for k, a in m.items()}
        self.v = {k: from_host(a) for k, a in v.items()}
