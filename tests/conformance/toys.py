"""Toy backends for the kit's own tests (importable as ``tests.conformance.toys:NAME``)."""

from __future__ import annotations

import spikeloom as sl
from spikeloom_numpy import NumpyBackend


class LessBackend(NumpyBackend):
    """The reference, declaring much less than it can do: the kit must skip, not pass, the rest."""

    name = "less"

    def capabilities(self):
        return sl.Capabilities(
            models={"LIF", "LI"},
            synapses={"delta"},
            resets={"subtract"},
            connectivity={"dense"},
            dtypes={"float64"},
            devices={"cpu"},
            readouts={"per_step"},
            refractory=False,
            heterogeneous=False,
            scale_input=False,
            max_delay=2,
        )


class KnownFailuresBackend(NumpyBackend):
    """The reference listing a known failure that does not happen (a strict xfail must fail)."""

    name = "known_failures"
    conformance_known_failures = {"forward_run-threshold_ties-*": "pretend bug #1"}


class EPropSubtractOnly(NumpyBackend):
    """Implements e-prop for the subtractive reset only, as SPEC §6 allows: it refuses the zero
    reset under e-prop at compile time."""

    name = "eprop_subtract_only"

    def _compile(self, request):
        if request.rule is not None and request.rule.kind == "eprop":
            for p in request.built.neuron_populations:
                if p.reset == "zero":
                    raise sl.UnsupportedFeature(self.name, "resets", "zero", "e-prop is implemented for subtract only")
        return super()._compile(request)


def mutant_batch_mixed():
    """For subprocess tests: a mutant built on import (see mutants.py)."""
    from tests.conformance.mutants import batch_mixed

    return batch_mixed()
