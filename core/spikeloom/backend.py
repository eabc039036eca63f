"""The interface every backend implements: ``Backend.compile(...) -> Compiled``.

The public methods here validate their arguments once, in the core, then call the backend's
underscore methods, so that every backend rejects bad input identically and never sees it.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping

import attrs
import numpy as np

from .built import BuiltNetwork
from .capabilities import Capabilities, requirements
from .errors import BackendUnavailable, UnsupportedFeature
from .inputs import normalize_record, prepare_inputs, validate_params, validate_state, zero_state
from .network import Network
from .readout import check_labels, rate_regularizer, readout_loss
from .rules import ALPHA_CLIP, check_rule

__all__ = ["Availability", "Backend", "CompileRequest", "Compiled", "Recording", "StepResult"]

#: ``{population: {state variable: array [T, B, N]}}``
Recording = dict[str, dict[str, np.ndarray]]

_DEVICE = re.compile(r"[a-z][a-z0-9_]*(:[0-9]+)?")


@attrs.frozen
class Availability:
    """Whether a backend can run here, and if not, why (``"cupy: no CUDA device"``)."""

    available: bool
    reason: str = ""


@attrs.frozen(eq=False)
class StepResult:
    """Outcome of one batch: mean ``loss``, ``predictions`` ``[B]`` and, from
    :meth:`Compiled.loss_and_grads`, the gradients by parameter name (host arrays)."""

    loss: float
    predictions: np.ndarray
    grads: dict[str, np.ndarray] | None = None


@attrs.frozen(eq=False)
class CompileRequest:
    """Everything a backend needs to compile, already validated against its capabilities."""

    network: Network
    built: BuiltNetwork
    dtype: np.dtype
    device: str
    rule: object = None
    readout: object = None
    batch_size: int | None = None
    backend_name: str = ""
    capabilities: Capabilities | None = None


def _rule_name(rule) -> str | None:
    return None if rule is None else getattr(rule, "kind", None)


class Backend(abc.ABC):
    """A simulation backend.  Subclasses set ``name``/``version``, declare :meth:`capabilities`
    and implement :meth:`_compile`; register an instance through the
    ``spikeloom_register_backends`` hook."""

    name: str = ""
    version: str = "0"
    description: str = ""
    #: the training front end picks the available backend with the highest priority
    priority: int = 0

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend can compute (a frozen value)."""

    def availability(self) -> Availability:
        """Whether it can run on this machine; override to probe libraries and devices."""
        return Availability(True)

    def compile(
        self,
        network: Network,
        *,
        rule=None,
        readout=None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int | None = None,
    ) -> Compiled:
        """Compile ``network`` for this backend.

        Raises ``ValueError`` for malformed arguments, :class:`UnsupportedFeature` for anything
        outside :meth:`capabilities` (never a silent fallback), :class:`BackendUnavailable` when
        the backend cannot run here.
        """
        if not isinstance(network, Network):
            raise ValueError(f"network must be a spikeloom.Network, got {type(network).__name__}")
        if dtype is None:
            raise ValueError("dtype: give a floating-point dtype such as 'float32' or 'float64', not None")
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype: unknown dtype {dtype!r}; use 'float32' or 'float64'") from None
        if np_dtype.kind != "f":
            raise ValueError(f"dtype: must be a floating-point dtype such as 'float32', got {dtype!r}")
        if not isinstance(device, str) or not _DEVICE.fullmatch(device):
            raise ValueError(f"device: expected a device string such as 'cpu' or 'cuda:0', got {device!r}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
        built = network.built
        check_rule(built, rule, readout)
        surrogate = getattr(getattr(rule, "surrogate", None), "kind", None)
        mode = getattr(readout, "mode", None)
        self.capabilities().check(
            self.name,
            requirements(
                built, dtype=np_dtype.name, device=device, rule=_rule_name(rule), surrogate=surrogate, readout=mode
            ),
        )
        avail = self.availability()
        if not avail.available:
            raise BackendUnavailable(f"backend {self.name!r} is not available: {avail.reason}")
        request = CompileRequest(
            backend_name=self.name,
            capabilities=self.capabilities(),
            network=network,
            built=built,
            dtype=np_dtype,
            device=device,
            rule=rule,
            readout=readout,
            batch_size=batch_size,
        )
        return self._compile(request)

    @abc.abstractmethod
    def _compile(self, request: CompileRequest) -> Compiled:
        """Build the backend's compiled form; the request is already validated."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.version}>"


class Compiled(abc.ABC):
    """A network compiled by one backend.  Parameters stay on the backend's device between calls;
    they go in and out as host NumPy arrays by stable names (``"hidden_to_out.weight"``,
    ``"out.bias"``, ``"hidden.alpha_mem"``)."""

    #: whether :meth:`_simulate` and :meth:`_loss_and_grads` accept bool and uint8 input arrays
    #: as given (see ``prepare_inputs(..., compact=True)``) instead of arrays of the compiled dtype
    compact_inputs: bool = False

    def __init__(self, request: CompileRequest) -> None:
        self.request = request
        self.built = request.built
        self.network = request.network
        self.dtype = request.dtype
        self.device = request.device

    def simulate(self, x, record=None) -> Recording:
        """Run from zero state over all steps of ``x`` (``[T, B, N]`` spikes, or a dict of them per
        input population) and return the recorded states ``{pop: {var: [T, B, N]}}`` as NumPy
        arrays of the compiled dtype; ``V`` is recorded before the reset, ``z`` as 0/1."""
        inputs = prepare_inputs(self.built, x, self.dtype, compact=self.compact_inputs)
        return self._simulate(inputs, normalize_record(self.built, record))

    # -- one step at a time (state forcing) ------------------------------------------------------
    def zero_state(self, batch: int) -> dict:
        """The all-zero state for ``batch`` examples, as host arrays (see :meth:`step`)."""
        return zero_state(self.built, batch, self.dtype)

    def step(self, state: dict, x_t) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
        """Advance one step from ``state`` with input spikes ``x_t`` (``[B, N]``, or a dict per input).

        ``state`` (host arrays, as :meth:`zero_state` makes them): ``{"populations": {name:
        {"V", "I", ["a"], ["z", "ref"]}}, "history": {source: [D, B, N]}}`` with ``V`` after the
        reset, ``z`` the last spikes, ``ref`` the remaining refractory steps (int64), and
        ``history[source][d - 1]`` the spikes ``source`` emitted ``d`` steps ago.  Returns the new
        state and this step's recorded values ``{pop: {var: [B, N]}}``.  Backends that declare
        ``Capabilities.stepping`` implement it; the conformance kit compares backends this way
        from identical states, so one flipped spike cannot make whole runs diverge.
        """
        caps = self.request.capabilities
        if caps is None or not caps.stepping:
            raise UnsupportedFeature(self.request.backend_name, "stepping", True)
        state = validate_state(self.built, state, self.dtype)
        batch = next(iter(state["populations"].values()))["V"].shape[0]
        x = {k: np.asarray(v)[None] for k, v in x_t.items()} if isinstance(x_t, Mapping) else np.asarray(x_t)[None]
        inputs = prepare_inputs(self.built, x, self.dtype)
        if next(iter(inputs.values())).shape[1] != batch:
            raise ValueError(f"x_t: batch size {next(iter(inputs.values())).shape[1]} differs from the state's {batch}")
        return self._step(state, {k: v[0] for k, v in inputs.items()})

    def _step(self, state: dict, x_t: dict[str, np.ndarray]):
        """One step from a validated host state; backends declaring ``stepping`` override it."""
        raise UnsupportedFeature(self.request.backend_name, "stepping", True)

    def get_params(self) -> dict[str, np.ndarray]:
        """Every parameter by stable name, as host NumPy arrays of the compiled dtype."""
        return self._get_params()

    def set_params(self, params: Mapping[str, object]) -> None:
        """Replace some or all parameters (validated: known names, shapes, finite, masks)."""
        self._set_params(validate_params(self.built, params, self._get_params()))

    def trainable_names(self) -> tuple[str, ...]:
        return self.built.trainable_names()

    # -- learning -----------------------------------------------------------------------------
    def _check_batch(self, x, labels, need_rule: bool):
        readout = self.request.readout
        if readout is None or (need_rule and self.request.rule is None):
            what = "rule=BPTT()/EProp() and readout=Readout(...)" if need_rule else "readout=Readout(...)"
            raise ValueError(f"this network was compiled without a learning setup; compile with {what}")
        inputs = prepare_inputs(self.built, x, self.dtype, compact=self.compact_inputs)
        T, B = next(iter(inputs.values())).shape[:2]
        readout.steps(T)
        return inputs, check_labels(labels, B, self.built.populations[readout.population].n)

    def loss_and_grads(self, x, labels) -> StepResult:
        """Loss, predictions and gradients (host arrays by trainable name) for one batch."""
        inputs, labels = self._check_batch(x, labels, need_rule=True)
        loss, grads, pred = self._loss_and_grads(inputs, labels)
        return StepResult(
            loss=float(loss),
            predictions=np.asarray(self._to_host(pred)),
            grads={k: self._to_host(v) for k, v in grads.items()},
        )

    def train_step(self, x, labels, optimizer) -> StepResult:
        """One optimiser step on one batch; parameters stay on the device.

        ``optimizer`` (e.g. :class:`spikeloom.Adam`) updates the backend's own arrays; trained
        decay factors are then clipped to ``ALPHA_CLIP``.
        """
        inputs, labels = self._check_batch(x, labels, need_rule=True)
        loss, grads, pred = self._loss_and_grads(inputs, labels)
        params = self._native_params()
        optimizer.step(params, grads)
        for name in grads:
            if name.endswith((".alpha_mem", ".alpha_syn")):
                params[name] = self._clip(params[name], *ALPHA_CLIP)
        return StepResult(loss=float(loss), predictions=np.asarray(self._to_host(pred)))

    def evaluate(self, x, labels) -> StepResult:
        """Loss and predictions without gradients (forward only)."""
        inputs, labels = self._check_batch(x, labels, need_rule=False)
        readout = self.request.readout
        record = {readout.population: ("V",)}
        spiking = [p.name for p in self.built.neuron_populations if p.spiking] if readout.c_reg else []
        record.update({name: ("z",) for name in spiking})
        rec = self._simulate(inputs, record)
        loss, _, pred = readout_loss(self._to_host(rec[readout.population]["V"]), labels, readout)
        if spiking:  # the activity regulariser is part of the loss (SPEC §4), as in loss_and_grads
            z = {name: self._to_host(rec[name]["z"]) for name in spiking}
            loss += rate_regularizer(z, self.built.dt, readout.c_reg, readout.target_rate)[0]
        return StepResult(loss=loss, predictions=pred)

    def _loss_and_grads(self, inputs: dict[str, np.ndarray], labels: np.ndarray):
        """``(loss, {name: gradient as a native array}, predictions [B])``; override to train."""
        raise NotImplementedError(f"{type(self).__name__} does not compute gradients")

    def _native_params(self) -> dict:
        """The live dict of parameters as the backend's own arrays (the optimiser writes to it)."""
        raise NotImplementedError(f"{type(self).__name__} does not train")

    def _to_host(self, arr) -> np.ndarray:
        return np.asarray(arr)

    def _clip(self, arr, low, high):
        from array_api_compat import array_namespace

        return array_namespace(arr).clip(arr, low, high)

    @abc.abstractmethod
    def _simulate(self, inputs: dict[str, np.ndarray], record: dict[str, tuple[str, ...]]) -> Recording: ...

    @abc.abstractmethod
    def _get_params(self) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _set_params(self, params: dict[str, np.ndarray]) -> None: ...
