"""Heterogeneous time constants (Perez-Nieves et al. 2021; SPEC §8).

Four configurations, named as in the paper, cross how the membrane and synaptic time constants
start with whether training changes them:

================  ===========================================  ==============================
name              initial ``tau_mem``, ``tau_syn`` (ms)          trained by the learning rule
================  ===========================================  ==============================
``HomInit-StdTr``  one value for every neuron                   no (the standard setting)
``HetInit-StdTr``  per neuron from ``Gamma(mean, shape=3)``      no
``HomInit-HetTr``  one value for every neuron                   yes, per neuron
``HetInit-HetTr``  per neuron from ``Gamma(mean, shape=3)``      yes, per neuron
================  ===========================================  ==============================

What is trained is the decay factor ``alpha = exp(-dt/tau)``, clipped to ``[2/e, 0.995]`` after
every optimiser step (:data:`spikeloom.rules.ALPHA_CLIP`)::

    hidden = apply_heterogeneity(sl.LIF("hidden", 128, tau_mem=20.0, tau_syn=10.0), "HetInit-HetTr")
    net = heterogeneous_network(net, "HetInit-StdTr")     # every LIF/ALIF population of a network
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import attrs
import numpy as np

from .distributions import Distribution, Gamma, Normal, Uniform

__all__ = [
    "Heterogeneity",
    "HOM_INIT_STD_TR",
    "HET_INIT_STD_TR",
    "HOM_INIT_HET_TR",
    "HET_INIT_HET_TR",
    "CONFIGURATIONS",
    "as_heterogeneity",
    "apply_heterogeneity",
    "heterogeneous_network",
    "tau_from_alpha",
    "alpha_from_tau",
    "time_constants",
    "TIME_CONSTANTS",
]

#: the per-neuron time constants a configuration governs
TIME_CONSTANTS = ("tau_mem", "tau_syn")


def _bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise ValueError(f"Heterogeneity.{attribute.name} must be True or False, got {value!r}")


@attrs.frozen
class Heterogeneity:
    """One of the four configurations: ``het_init`` draws the time constants per neuron from
    ``Gamma(mean, shape)`` (else one value for all), ``het_train`` makes them trainable."""

    het_init: bool = attrs.field(validator=_bool)
    het_train: bool = attrs.field(validator=_bool)

    @property
    def name(self) -> str:
        return f"{'Het' if self.het_init else 'Hom'}Init-{'Het' if self.het_train else 'Std'}Tr"

    def __str__(self) -> str:
        return self.name


HOM_INIT_STD_TR = Heterogeneity(False, False)
HET_INIT_STD_TR = Heterogeneity(True, False)
HOM_INIT_HET_TR = Heterogeneity(False, True)
HET_INIT_HET_TR = Heterogeneity(True, True)

#: the configurations by name
CONFIGURATIONS: dict[str, Heterogeneity] = {
    h.name: h for h in (HOM_INIT_STD_TR, HET_INIT_STD_TR, HOM_INIT_HET_TR, HET_INIT_HET_TR)
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def as_heterogeneity(value) -> Heterogeneity:
    """A :class:`Heterogeneity` from itself or a name (``"HetInit-HetTr"``; case, ``-``, ``_`` and
    spaces are ignored, so ``"hetinit_hettr"`` works too)."""
    if isinstance(value, Heterogeneity):
        return value
    if isinstance(value, str):
        found = {_key(k): v for k, v in CONFIGURATIONS.items()}.get(_key(value))
        if found is not None:
            return found
    raise ValueError(f"heterogeneity: unknown configuration {value!r}; choose one of {list(CONFIGURATIONS)}")


def _mean_of(value, where: str) -> float:
    if isinstance(value, (Gamma, Normal)):
        return value.mean
    if isinstance(value, Uniform):
        return 0.5 * (value.low + value.high)
    if isinstance(value, Distribution):  # pragma: no cover - every distribution is listed above
        raise ValueError(f"{where}: cannot tell the mean of {value!r}; pass it explicitly")
    if isinstance(value, np.ndarray):
        return float(np.mean(value))
    return float(value)


def _mean_arg(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"apply_heterogeneity: {name} must be None or a mean time constant in ms > 0, got {value!r}")
    return float(value)


def apply_heterogeneity(
    population,
    configuration,
    *,
    tau_mem: float | None = None,
    tau_syn: float | None = None,
    shape: float = 3.0,
    which: Iterable[str] | None = None,
):
    """A copy of ``population`` (LIF, ALIF or LI) set up for ``configuration``.

    ``configuration``: a :class:`Heterogeneity` or its name.  ``tau_mem``, ``tau_syn``: the mean
    time constants in ms (default: the mean of the population's own value: the scalar, the
    array's mean or the distribution's mean).  HetInit draws them per neuron from
    ``Gamma(mean, shape)`` (from the network's seed when the network is built), HomInit sets the
    mean for every neuron; HetTr sets ``train_tau_mem``/``train_tau_syn``, StdTr clears them.
    ``which``: the time constants the configuration governs, a subset of ``("tau_mem",
    "tau_syn")``; default ``tau_mem``, and ``tau_syn`` when the synapse is exponential (or
    ``tau_syn`` is given).  A delta synapse (``tau_syn = 0``) has no synaptic time constant to vary
    or train: naming ``tau_syn`` in ``which`` for it without a ``tau_syn`` mean is an error.
    """
    from .populations import LI, LIF

    config = as_heterogeneity(configuration)
    if not isinstance(population, (LIF, LI)):
        raise ValueError(
            f"apply_heterogeneity: {getattr(population, 'kind', type(population).__name__)} "
            f"{getattr(population, 'name', '')!r} has no time constants; give an LIF, ALIF or LI population"
        )
    where = f"apply_heterogeneity: {population.kind} {population.name!r}"
    if isinstance(shape, bool) or not isinstance(shape, numbers.Real) or not (math.isfinite(shape) and shape > 0):
        raise ValueError(f"apply_heterogeneity: shape (of the Gamma distribution) must be a number > 0, got {shape!r}")
    mem_mean = _mean_arg(tau_mem, "tau_mem")
    syn_mean = _mean_arg(tau_syn, "tau_syn")
    delta = population.synapse == "delta" and syn_mean is None
    if which is None:
        chosen = ("tau_mem",) if delta else TIME_CONSTANTS
    else:
        chosen = (which,) if isinstance(which, str) else tuple(which)
        bad = [w for w in chosen if w not in TIME_CONSTANTS]
        if bad or not chosen:
            raise ValueError(f"apply_heterogeneity: which must name some of {list(TIME_CONSTANTS)}, got {which!r}")
        if "tau_syn" in chosen and delta:
            raise ValueError(
                f"{where} has a delta synapse (tau_syn=0), so tau_syn cannot be {config.name}; "
                "pass tau_syn=<mean in ms> to give it an exponential synapse, or which=('tau_mem',)"
            )
    changes: dict[str, object] = {}
    for field in chosen:
        mean = mem_mean if field == "tau_mem" else syn_mean
        if mean is None:
            mean = _mean_of(getattr(population, field), f"{where}: {field}")
        changes[field] = Gamma(mean, shape=float(shape)) if config.het_init else mean
        changes[f"train_{field}"] = config.het_train
    return attrs.evolve(population, **changes)


def heterogeneous_network(
    network,
    configuration,
    *,
    populations: Iterable[str] | None = None,
    tau_mem: float | None = None,
    tau_syn: float | None = None,
    shape: float = 3.0,
    which: Iterable[str] | None = None,
):
    """A copy of ``network`` with :func:`apply_heterogeneity` applied to ``populations`` (names;
    default every LIF and ALIF population, readouts excluded); the other arguments as there."""
    from .network import Network
    from .populations import LIF

    if not isinstance(network, Network):
        raise ValueError(f"heterogeneous_network: network must be a spikeloom.Network, got {type(network).__name__}")
    if populations is None:
        names = {p.name for p in network.populations if isinstance(p, LIF)}
    else:
        names = {populations} if isinstance(populations, str) else set(populations)
        known = {p.name for p in network.populations}
        unknown = sorted(names - known)
        if unknown:
            raise ValueError(f"heterogeneous_network: unknown populations {unknown}; known are {sorted(known)}")
    pops = [
        apply_heterogeneity(p, configuration, tau_mem=tau_mem, tau_syn=tau_syn, shape=shape, which=which)
        if p.name in names
        else p
        for p in network.populations
    ]
    return attrs.evolve(network, populations=pops)


def tau_from_alpha(alpha, dt: float) -> np.ndarray:
    """Time constants in ms from decay factors: ``tau = -dt / ln(alpha)`` (``alpha`` in (0, 1))."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if np.any(~np.isfinite(alpha)) or np.any(alpha <= 0) or np.any(alpha >= 1):
        raise ValueError("tau_from_alpha: decay factors must lie strictly between 0 and 1")
    return -float(dt) / np.log(alpha)


def alpha_from_tau(tau, dt: float) -> np.ndarray:
    """Decay factors from time constants in ms: ``alpha = exp(-dt / tau)``."""
    return np.exp(-float(dt) / np.asarray(tau, dtype=np.float64))


def time_constants(params: Mapping[str, object], dt: float) -> dict[tuple[str, str], np.ndarray]:
    """``{(population, "tau_mem" | "tau_syn"): values in ms}`` from a parameter dict.

    Reads ``"<pop>.alpha_mem"``/``"<pop>.alpha_syn"`` (decay factors, as ``Compiled.get_params()``
    gives them for trained time constants; converted with ``dt`` in ms) and
    ``"<pop>.tau_mem"``/``"<pop>.tau_syn"`` (already in ms); other keys are ignored.
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    for key, value in params.items():
        pop, _, field = str(key).rpartition(".")
        if not pop:
            continue
        if field in ("alpha_mem", "alpha_syn"):
            out[(pop, "tau_" + field[6:])] = tau_from_alpha(value, dt)
        elif field in TIME_CONSTANTS:
            out[(pop, field)] = np.asarray(value, dtype=np.float64)
    return out
