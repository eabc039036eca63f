"""How close a backend must come to the reference: tolerances as data, one profile per dtype.

The reference (the NumPy backend) always runs in float64 and is the judge.  A value ``got`` agrees
with the reference value ``want`` when::

    |got - want| <= atol * scale + rtol * |want|

where ``scale`` is the largest magnitude of that quantity in the reference (one state variable of
one population over the whole run, one parameter's gradient), at least 1 for states and
parameters.  Spikes compare exactly, except that a spike may flip where the reference's membrane
lies within ``spike_margin * v_thresh`` of the threshold *and* the backend's own membrane is on the
side of the threshold its spike says (a float32 run cannot tell such a neuron apart).  After such a
flip the two runs legitimately diverge, so a whole-run comparison stops there; state-forced single
steps (each from the reference's own state) are compared instead.  float32 whole runs are compared
over at most ``horizon`` steps.
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["Tolerance", "PROFILES", "tolerance_for", "DTYPES"]

DTYPES = ("float32", "float64")


def _nonneg(instance, attribute, value):
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"Tolerance.{attribute.name} must be a finite number >= 0, got {value!r}")


def _tol():
    return attrs.field(converter=float, validator=_nonneg, kw_only=True)


def _horizon(instance, attribute, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"Tolerance.horizon must be None or an integer >= 1, got {value!r}")


@attrs.frozen
class Tolerance:
    """One dtype's profile.

    ``step_*``: one state-forced step; ``run_*``: states of whole runs; ``grad_*``: gradients (and
    the loss, relative); ``param_*``: parameters after optimiser steps; ``spike_margin``: relative
    to ``v_thresh``, how close to threshold a spike may flip; ``horizon``: steps of a whole run
    that are compared (None: all).
    """

    dtype: str = attrs.field(validator=attrs.validators.in_(DTYPES))
    step_rtol: float = _tol()
    step_atol: float = _tol()
    run_rtol: float = _tol()
    run_atol: float = _tol()
    grad_rtol: float = _tol()
    grad_atol: float = _tol()
    loss_rtol: float = _tol()
    param_rtol: float = _tol()
    param_atol: float = _tol()
    spike_margin: float = _tol()
    horizon: int | None = attrs.field(default=None, validator=_horizon, kw_only=True)

    def describe(self) -> str:
        """One line for report headers."""
        parts = [f"{f.name}={getattr(self, f.name):g}" for f in attrs.fields(Tolerance)[1:-1]]
        parts.append(f"horizon={self.horizon or 'whole run'}")
        return f"{self.dtype}: " + " ".join(parts)

    def to_dict(self) -> dict:
        return attrs.asdict(self)


#: The kit's profiles.  float64 is tight enough that a backend computing in float32 behind a float64
#: interface fails (its errors are ~1e-7); float32 allows some hundred ulps, and fails float16-grade
#: accumulation (~1e-3).
PROFILES: dict[str, Tolerance] = {
    "float64": Tolerance(
        "float64",
        step_rtol=1e-12,
        step_atol=1e-12,
        run_rtol=1e-10,
        run_atol=1e-10,
        grad_rtol=1e-8,
        grad_atol=1e-9,
        loss_rtol=1e-10,
        param_rtol=1e-9,
        param_atol=1e-10,
        spike_margin=1e-11,
        horizon=None,
    ),
    "float32": Tolerance(
        "float32",
        step_rtol=2e-6,
        step_atol=2e-6,
        run_rtol=1e-5,
        run_atol=1e-5,
        grad_rtol=5e-4,
        grad_atol=1e-4,
        loss_rtol=1e-5,
        param_rtol=1e-5,
        param_atol=1e-6,
        spike_margin=2e-5,
        horizon=64,
    ),
}


def tolerance_for(dtype) -> Tolerance:
    """The profile of ``dtype`` (``"float32"`` or ``"float64"``)."""
    name = np.dtype(dtype).name
    if name not in PROFILES:
        raise ValueError(f"no tolerance profile for dtype {name!r}; profiles exist for {sorted(PROFILES)}")
    return PROFILES[name]
