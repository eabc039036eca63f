"""Per-neuron parameter values: a scalar, an array of length N, or a distribution spec.

Also the exact JSON encoding of arrays used by the network's dict/JSON round trip.
"""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .distributions import DISTRIBUTIONS, Distribution

__all__ = [
    "ParamValue",
    "as_param",
    "frozen_array",
    "array_eq",
    "array_to_json",
    "array_from_json",
    "param_to_json",
    "param_from_json",
]

ParamValue = float | np.ndarray | Distribution


def frozen_array(value, dtype, field: str, *, ndim: int | None = None) -> np.ndarray:
    """A read-only copy of ``value`` as ``dtype``; rejects NaN/inf and the wrong ``ndim``."""
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: cannot be read as an array of {np.dtype(dtype).name} ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{field}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{field}: contains NaN or inf; give finite values")
    arr.setflags(write=False)
    return arr


def as_param(value, field: str) -> ParamValue:
    """Normalise a parameter value: numbers become float, sequences a read-only float64 array."""
    if isinstance(value, Distribution):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a number, an array or a distribution, got a bool")
    if isinstance(value, numbers.Real):
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"{field}: must be finite, got {v!r}")
        return v
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise ValueError(
            f"{field}: expected a number, an array or a distribution (Gamma, Normal, Uniform), got {value!r}"
        )
    return frozen_array(value, np.float64, field, ndim=1)


def array_eq(a, b) -> bool:
    """Equality for fields that may hold arrays (used by the frozen value objects)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    return a == b


def array_field(**kwargs):
    """An attrs field compared with :func:`array_eq` and left out of the hash."""
    return attrs.field(eq=attrs.cmp_using(eq=array_eq), hash=False, **kwargs)


def array_to_json(arr: np.ndarray) -> dict:
    """Exact JSON form of an array: Python's float repr round-trips every float64 exactly."""
    arr = np.asarray(arr)
    return {"dtype": arr.dtype.name, "shape": list(arr.shape), "data": arr.ravel().tolist()}


def array_from_json(obj, field: str) -> np.ndarray:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise ValueError(f"{field}: an array must be stored as {{'dtype', 'shape', 'data'}}, got {obj!r:.80}")
    try:
        dtype = np.dtype(obj["dtype"])
    except TypeError:
        raise ValueError(f"{field}: unknown array dtype {obj['dtype']!r}") from None
    if dtype.kind not in "biuf":
        raise ValueError(f"{field}: unsupported array dtype {obj['dtype']!r}")
    shape = obj["shape"]
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"{field}: array shape must be a list of integers >= 0, got {shape!r:.80}")
    shape = tuple(shape)
    try:
        data = np.array(obj["data"], dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: array data cannot be read as {dtype.name} ({exc})") from None
    if data.ndim != 1 or data.size != int(np.prod(shape)):
        raise ValueError(f"{field}: {data.size} values do not fill shape {shape} (data must be a flat list)")
    return data.reshape(shape)


def param_to_json(value: ParamValue):
    if isinstance(value, Distribution):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return {"array": array_to_json(value)}
    return value


def param_from_json(obj, field: str):
    if isinstance(obj, dict):
        if "distribution" in obj:
            kind = obj["distribution"]
            if kind not in DISTRIBUTIONS:
                raise ValueError(f"{field}: unknown distribution {kind!r}; choose one of {sorted(DISTRIBUTIONS)}")
            kwargs = {k: v for k, v in obj.items() if k != "distribution"}
            try:
                return DISTRIBUTIONS[kind](**kwargs)
            except TypeError as exc:
                raise ValueError(f"{field}: bad arguments for {kind}: {exc}") from None
        if set(obj) == {"array"}:
            return array_from_json(obj["array"], field)
        raise ValueError(f"{field}: cannot decode {obj!r:.80}")
    return obj


def materialize(value: ParamValue, n: int, rng_factory, field: str) -> np.ndarray:
    """The float64 array of length ``n`` this value stands for (``rng_factory()`` gives the stream)."""
    if isinstance(value, Distribution):
        out = np.asarray(value.sample(rng_factory(), n), dtype=np.float64)
    elif isinstance(value, np.ndarray):
        out = np.array(value, dtype=np.float64)
    else:
        out = np.full(n, float(value))
    if out.shape != (n,):  # pragma: no cover - guarded by validation
        raise ValueError(f"{field}: expected {n} values, got shape {out.shape}")
    return out
