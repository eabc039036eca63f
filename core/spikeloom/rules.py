"""Learning rules (SPEC §6): what a backend computes gradients with.

The rule objects are plain frozen values; each backend implements them.  :func:`check_rule`
holds the structural conditions every backend shares (it runs in the core, at compile time).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import attrs
import numpy as np

from .distributions import rng_for
from .readout import Readout
from .surrogates import SuperSpike, Surrogate, Triangle, surrogate_from_dict

if TYPE_CHECKING:  # pragma: no cover
    from .built import BuiltNetwork

__all__ = ["BPTT", "EProp", "check_rule", "trained_populations", "feedback_matrices", "rule_from_dict", "ALPHA_CLIP"]

#: trained decay factors are clipped to this range after every optimiser step (SPEC §8)
ALPHA_CLIP = (2.0 / math.e, 0.995)


def _surrogate(value):
    if isinstance(value, Surrogate):
        return value
    if isinstance(value, dict):
        return surrogate_from_dict(value)
    raise ValueError(f"surrogate must be a Surrogate (SuperSpike, Triangle, Sigmoid, Atan), got {value!r:.80}")


def _bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be True or False, got {value!r}")


def _nonneg(instance, attribute, value):
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class BPTT:
    """Backpropagation through time with a surrogate derivative (default ``SuperSpike(10)``).

    ``detach_reset=True`` treats the reset term as a constant in the backward pass.
    """

    kind: ClassVar[str] = "bptt"
    surrogate: Surrogate = attrs.field(factory=lambda: SuperSpike(10.0), converter=_surrogate)
    detach_reset: bool = attrs.field(default=True, validator=_bool)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "surrogate": self.surrogate.to_dict(), "detach_reset": self.detach_reset}


@attrs.frozen
class EProp:
    """e-prop (Bellec et al. 2020) as GeNN runs it: forward-only eligibility traces, a learning
    signal from the readout error through feedback weights, memory independent of ``T``.

    ``feedback``: ``"symmetric"`` (B = the readout weights as stored) or ``"random"`` (a fixed
    random matrix drawn from the network seed); ``c_reg`` and ``target_rate`` (Hz) set GeNN's
    online rate regulariser.
    """

    kind: ClassVar[str] = "eprop"
    surrogate: Surrogate = attrs.field(factory=lambda: Triangle(0.3), converter=_surrogate)
    feedback: str = attrs.field(default="symmetric")
    c_reg: float = attrs.field(default=0.0, converter=float, validator=_nonneg)
    target_rate: float = attrs.field(default=10.0, converter=float, validator=_nonneg)

    def __attrs_post_init__(self) -> None:
        if self.feedback not in ("symmetric", "random"):
            raise ValueError(f"EProp.feedback must be 'symmetric' or 'random', got {self.feedback!r}")

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "surrogate": self.surrogate.to_dict(),
            "feedback": self.feedback,
            "c_reg": self.c_reg,
            "target_rate": self.target_rate,
        }


def rule_from_dict(obj):
    if not isinstance(obj, dict) or obj.get("kind") not in ("bptt", "eprop"):
        raise ValueError(f"rule: 'kind' must be 'bptt' or 'eprop', got {obj!r:.80}")
    kwargs = {k: v for k, v in obj.items() if k != "kind"}
    cls = BPTT if obj["kind"] == "bptt" else EProp
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"rule {obj['kind']}: {exc}") from None


def trained_populations(built: BuiltNetwork) -> tuple[str, ...]:
    """Spiking populations with at least one trainable incoming connection."""
    return tuple(
        p.name for p in built.neuron_populations if p.spiking and any(c.trainable for c in built.incoming(p.name))
    )


def check_rule(built: BuiltNetwork, rule, readout) -> None:
    """Structural checks shared by every backend; ``ValueError`` naming the problem."""
    if readout is not None and not isinstance(readout, Readout):
        raise ValueError(f"readout must be a spikeloom.Readout, got {readout!r:.80}")
    if rule is not None and not isinstance(rule, (BPTT, EProp)):
        raise ValueError(f"rule must be BPTT(...) or EProp(...), got {rule!r:.80}")
    if rule is not None and readout is None:
        raise ValueError(
            "a learning rule needs readout=Readout(population, mode) naming the LI population that gives the logits"
        )
    if readout is None:
        return
    if readout.population not in built.populations:
        raise ValueError(
            f"Readout.population: unknown population {readout.population!r}; known: {sorted(built.populations)}"
        )
    if built.populations[readout.population].kind != "LI":
        raise ValueError(
            f"Readout.population {readout.population!r} must be an LI population, not {built.populations[readout.population].kind}"
        )
    if isinstance(rule, EProp):
        if readout.mode != "per_step":
            raise ValueError(f"e-prop needs Readout(mode='per_step'), got mode={readout.mode!r}")
        if readout.c_reg:
            raise ValueError(
                "e-prop has its own online rate regulariser: set EProp(c_reg=...) and leave Readout.c_reg at 0"
            )
        for p in built.neuron_populations:
            if p.train_tau_mem or p.train_tau_syn:
                raise ValueError(
                    f"e-prop does not train time constants (population {p.name!r}); use BPTT or set train_tau_*=False"
                )
            if p.kind == "LI" and p.name != readout.population and any(c.trainable for c in built.incoming(p.name)):
                raise ValueError(
                    f"e-prop trains one readout; LI population {p.name!r} is not the readout {readout.population!r}"
                )
        for name in trained_populations(built):
            if not any(c.target == readout.population for c in built.outgoing(name)):
                raise ValueError(
                    f"e-prop: trained population {name!r} does not project straight to the readout "
                    f"{readout.population!r}; add a connection {name} -> {readout.population} or make its inputs non-trainable"
                )


def feedback_matrices(
    built: BuiltNetwork, rule: EProp, readout: Readout, params: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """e-prop's feedback ``B`` ``[N_hidden, N_out]`` for each connection into the readout from a
    trained population: the stored weights (symmetric) or a fixed draw N(0, 1/N_hidden) (random)."""
    trained = set(trained_populations(built))
    out = {}
    for c in built.incoming(readout.population):
        if c.source not in trained:
            continue
        if rule.feedback == "symmetric":
            out[c.name] = params[f"{c.name}.weight"]
        else:
            n_pre, n_post = c.mask.shape
            rng = rng_for(built.network.seed, f"eprop/feedback/{c.name}")
            out[c.name] = rng.normal(0.0, 1.0 / math.sqrt(n_pre), size=(n_pre, n_post))
    return out
