"""The interface every backend implements: ``Backend.compile(...) -> Compiled``.

The public methods here validate their arguments once, in the core, then call the backend's
underscore methods, so that every backend rejects bad input identically and never sees it.
"""

from __future__ import annotations

import abc
import re
from typing import Mapping

import attrs
import numpy as np

from .built import BuiltNetwork
from .capabilities import Capabilities, requirements
from .errors import BackendUnavailable
from .inputs import normalize_record, prepare_inputs, validate_params
from .network import Network

__all__ = ["Availability", "Backend", "CompileRequest", "Compiled", "Recording"]

#: ``{population: {state variable: array [T, B, N]}}``
Recording = dict[str, dict[str, np.ndarray]]

_DEVICE = re.compile(r"^[a-z][a-z0-9_]*(:[0-9]+)?$")


@attrs.frozen
class Availability:
    """Whether a backend can run here, and if not, why (``"cupy: no CUDA device"``)."""

    available: bool
    reason: str = ""


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
    ) -> "Compiled":
        """Compile ``network`` for this backend.

        Raises ``ValueError`` for malformed arguments, :class:`UnsupportedFeature` for anything
        outside :meth:`capabilities` (never a silent fallback), :class:`BackendUnavailable` when
        the backend cannot run here.
        """
        if not isinstance(network, Network):
            raise ValueError(f"network must be a spikeloom.Network, got {type(network).__name__}")
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype: unknown dtype {dtype!r}; use 'float32' or 'float64'") from None
        if np_dtype.kind != "f":
            raise ValueError(f"dtype: must be a floating-point dtype such as 'float32', got {dtype!r}")
        if not isinstance(device, str) or not _DEVICE.match(device):
            raise ValueError(f"device: expected a device string such as 'cpu' or 'cuda:0', got {device!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
        surrogate = getattr(getattr(rule, "surrogate", None), "kind", None)
        mode = getattr(readout, "mode", None)
        built = network.built
        self.capabilities().check(
            self.name,
            requirements(built, dtype=np_dtype.name, device=device, rule=_rule_name(rule), surrogate=surrogate, readout=mode),
        )
        avail = self.availability()
        if not avail.available:
            raise BackendUnavailable(f"backend {self.name!r} is not available: {avail.reason}")
        request = CompileRequest(
            network=network, built=built, dtype=np_dtype, device=device, rule=rule, readout=readout, batch_size=batch_size
        )
        return self._compile(request)

    @abc.abstractmethod
    def _compile(self, request: CompileRequest) -> "Compiled":
        """Build the backend's compiled form; the request is already validated."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.version}>"


class Compiled(abc.ABC):
    """A network compiled by one backend.  Parameters stay on the backend's device between calls;
    they go in and out as host NumPy arrays by stable names (``"hidden_to_out.weight"``,
    ``"out.bias"``, ``"hidden.alpha_mem"``)."""

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
        inputs = prepare_inputs(self.built, x, self.dtype)
        return self._simulate(inputs, normalize_record(self.built, record))

    def get_params(self) -> dict[str, np.ndarray]:
        """Every parameter by stable name, as host NumPy arrays of the compiled dtype."""
        return self._get_params()

    def set_params(self, params: Mapping[str, object]) -> None:
        """Replace some or all parameters (validated: known names, shapes, finite, masks)."""
        self._set_params(validate_params(self.built, params, self._get_params()))

    def trainable_names(self) -> tuple[str, ...]:
        return self.built.trainable_names()

    @abc.abstractmethod
    def _simulate(self, inputs: dict[str, np.ndarray], record: dict[str, tuple[str, ...]]) -> Recording: ...

    @abc.abstractmethod
    def _get_params(self) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _set_params(self, params: dict[str, np.ndarray]) -> None: ...
