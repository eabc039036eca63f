"""The NumPy reference backend: SPEC §3 literally, float32 or float64, on the CPU."""

from __future__ import annotations

import numpy as np

import spikeloom
from spikeloom import Backend, Capabilities, Compiled, CompileRequest

from .simulate import Simulator

__all__ = ["NumpyBackend", "NumpyCompiled"]


class NumpyCompiled(Compiled):
    def __init__(self, request: CompileRequest) -> None:
        super().__init__(request)
        self._params = {k: v.astype(self.dtype) for k, v in self.built.initial_params().items()}

    def _simulate(self, inputs, record):
        return Simulator(self.built, self._params, self.dtype).run(inputs, record)

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
            trainable_time_constants=True,
        )

    def _compile(self, request: CompileRequest) -> NumpyCompiled:
        return NumpyCompiled(request)
