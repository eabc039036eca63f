"""Connections between populations (SPEC §2).

A connection delivers spikes emitted by ``source`` at step ``t`` to ``target`` at step
``t + delay`` (``delay >= 1``, in steps): ``h_target[t] += W^T s_source[t - delay]`` with ``W`` of
shape ``[N_pre, N_post]``.
"""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .connectivity import Connectivity, Dense, Explicit
from .distributions import Distribution
from .initializers import Initializer, KaimingUniform
from .parameters import array_field, frozen_array
from .populations import check_name

__all__ = ["Connection", "WeightSpec"]

WeightSpec = float | np.ndarray | Distribution | Initializer


def _convert_weight(value):
    if isinstance(value, (Distribution, Initializer)):
        return value
    if isinstance(value, bool):
        raise ValueError("Connection.weight: expected a number, an array, a distribution or an initializer, got a bool")
    if isinstance(value, numbers.Real):
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"Connection.weight must be finite, got {v!r}")
        return v
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise ValueError(
            f"Connection.weight: expected a number, an array, a distribution (Normal, Uniform) "
            f"or an initializer (KaimingUniform), got {value!r}"
        )
    arr = frozen_array(value, np.float64, "Connection.weight")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"Connection.weight array must be [N_pre, N_post] (or [n_synapses] with Explicit), got shape {arr.shape}"
        )
    return arr


def _convert_connectivity(value):
    if isinstance(value, Connectivity):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Explicit(pre=value[0], post=value[1])
    raise ValueError(
        "Connection.connectivity must be Dense(), FixedProbability(p), Explicit(pre, post) "
        f"or a (pre, post) tuple of index arrays, got {value!r:.80}"
    )


def _delay(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Connection {instance.source}->{instance.target}: delay must be an integer >= 1 (steps), got {value!r}"
        )


def _bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"Connection {instance.source}->{instance.target}: {attribute.name} must be True or False, got {value!r}"
        )


@attrs.frozen
class Connection:
    """A projection ``source -> target``.

    ``weight``: initial weights (scalar, ``[N_pre, N_post]`` array, distribution or initializer;
    default ``KaimingUniform()``); ``connectivity``: ``Dense()``, ``FixedProbability(p)`` or
    ``Explicit(pre, post)``; ``delay`` in steps (>= 1); ``trainable``; ``allow_self`` keeps the
    ``i -> i`` synapses of a recurrent connection (excluded by default); ``name`` defaults to
    ``"{source}_to_{target}"``.
    """

    source: str = attrs.field(validator=lambda i, a, v: check_name("Connection source", v))
    target: str = attrs.field(validator=lambda i, a, v: check_name("Connection target", v))
    weight: WeightSpec = array_field(default=attrs.Factory(KaimingUniform), converter=_convert_weight, kw_only=True)
    connectivity: Connectivity = attrs.field(
        default=attrs.Factory(Dense), converter=_convert_connectivity, kw_only=True
    )
    delay: int = attrs.field(default=1, validator=_delay, kw_only=True)
    trainable: bool = attrs.field(default=True, validator=_bool, kw_only=True)
    allow_self: bool = attrs.field(default=False, validator=_bool, kw_only=True)
    name: str = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.name is None:
            object.__setattr__(self, "name", f"{self.source}_to_{self.target}")
        check_name("Connection", self.name)
        object.__setattr__(self, "delay", int(self.delay))
        if (
            isinstance(self.weight, np.ndarray)
            and self.weight.ndim == 1
            and not isinstance(self.connectivity, Explicit)
        ):
            raise ValueError(
                f"Connection {self.name!r}: a 1-d weight array needs Explicit connectivity; give [N_pre, N_post] otherwise"
            )

    @property
    def recurrent(self) -> bool:
        return self.source == self.target
