"""Per-population constants on the device, ``[N]`` arrays of the run's dtype.

Decay factors are kept in float64 on the host so that ``g = 1 - alpha_mem`` is computed in
float64 and only then cast, as the reference does; trained decay factors and the readout bias
come from the live parameters.
"""

from __future__ import annotations

import attrs
import numpy as np

from spikeloom.built import BuiltPopulation

from .runtime import Runtime

__all__ = ["PopConst", "pop_consts"]


@attrs.frozen(eq=False)
class PopConst:
    """``kind`` (LIF, ALIF, LI), ``n``, flags, and device arrays ``[N]`` (LI: ``vth``... are
    placeholders the kernels do not read)."""

    name: str
    kind: str
    n: int
    zero_reset: bool
    alif: bool
    has_ref: bool  # some neuron has a refractory period of at least one step
    am: object
    as_: object
    g: object
    vth: object
    rho: object
    beta: object
    nref: object  # int64
    bias: object

    @property
    def spiking(self) -> bool:
        return self.kind != "LI"


def _host_f64(params: dict, key: str, default: np.ndarray, rt: Runtime) -> np.ndarray:
    value = params.get(key)
    if value is None:
        return np.asarray(default, dtype=np.float64)
    return rt.host(value).astype(np.float64)


def pop_consts(rt: Runtime, pop: BuiltPopulation, params: dict) -> PopConst:
    """The constants of ``pop`` given the live parameters ``params`` (device arrays by name)."""
    am64 = _host_f64(params, f"{pop.name}.alpha_mem", pop.alpha_mem, rt)
    as64 = _host_f64(params, f"{pop.name}.alpha_syn", pop.alpha_syn, rt)
    g = 1.0 - am64 if pop.scale_input else np.ones(pop.n)
    spiking = pop.kind != "LI"
    vth = pop.params.get("v_thresh")
    bias = params.get(f"{pop.name}.bias")
    return PopConst(
        name=pop.name,
        kind=pop.kind,
        n=pop.n,
        zero_reset=pop.reset == "zero",
        alif=pop.kind == "ALIF",
        has_ref=pop.n_ref is not None and bool(np.any(pop.n_ref > 0)),
        am=rt.asarray(am64),
        as_=rt.asarray(as64),
        g=rt.asarray(g),
        vth=rt.asarray(vth) if spiking else rt.dummy,
        rho=rt.asarray(pop.rho) if pop.rho is not None else rt.dummy,
        beta=rt.asarray(pop.params["beta"]) if "beta" in pop.params else rt.dummy,
        nref=rt.asarray(pop.n_ref, np.int64) if pop.n_ref is not None else rt.dummy_l,
        bias=bias if bias is not None else rt.dummy,
    )
