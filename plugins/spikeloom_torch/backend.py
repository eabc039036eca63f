"""The PyTorch backend: the reference's algorithms on torch tensors, on the CPU or a CUDA device.

torch is imported only when the backend is asked whether it can run or compiles a network, so
that the plugin loads (and ``spikeloom backends`` lists it) where torch is missing.
"""

from __future__ import annotations

import importlib.util

import numpy as np

import spikeloom
from spikeloom import Availability, Backend, BackendUnavailable, Capabilities, Compiled, CompileRequest
from spikeloom.capabilities import ALL_READOUTS, ALL_SURROGATES, device_kind
from spikeloom.inputs import COMPACT_DTYPES
from spikeloom.rules import BPTT

__all__ = ["TorchBackend", "TorchCompiled"]


def _import_torch():
    if importlib.util.find_spec("torch") is None:
        return None, "torch is not installed (pip install 'spikeloom[torch]')"
    try:
        import torch
    except Exception as exc:  # a broken installation is "not available", not a crash
        return None, f"torch failed to import: {type(exc).__name__}: {exc}"
    return torch, ""


def _cuda_problem(torch, device: str) -> str:
    """Why ``device`` (a ``cuda`` device string) cannot be used here, or ``""``."""
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
        return f"CUDA is not available ({build}; no usable CUDA device)"
    if ":" in device:
        index, count = int(device.split(":", 1)[1]), torch.cuda.device_count()
        if index >= count:
            return f"there is no CUDA device {index}; this machine has {count} (cuda:0 .. cuda:{count - 1})"
    return ""


class TorchCompiled(Compiled):
    """A network compiled for torch: parameters are tensors of the compiled dtype on the device."""

    compact_inputs = True  # bool / uint8 spikes stay compact on the host (see spikes.SpikeTrain)

    def __init__(self, request: CompileRequest, device) -> None:
        super().__init__(request)
        import torch

        from spikeloom.plan import make_plan

        from .dynamics import StaticConsts
        from .workspace import Workspace

        self._torch = torch
        self._device = device
        self._tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[self.dtype]
        self._plan = make_plan(self.built)
        self._static = {p.name: StaticConsts(p, self._tdtype, device) for p in self.built.neuron_populations}
        self._masks = {c.name: self._to_device(c.mask) for c in self.built.connections if not c.dense}
        self._params = {k: self._to_device(v) for k, v in self.built.initial_params().items()}
        self._workspace = Workspace()  # large arrays (BPTT's [T, B, N], e-prop's chunk buffers) kept between calls

    # -- conversions ------------------------------------------------------------------------------
    def _to_device(self, arr: np.ndarray):
        """A host array as a new tensor of the compiled dtype on the device (cast on the host, as
        the reference casts)."""
        host = np.ascontiguousarray(np.asarray(arr).astype(self.dtype))
        return self._torch.from_numpy(host).to(self._device)

    def _host_input(self, x: np.ndarray) -> np.ndarray:
        """A contiguous, writable host array of input spikes: bool and uint8 stay as they are
        (converted on the device, or never densified at all), other dtypes become the run's."""
        host = np.ascontiguousarray(x) if x.dtype in COMPACT_DTYPES else np.ascontiguousarray(x, dtype=self.dtype)
        if not host.flags.writeable:  # torch only wraps writable memory; it never writes to it
            host = host.copy()
        return host

    def _inputs(self, inputs: dict[str, np.ndarray]):
        from .spikes import SpikeTrain

        return {name: SpikeTrain(self._host_input(x), self._device, self._tdtype) for name, x in inputs.items()}

    def _to_host(self, arr) -> np.ndarray:
        if isinstance(arr, self._torch.Tensor):
            return arr.detach().cpu().numpy()
        return np.asarray(arr)

    def _consts(self, track_refractory: bool = False):
        from .dynamics import pop_consts

        pops = {name: pop_consts(s, self._params, self._tdtype, track_refractory) for name, s in self._static.items()}
        weights = {c.name: self._params[f"{c.name}.weight"] for c in self.built.connections}
        return pops, weights

    # -- the Compiled interface -------------------------------------------------------------------
    def _simulate(self, inputs, record):
        from .dynamics import run

        with self._torch.no_grad():
            pops, weights = self._consts()
            keep = {name: set(vars_) for name, vars_ in record.items()}
            rec = run(self._plan, pops, weights, self._inputs(inputs), keep)
            return {name: {v: self._to_host(rec[name][v]) for v in vars_} for name, vars_ in record.items()}

    def _step(self, state, x_t):
        from .dynamics import SpikingState, li_step, spiking_step

        torch = self._torch
        with torch.no_grad():
            pops, weights = self._consts(track_refractory=True)
            given = state["populations"]
            hist = {src: self._to_device(h) for src, h in state["history"].items()}
            new_state, public = {}, {}
            for name, p in pops.items():
                h = None
                for c in self.built.incoming(name):
                    s = hist[c.source][c.delay - 1]
                    h = s @ weights[c.name] if h is None else torch.addmm(h, s, weights[c.name])
                if h is None:
                    h = torch.zeros((given[name]["V"].shape[0], p.n), dtype=self._tdtype, device=self._device)
                g = {k: self._to_device(v) for k, v in given[name].items() if k != "ref"}
                if p.spiking:
                    ref = torch.as_tensor(np.asarray(given[name]["ref"], dtype=np.int64)).to(self._device)
                    s, rec = spiking_step(p, SpikingState(I=g["I"], V=g["V"], a=g.get("a"), z=g["z"], ref=ref), h)
                    entry = {"V": s.V, "I": s.I, "z": s.z, "ref": s.ref}
                    if s.a is not None:
                        entry["a"] = s.a
                    public[name] = {v: self._to_host(a).copy() for v, a in rec.items() if v != "refractory"}
                    new_state[name] = entry
                else:
                    I, V = li_step(p, g["I"], g["V"], h)  # noqa: E741
                    new_state[name] = {"V": V, "I": I}
                    public[name] = {"V": self._to_host(V).copy(), "I": self._to_host(I).copy()}
            history = {}
            for src, buf in hist.items():
                newest = self._to_device(x_t[src]) if src in x_t else new_state[src]["z"]
                history[src] = self._to_host(torch.cat([newest[None], buf[:-1]])).copy()
            pops_host = {name: {k: self._to_host(v).copy() for k, v in e.items()} for name, e in new_state.items()}
            return {"populations": pops_host, "history": history}, public

    def _loss_and_grads(self, inputs, labels):
        torch = self._torch
        rule, readout = self.request.rule, self.request.readout
        with torch.no_grad():
            pops, weights = self._consts()
            y = torch.as_tensor(labels, dtype=torch.int64).to(self._device)
            if isinstance(rule, BPTT):
                from .bptt import bptt_loss_and_grads

                x = self._inputs(inputs)
                return bptt_loss_and_grads(
                    self.built, self._plan, pops, weights, self._masks, rule, readout, x, y, self._workspace
                )
            from .eprop import eprop_loss_and_grads
            from .spikes import StreamedInput

            # e-prop reads its input a chunk of steps at a time, so no device memory grows with T
            x = {name: StreamedInput(self._host_input(v), self._device, self._tdtype) for name, v in inputs.items()}
            return eprop_loss_and_grads(
                self.built, pops, weights, self._params, self._masks, rule, readout, x, y, self._workspace
            )

    def _native_params(self):
        return self._params

    def _get_params(self):
        return {k: self._to_host(v).copy() for k, v in self._params.items()}

    def _set_params(self, params):
        for k, v in params.items():
            self._params[k] = self._to_device(v)


class TorchBackend(Backend):
    """The reference's algorithms on PyTorch tensors: ``device="cpu"`` or ``"cuda"``/``"cuda:N"``."""

    name = "torch"
    version = spikeloom.__version__
    description = "PyTorch (CPU and CUDA)"
    priority = 10

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes={"float32", "float64"},
            devices={"cpu", "cuda"},
            rules={"bptt", "eprop"},
            surrogates=ALL_SURROGATES,
            readouts=ALL_READOUTS,
            trainable_time_constants=True,
            stepping=True,
        )

    def availability(self, device: str | None = None) -> Availability:
        """Whether torch can be imported and, if ``device`` is given (``"cuda:0"``), whether that
        device can be used."""
        torch, reason = _import_torch()
        if torch is None:
            return Availability(False, reason)
        if device is not None and device_kind(device) == "cuda":
            problem = _cuda_problem(torch, device)
            if problem:
                return Availability(False, problem)
        return Availability(True)

    def _compile(self, request: CompileRequest) -> TorchCompiled:
        import torch

        device = request.device
        kind = device_kind(device)
        if kind == "cuda":
            problem = _cuda_problem(torch, device)
            if problem:
                raise BackendUnavailable(f"backend 'torch' cannot use device {device!r}: {problem}")
        elif kind == "cpu":
            if ":" in device and device != "cpu:0":
                raise ValueError(f"device: the CPU has no index other than 0, got {device!r}; use 'cpu'")
        else:  # pragma: no cover - the capability check refuses other kinds first
            raise ValueError(f"device: the torch backend runs on 'cpu' or 'cuda[:N]', got {device!r}")
        return TorchCompiled(request, torch.device(device))
