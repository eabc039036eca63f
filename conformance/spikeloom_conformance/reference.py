"""The judge: the NumPy reference in float64, run once per case and input and kept for every check.

A reference run is stepped with :meth:`Compiled.step` from the zero state, so besides the recorded
values ``[T, B, N]`` it holds the full state before every step (refractory counters included);
the reference's stepping reproduces its ``simulate`` bit for bit.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import spikeloom as sl

__all__ = ["RefRun", "reference_backend", "run_reference", "reference_grads", "select_batch", "theta_of", "clear_cache"]

REFERENCE = "numpy"
_CACHE_SIZE = 256
_lock = threading.Lock()
_grads: OrderedDict = OrderedDict()


_JUDGE_PACKAGE = "spikeloom_conformance._judge"
_judge: sl.Backend | None = None


def reference_backend() -> sl.Backend:
    """The judge: a private copy of the NumPy reference, loaded from the reference's own source
    files under another module name, so that changes made at run time to the registered
    ``spikeloom_numpy`` modules (a backend under test wrapping or patching them) cannot reach it."""
    global _judge
    with _lock:
        if _judge is None:
            _judge = _load_judge()
        return _judge


def _load_judge() -> sl.Backend:
    import spikeloom_numpy

    init = Path(spikeloom_numpy.__file__)
    spec = importlib.util.spec_from_file_location(_JUDGE_PACKAGE, init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:  # pragma: no cover - a plain source install always has one
        return sl.get_backend(REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_JUDGE_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except Exception:  # pragma: no cover - fall back to the registered reference
        del sys.modules[_JUDGE_PACKAGE]
        return sl.get_backend(REFERENCE)
    return module.NumpyBackend()


@dataclass
class RefRun:
    """A float64 reference run of one network on one input.

    ``recs``: ``{pop: {var: [T, B, N]}}`` (every state variable, ``V`` before the reset);
    ``states``: the ``T + 1`` host states around the steps (``states[t]`` is the state before step
    ``t``); ``refractory``: ``{pop: [T, B, N] bool}``, refractory during step ``t``; ``theta``:
    ``{pop: [T, B, N]}`` the threshold during step ``t``.
    """

    recs: dict[str, dict[str, np.ndarray]]
    states: list[dict]
    refractory: dict[str, np.ndarray]
    theta: dict[str, np.ndarray]


def theta_of(built, pop: str, a=None):
    """The threshold ``v_thresh (+ beta a)`` of one population, broadcast like ``a`` (or ``[N]``)."""
    p = built.populations[pop]
    v = p.params["v_thresh"]
    if p.kind == "ALIF" and a is not None:
        return v + p.params["beta"] * a
    return v if a is None else np.broadcast_to(v, np.shape(a))


def _remember(cache: OrderedDict, key, network, value):
    with _lock:
        cache[key] = (network, value)
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def _lookup(cache: OrderedDict, key, network):
    """The cached value, if it was computed for this very network object (ids can be reused)."""
    with _lock:
        hit = cache.get(key)
        if hit is not None and hit[0] is network:
            cache.move_to_end(key)
            return hit[1]
    return None


def run_reference(network: sl.Network, x, params: dict | None = None) -> RefRun:
    """Step the float64 reference through ``x`` (uncached)."""
    compiled = reference_backend().compile(network, dtype="float64")
    if params:
        compiled.set_params(params)
    built = network.built
    inputs = x if isinstance(x, dict) else {built.inputs[0].name: x}
    T, B = next(iter(inputs.values())).shape[:2]
    state = compiled.zero_state(B)
    states = [state]
    steps = []
    for t in range(T):
        state, rec = compiled.step(state, {k: v[t] for k, v in inputs.items()})
        states.append(state)
        steps.append(rec)
    recs = {pop: {v: np.stack([s[pop][v] for s in steps]) for v in vars_} for pop, vars_ in steps[0].items()}
    refractory, theta = {}, {}
    for p in built.neuron_populations:
        if not p.spiking:
            continue
        refractory[p.name] = np.stack([s["populations"][p.name]["ref"] > 0 for s in states[:-1]])
        theta[p.name] = np.asarray(theta_of(built, p.name, recs[p.name].get("a", np.zeros_like(recs[p.name]["V"]))))
    return RefRun(recs=recs, states=states, refractory=refractory, theta=theta)


def reference_grads(case, k: int = 0, rule=None, readout=None, batch=None) -> sl.backend.StepResult:
    """The reference's ``loss_and_grads`` on ``case``'s input ``k`` (cached); ``rule``/``readout``
    default to the case's; ``batch`` selects batch elements (a tuple of indices)."""
    rule = case.rule if rule is None else rule
    readout = case.readout if readout is None else readout
    key = (id(case.network), case.name, k, repr(rule), repr(readout), batch)
    hit = _lookup(_grads, key, case.network)
    if hit is not None:
        return hit
    x, labels = case.data(k)
    if batch is not None:
        x, labels = select_batch(x, batch), labels[list(batch)]
    compiled = reference_backend().compile(case.network, rule=rule, readout=readout, dtype="float64")
    return _remember(_grads, key, case.network, compiled.loss_and_grads(x, labels))


def select_batch(x, idx):
    idx = list(idx)
    if isinstance(x, dict):
        return {k: v[:, idx] for k, v in x.items()}
    return x[:, idx]


def clear_cache() -> None:
    with _lock:
        _grads.clear()
