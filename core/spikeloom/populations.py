"""Populations: spike inputs, LIF and adaptive LIF neurons, and leaky-integrator readouts.

All times are in ms.  Per-neuron parameters may be a scalar, an array of length ``n`` or a
distribution spec (:mod:`spikeloom.distributions`), materialised from the network's seed.
The dynamics are given in docs/model.md (SPEC §3).
"""

from __future__ import annotations

import re
from typing import ClassVar

import attrs
import numpy as np

from .distributions import Distribution
from .parameters import ParamValue, array_field, as_param

__all__ = ["Population", "SpikeInput", "LIF", "ALIF", "LI", "RESETS", "POPULATION_KINDS", "check_name"]

RESETS = ("subtract", "zero")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(kind: str, value) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{kind} name must be an identifier (letters, digits, '_', not starting with a digit), got {value!r}"
        )
    return value


def _name_validator(instance, attribute, value):
    check_name(type(instance).__name__, value)


def _n_validator(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{type(instance).__name__} {instance.name!r}: n must be an integer >= 1, got {value!r}")


def _param(default, *, lower: float, strict: bool, allow_zero_scalar: bool = False):
    """A per-neuron parameter field with a lower bound (``> lower`` if strict else ``>= lower``)."""

    def validate(instance, attribute, value):
        where = f"{type(instance).__name__} {instance.name!r}: {attribute.name}"
        if isinstance(value, Distribution):
            return  # checked on the drawn values at build time
        arr = np.atleast_1d(value)
        if isinstance(value, np.ndarray) and arr.shape != (instance.n,):
            raise ValueError(f"{where} has {arr.shape[0]} values but the population has n={instance.n}")
        if allow_zero_scalar and not isinstance(value, np.ndarray) and value == 0:
            return
        bad = arr <= lower if strict else arr < lower
        if np.any(bad):
            rel = ">" if strict else ">="
            hint = " (tau_syn=0 as a scalar selects a delta synapse)" if allow_zero_scalar else ""
            raise ValueError(
                f"{where} must be {rel} {lower:g}, got {value if arr.size == 1 else 'an array with ' + str(int(bad.sum())) + ' such values'}{hint}"
            )

    def convert(value, instance, field):
        return as_param(value, f"{type(instance).__name__} {instance.name!r}: {field.name}")

    return array_field(
        default=default,
        converter=attrs.Converter(convert, takes_self=True, takes_field=True),
        validator=validate,
        kw_only=True,
        metadata={"lower": lower, "strict": strict},
    )


@attrs.frozen
class Population:
    """Base class: a named group of ``n`` neurons."""

    kind: ClassVar[str] = ""
    spiking: ClassVar[bool] = False
    state_vars: ClassVar[tuple[str, ...]] = ()
    #: fields that hold per-neuron parameters (see :mod:`spikeloom.parameters`)
    param_fields: ClassVar[tuple[str, ...]] = ()

    name: str = attrs.field(validator=_name_validator)
    n: int = attrs.field(converter=lambda v: int(v) if isinstance(v, np.integer) else v, validator=_n_validator)

    @property
    def synapse(self) -> str:
        """``"delta"`` when tau_syn is the scalar 0, else ``"exponential"``."""
        tau_syn = getattr(self, "tau_syn", 0.0)
        return "delta" if not isinstance(tau_syn, (np.ndarray, Distribution)) and tau_syn == 0 else "exponential"

    @property
    def heterogeneous(self) -> bool:
        """True when a neuron parameter differs per neuron (the readout bias always may: it is trained)."""
        return any(isinstance(getattr(self, f), (np.ndarray, Distribution)) for f in self.param_fields if f != "bias")


@attrs.frozen
class SpikeInput(Population):
    """Spikes (or spike counts) given by the data, ``x[t]`` of shape ``[T, B, n]``."""

    kind: ClassVar[str] = "SpikeInput"
    spiking: ClassVar[bool] = True


def _check_trainable_tau_syn(instance) -> None:
    if instance.train_tau_syn and instance.synapse == "delta":
        raise ValueError(
            f"{instance.kind} {instance.name!r}: train_tau_syn=True needs an exponential synapse; "
            "set tau_syn > 0 or train_tau_syn=False"
        )


def _bool_field(default: bool = False):
    def validate(instance, attribute, value):
        if not isinstance(value, bool):
            raise ValueError(
                f"{type(instance).__name__} {instance.name!r}: {attribute.name} must be True or False, got {value!r}"
            )

    return attrs.field(default=default, validator=validate, kw_only=True)


def _reset_validator(instance, attribute, value):
    if value not in RESETS:
        raise ValueError(f"{type(instance).__name__} {instance.name!r}: reset must be one of {RESETS}, got {value!r}")


@attrs.frozen
class LIF(Population):
    """Leaky integrate-and-fire neurons (SPEC §3).

    ``tau_mem`` and ``tau_syn`` in ms (``tau_syn=0``: delta synapse, ``I[t] = h[t]``); ``v_thresh``
    the firing threshold; ``reset`` ``"subtract"`` (``V -= v_thresh``) or ``"zero"``; ``refractory``
    in ms (rounded to ``floor(refractory/dt + 0.5)`` steps); ``scale_input`` multiplies the input
    current by ``1 - alpha_mem``; ``train_tau_mem``/``train_tau_syn`` make the decay factors trainable.
    """

    kind: ClassVar[str] = "LIF"
    spiking: ClassVar[bool] = True
    state_vars: ClassVar[tuple[str, ...]] = ("V", "I", "z")
    param_fields: ClassVar[tuple[str, ...]] = ("tau_mem", "tau_syn", "v_thresh", "refractory")

    tau_mem: ParamValue = _param(20.0, lower=0.0, strict=True)
    tau_syn: ParamValue = _param(0.0, lower=0.0, strict=True, allow_zero_scalar=True)
    v_thresh: ParamValue = _param(1.0, lower=0.0, strict=True)
    reset: str = attrs.field(default="subtract", validator=_reset_validator, kw_only=True)
    refractory: ParamValue = _param(0.0, lower=0.0, strict=False)
    scale_input: bool = _bool_field()
    train_tau_mem: bool = _bool_field()
    train_tau_syn: bool = _bool_field()

    def __attrs_post_init__(self) -> None:
        _check_trainable_tau_syn(self)


@attrs.frozen
class ALIF(LIF):
    """Adaptive LIF (Bellec et al. 2018): threshold ``v_thresh + beta * a`` with ``a`` decaying with
    ``tau_adapt`` (ms) and jumping by 1 after each spike."""

    kind: ClassVar[str] = "ALIF"
    state_vars: ClassVar[tuple[str, ...]] = ("V", "I", "a", "z")
    param_fields: ClassVar[tuple[str, ...]] = LIF.param_fields + ("tau_adapt", "beta")

    tau_adapt: ParamValue = _param(2000.0, lower=0.0, strict=True)
    beta: ParamValue = _param(0.0174, lower=0.0, strict=False)


@attrs.frozen
class LI(Population):
    """Leaky-integrator readout: ``V[t] = alpha_mem V[t-1] + g (I[t] + bias)``, ``Y = V``; never spikes.

    ``bias`` is a trainable constant input current (starts at 0 unless given).
    """

    kind: ClassVar[str] = "LI"
    state_vars: ClassVar[tuple[str, ...]] = ("V", "I")
    param_fields: ClassVar[tuple[str, ...]] = ("tau_mem", "tau_syn", "bias")

    tau_mem: ParamValue = _param(20.0, lower=0.0, strict=True)
    tau_syn: ParamValue = _param(0.0, lower=0.0, strict=True, allow_zero_scalar=True)
    bias: ParamValue = _param(0.0, lower=-np.inf, strict=True)
    scale_input: bool = _bool_field()
    train_tau_mem: bool = _bool_field()
    train_tau_syn: bool = _bool_field()

    def __attrs_post_init__(self) -> None:
        _check_trainable_tau_syn(self)


POPULATION_KINDS: dict[str, type[Population]] = {c.kind: c for c in (SpikeInput, LIF, ALIF, LI)}
