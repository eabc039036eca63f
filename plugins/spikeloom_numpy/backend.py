"""The NumPy reference backend: SPEC §3 literally, float32 or float64, on the CPU."""

from __future__ import annotations

import numpy as np

import spikeloom
from spikeloom import Backend, Capabilities, Compiled, CompileRequest
from spikeloom.capabilities import ALL_READOUTS, ALL_SURROGATES
from spikeloom.rules import BPTT

from .bptt import bptt_loss_and_grads
from .eprop import eprop_loss_and_grads
from .simulate import Simulator

__all__ = ["NumpyBackend", "NumpyCompiled"]


class NumpyCompiled(Compiled):
    #: a smooth stand-in for the spike function, used only by the finite-difference gradient tests
    _spike_fn = None

    def __init__(self, request: CompileRequest) -> None:
        super().__init__(request)
        self._params = {k: v.astype(self.dtype) for k, v in self.built.initial_params().items()}

    def _simulate(self, inputs, record):
        return Simulator(self.built, self._params, self.dtype, self._spike_fn).run(inputs, record)

    def _step(self, state, x_t):
        sim = Simulator(self.built, self._params, self.dtype, self._spike_fn)
        sim.set_state(state)
        rec = sim.step(x_t)
        public = {name: {v: np.array(a) for v, a in r.items() if v != "refractory"} for name, r in rec.items()}
        return sim.get_state(), public

    def _loss_and_grads(self, inputs, labels):
        rule, readout = self.request.rule, self.request.readout
        if isinstance(rule, BPTT):
            return bptt_loss_and_grads(
                self.built, self._params, self.dtype, rule, readout, inputs, labels, self._spike_fn
            )
        return eprop_loss_and_grads(self.built, self._params, self.dtype, rule, readout, inputs, labels)

    def _native_params(self):
        return self._params

    def _get_params(self):
        return {k: v.copy() for k, v in self._params.items()}

    def _set_params(self, params):
        for k, v in params.items():
            self._params[k] = v.astype(self.dtype)


class NumpyBackend(Backend):
    """The reference every other backend is judged against (clear, vectorised, float64-capable)."""

    name = "numpy"
    version = spikeloom.__version__
    description = "NumPy reference (the judge)"
    priority = 0

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes={"float32", "float64"},
            devices={"cpu"},
            rules={"bptt", "eprop"},
            surrogates=ALL_SURROGATES,
            readouts=ALL_READOUTS,
            trainable_time_constants=True,
            stepping=True,
        )

    def _compile(self, request: CompileRequest) -> NumpyCompiled:
        return NumpyCompiled(request)
