"""What a backend declares it can compute, and the check that holds it to that declaration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from .errors import UnsupportedFeature

if TYPE_CHECKING:  # pragma: no cover
    from .built import BuiltNetwork

__all__ = ["Capabilities", "ALL_MODELS", "ALL_SURROGATES", "ALL_READOUTS", "requirements", "device_kind"]

ALL_MODELS = frozenset({"LIF", "ALIF", "LI"})
ALL_SYNAPSES = frozenset({"delta", "exponential"})
ALL_RESETS = frozenset({"subtract", "zero"})
ALL_CONNECTIVITY = frozenset({"dense", "fixed_probability", "explicit"})
ALL_DTYPES = frozenset({"float32", "float64"})
ALL_RULES = frozenset({"bptt", "eprop"})
ALL_SURROGATES = frozenset({"superspike", "triangle", "sigmoid", "atan"})
ALL_READOUTS = frozenset({"per_step", "max", "mean", "last"})


def _frozenset(value, field) -> frozenset:
    where = f"Capabilities.{field.name}"
    if isinstance(value, str):
        raise ValueError(f"{where} must be a collection of strings, got the string {value!r}")
    try:
        out = frozenset(value)
    except TypeError:
        raise ValueError(f"{where} must be a collection of strings, got {value!r:.80}") from None
    if not all(isinstance(v, str) for v in out):
        raise ValueError(f"{where} must hold strings, got {sorted(map(repr, out))}")
    return out


def _subset_of(allowed: frozenset, extensible: bool = False):
    def check(instance, attribute, value):
        unknown = value - allowed
        if unknown and not extensible:
            raise ValueError(
                f"Capabilities.{attribute.name}: unknown values {sorted(unknown)}; known: {sorted(allowed)}"
            )

    return check


def _optional_positive_int(instance, attribute, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"Capabilities.{attribute.name} must be None (no limit) or an integer >= 1, got {value!r}")


def _flag(default: bool):
    def check(instance, attribute, value):
        if not isinstance(value, bool):
            raise ValueError(f"Capabilities.{attribute.name} must be True or False, got {value!r}")

    return attrs.field(default=default, validator=check, kw_only=True)


def _set(default, allowed, extensible=False):
    return attrs.field(
        default=frozenset(default),
        converter=attrs.Converter(_frozenset, takes_field=True),
        validator=_subset_of(allowed, extensible),
        kw_only=True,
    )


@attrs.frozen
class Capabilities:
    """A backend's declaration. Compiling anything outside it raises :class:`UnsupportedFeature`.

    ``devices`` holds device kinds (``"cpu"``, ``"cuda"``; a third party may add its own);
    ``max_delay`` and ``max_neurons`` are limits (None: none).
    """

    models: frozenset = _set(ALL_MODELS, ALL_MODELS)
    synapses: frozenset = _set(ALL_SYNAPSES, ALL_SYNAPSES)
    resets: frozenset = _set(ALL_RESETS, ALL_RESETS)
    connectivity: frozenset = _set(ALL_CONNECTIVITY, ALL_CONNECTIVITY)
    dtypes: frozenset = _set({"float32"}, ALL_DTYPES)
    devices: frozenset = _set({"cpu"}, frozenset(), extensible=True)
    rules: frozenset = _set((), ALL_RULES)
    surrogates: frozenset = _set((), ALL_SURROGATES)
    readouts: frozenset = _set((), ALL_READOUTS)
    refractory: bool = _flag(True)
    heterogeneous: bool = _flag(True)
    trainable_time_constants: bool = _flag(False)
    scale_input: bool = _flag(True)
    #: implements ``Compiled.step`` (one step from a given state), used for state-forced checks
    stepping: bool = _flag(False)
    max_delay: int | None = attrs.field(default=None, validator=_optional_positive_int, kw_only=True)
    max_neurons: int | None = attrs.field(default=None, validator=_optional_positive_int, kw_only=True)

    def to_dict(self) -> dict:
        out = {}
        for f in attrs.fields(type(self)):
            v = getattr(self, f.name)
            out[f.name] = sorted(v) if isinstance(v, frozenset) else v
        return out

    def check(self, backend: str, needs: Iterator[tuple[str, object]]) -> None:
        """Raise :class:`UnsupportedFeature` for the first need outside this declaration."""
        for feature, value in needs:
            declared = getattr(self, feature)
            if isinstance(declared, frozenset):
                ok = value in declared
            elif isinstance(declared, bool):
                ok = declared or not value
            else:  # a limit
                ok = declared is None or value <= declared
            if not ok:
                raise UnsupportedFeature(backend, feature, value, f"it declares {feature}={_show(declared)}")


def _show(v):
    return sorted(v) if isinstance(v, frozenset) else v


def device_kind(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``."""
    return device.split(":", 1)[0]


def requirements(
    built: BuiltNetwork,
    *,
    dtype: str,
    device: str,
    rule: str | None = None,
    surrogate: str | None = None,
    readout: str | None = None,
) -> Iterator[tuple[str, object]]:
    """Every capability the compile request needs, as ``(field, value)`` pairs."""
    yield "dtypes", dtype
    yield "devices", device_kind(device)
    total = 0
    for p in built.neuron_populations:
        total += p.n
        yield "models", p.kind
        yield "synapses", p.synapse
        if p.reset is not None:
            yield "resets", p.reset
        if p.n_ref is not None and p.n_ref.any():
            yield "refractory", True
        if p.scale_input:
            yield "scale_input", True
        if p.train_tau_mem or p.train_tau_syn:
            yield "trainable_time_constants", True
    for pop in built.network.populations:
        if pop.heterogeneous:
            yield "heterogeneous", True
    for c, spec in zip(built.connections, built.network.connections, strict=True):
        yield "connectivity", spec.connectivity.kind
        yield "max_delay", c.delay
    yield "max_neurons", total + sum(p.n for p in built.inputs)
    if rule is not None:
        yield "rules", rule
    if surrogate is not None:
        yield "surrogates", surrogate
    if readout is not None:
        yield "readouts", readout
