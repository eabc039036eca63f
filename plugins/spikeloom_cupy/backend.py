"""The CuPy backend: the SPEC's dynamics and learning rules as hand-written CUDA kernels.

CuPy is imported only when the backend is asked whether it can run or compiles a network, so the
plugin loads (and ``spikeloom backends`` lists it, with the reason) where CuPy or a GPU is missing.
The host code runs against a :class:`~.runtime.Runtime` (array module + kernel launcher); on a
GPU that is CuPy with kernels compiled by NVRTC from the ``.cu`` files under ``kernels/``.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

import spikeloom
from spikeloom import Availability, Backend, BackendUnavailable, Capabilities, Compiled, CompileRequest
from spikeloom.capabilities import ALL_READOUTS, ALL_SURROGATES, device_kind
from spikeloom.rules import BPTT

from .runtime import Runtime

__all__ = ["CupyBackend", "CupyCompiled", "cupy_problem"]


def cupy_problem(device: str | None = None) -> str:
    """Why the backend cannot run here (on ``device``, e.g. ``"cuda:1"``), or ``""``."""
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (pip install 'spikeloom[cupy]')"
    try:
        import cupy
    except Exception as exc:  # a broken installation is "not available", not a crash
        return f"cupy failed to import: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver or a device
        return f"no CUDA device ({type(exc).__name__}: {exc})"
    if count == 0:
        return "no CUDA device"
    if device is not None and ":" in device:
        index = int(device.split(":", 1)[1])
        if index >= count:
            return f"there is no CUDA device {index}; this machine has {count} (cuda:0 .. cuda:{count - 1})"
    return ""


def _on_device(method):
    """Run a :class:`CupyCompiled` method with the compiled device current (``cuda:N``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.rt.on_device():
            return method(self, *args, **kwargs)

    return wrapper


class CupyCompiled(Compiled):
    """A network compiled for the CuPy backend; parameters are arrays of the compiled dtype on the
    runtime's device (CuPy arrays on a GPU)."""

    #: bool and uint8 input spikes arrive as given and are copied to the device as bytes, then
    #: cast there (``Runtime.spikes``): no float copy of the inputs on the host
    compact_inputs = True

    def __init__(self, request: CompileRequest, runtime: Runtime) -> None:
        super().__init__(request)
        from spikeloom.plan import make_plan

        self.rt = runtime
        self._plan = make_plan(self.built)
        self._masks = {c.name: runtime.asarray(c.mask) for c in self.built.connections if not c.dense}
        self._params = {k: runtime.asarray(v) for k, v in self.built.initial_params().items()}
        #: how recurrent spikes are delivered inside the time loop: "events" (kernels that read the
        #: rows of neurons that spiked) or "dense" (cuBLAS); set from the activity of the last run
        #: (a simulation or a training step; e-prop's from the last steps its rings hold)
        self.recurrent_mode = "events"

    def _consts(self):
        from .consts import pop_consts

        pops = {p.name: pop_consts(self.rt, p, self._params) for p in self.built.neuron_populations}
        weights = {c.name: self._params[f"{c.name}.weight"] for c in self.built.connections}
        return pops, weights

    def _device_inputs(self, inputs):
        # bool/uint8 spikes (compact_inputs) go over as bytes and are cast on the device
        return {name: self.rt.spikes(x) for name, x in inputs.items()}

    def _update_mode(self, rec) -> None:
        """Choose the recurrent delivery for the next call from this run's spike density."""
        from .delivery import choose_delivery

        rec_pops = [name for name in rec if self._plan.internal.get(name)]
        if not rec_pops:
            return
        xp = self.rt.xp
        density = max(float(xp.count_nonzero(rec[n]["z"])) / max(1, rec[n]["z"].size) for n in rec_pops)
        self.recurrent_mode = choose_delivery(density)

    # -- the Compiled interface -------------------------------------------------------------------
    @_on_device
    def _simulate(self, inputs, record):
        from .forward import run

        pops, weights = self._consts()
        keep = {name: set(vars_) for name, vars_ in record.items()}
        rec = run(
            self.rt, self.built, self._plan, pops, weights, self._device_inputs(inputs), keep, self.recurrent_mode
        )
        self._update_mode(rec)
        return {name: {v: self.rt.host(rec[name][v]) for v in vars_} for name, vars_ in record.items()}

    @_on_device
    def _step(self, state, x_t):
        from .forward import Stepper

        pops, weights = self._consts()
        B = next(iter(state["populations"].values()))["V"].shape[0]
        sim = Stepper(self.rt, self.built, pops, weights, B, "events")
        sim.set_state(state)
        rec = sim.step({name: self.rt.asarray(x) for name, x in x_t.items()})
        self.rt.release()
        public = {
            name: {v: self.rt.host(a) for v, a in r.items() if v != "refractory" and (v != "a" or pops[name].alif)}
            for name, r in rec.items()
        }
        for name, p in pops.items():
            if not p.spiking:
                public[name] = {"V": public[name]["V"], "I": public[name]["I"]}
        return sim.get_state(), public

    @_on_device
    def _loss_and_grads(self, inputs, labels):
        rule, readout = self.request.rule, self.request.readout
        pops, weights = self._consts()
        if isinstance(rule, BPTT):
            from .bptt import bptt_loss_and_grads

            return bptt_loss_and_grads(
                self.rt,
                self.built,
                self._plan,
                pops,
                weights,
                self._masks,
                rule,
                readout,
                self._device_inputs(inputs),
                labels,
                self.recurrent_mode,
                observe=self._update_mode,
            )
        from .eprop import eprop_loss_and_grads

        return eprop_loss_and_grads(
            self.rt,
            self.built,
            pops,
            weights,
            self._params,
            self._masks,
            rule,
            readout,
            {k: np.ascontiguousarray(v) for k, v in inputs.items()},
            labels,
            self.recurrent_mode,
            observe=self._update_mode,
        )

    def _native_params(self):
        return self._params

    def _to_host(self, arr) -> np.ndarray:
        return self.rt.host(arr) if not isinstance(arr, np.ndarray) else arr

    @_on_device
    def _get_params(self):
        return {k: self.rt.host(v) for k, v in self._params.items()}

    @_on_device
    def _set_params(self, params):
        for k, v in params.items():
            self._params[k] = self.rt.asarray(v)


class CupyBackend(Backend):
    """Hand-written CUDA kernels through CuPy: ``device="cuda"`` or ``"cuda:N"``."""

    name = "cupy"
    version = spikeloom.__version__
    description = "CuPy with hand-written CUDA kernels (GPU)"
    # below torch (10): the priority orders the choice for the default device (cpu), which this
    # backend does not take; on a GPU it is the faster one (docs/cupy-backend.md), asked for by name
    priority = 5

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes={"float32", "float64"},
            devices={"cuda"},
            rules={"bptt", "eprop"},
            surrogates=ALL_SURROGATES,
            readouts=ALL_READOUTS,
            trainable_time_constants=True,
            stepping=True,
        )

    def availability(self, device: str | None = None) -> Availability:
        problem = cupy_problem(device)
        return Availability(not problem, problem)

    def _compile(self, request: CompileRequest) -> CupyCompiled:
        device = request.device
        if device_kind(device) != "cuda":  # pragma: no cover - the capability check refuses it first
            raise ValueError(f"device: the cupy backend runs on 'cuda' or 'cuda:N', got {device!r}")
        problem = cupy_problem(device)
        if problem:
            raise BackendUnavailable(f"backend 'cupy' cannot use device {device!r}: {problem}")
        import cupy

        from .gemm import cupy_gemm
        from .launch import CupyKernels

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        runtime = Runtime(
            cupy,
            CupyKernels(request.dtype),
            request.dtype,
            lambda: cupy.cuda.Device(index),
            gemm=cupy_gemm(request.dtype),
        )
        with runtime.on_device():
            return CupyCompiled(request, runtime)
