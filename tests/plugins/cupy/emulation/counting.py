"""Counting what the CuPy backend's host code asks of the device, per time step, on the CPU.

:class:`DevArray` is a NumPy array that counts the operations CuPy would turn into kernel launches
or transfers: every ufunc call (elementwise operations, in-place updates, reductions, ``@``),
slice assignments (copies), fancy indexing, ``astype``/``copy``, ``zeros`` (a memset); host
transfers (``xp.array`` from the host, ``.get()``-style copies back) and host syncs (``bool``,
``int``, ``float`` of a device value) are counted apart.  :func:`counting_runtime` bundles it with
the emulated (or no-op) kernels, whose launches are counted by name.

``python -m tests.plugins.cupy.emulation.counting`` prints the per-step counts of the benchmark
network (700 inputs -> 256 recurrent ALIF -> 20 LI) for e-prop and for BPTT's forward and
backward passes, as the difference between two sequence lengths divided by the difference of
steps, and the host time per step with no-op kernels.
"""

from __future__ import annotations

import collections
import time
import types

import numpy as np

from spikeloom_cupy.runtime import Runtime

from .emulator import EmulatedKernels

COUNTS: collections.Counter = collections.Counter()


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, DevArray) else x


def _wrap(x):
    if isinstance(x, np.ndarray) and not isinstance(x, DevArray):
        return x.view(DevArray)
    return x


class DevArray(np.ndarray):
    """A NumPy array standing for a CuPy array: counts the device work each operation would be."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        COUNTS["array_op"] += 1
        COUNTS[f"op:{ufunc.__name__}.{method}"] += 1
        inputs = tuple(_plain(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(x) for x in kwargs["out"])
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if isinstance(result, tuple):
            return tuple(_wrap(r) for r in result)
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if name not in ("ascontiguousarray", "shape", "ndim", "size", "result_type", "may_share_memory"):
            COUNTS["array_op"] += 1
            COUNTS[f"fn:{name}"] += 1
        args = tuple(_plain(a) for a in args)
        kwargs = {k: _plain(v) for k, v in kwargs.items()}
        out = func(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(_wrap(o) for o in out)
        return _wrap(out)

    def __getitem__(self, key):
        if isinstance(key, np.ndarray) or (isinstance(key, tuple) and any(isinstance(k, np.ndarray) for k in key)):
            COUNTS["array_op"] += 1
            COUNTS["fancy_index"] += 1
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        COUNTS["array_op"] += 1
        COUNTS["setitem"] += 1
        super().__setitem__(key, _plain(value))

    def astype(self, *args, **kwargs):
        out = super().astype(*args, **kwargs)
        if not np.shares_memory(out, self):
            COUNTS["array_op"] += 1
            COUNTS["astype"] += 1
        return out

    def copy(self, *args, **kwargs):
        COUNTS["array_op"] += 1
        COUNTS["copy"] += 1
        return super().copy(*args, **kwargs)

    def _sync(self):
        COUNTS["host_sync"] += 1

    def __bool__(self):
        self._sync()
        return bool(_plain(self))

    def __int__(self):
        self._sync()
        return int(_plain(self))

    def __float__(self):
        self._sync()
        return float(_plain(self))

    def item(self, *args):
        self._sync()
        return _plain(self).item(*args)

    def get(self):
        COUNTS["d2h"] += 1
        COUNTS["host_sync"] += 1
        return np.array(_plain(self))


def _xp() -> types.SimpleNamespace:
    """A stand-in for ``cupy``: NumPy whose arrays are :class:`DevArray`."""

    def creator(name, count):
        fn = getattr(np, name)

        def make(*args, **kwargs):
            if count:
                COUNTS["array_op"] += 1
                COUNTS[f"create:{name}"] += 1
            return _wrap(fn(*args, **kwargs))

        return make

    def array(obj, *args, **kwargs):
        if isinstance(obj, DevArray):
            COUNTS["array_op"] += 1
            COUNTS["copy"] += 1
        else:
            COUNTS["h2d"] += 1
        return _wrap(np.array(_plain(obj), *args, **kwargs))

    def ascontiguousarray(obj, *args, **kwargs):
        if isinstance(obj, np.ndarray) and not obj.flags.c_contiguous:
            COUNTS["array_op"] += 1
            COUNTS["fn:ascontiguousarray"] += 1
        return _wrap(np.ascontiguousarray(_plain(obj), *args, **kwargs))

    ns = types.SimpleNamespace()
    for name in dir(np):
        if not name.startswith("_"):
            setattr(ns, name, getattr(np, name))
    for name in ("zeros", "zeros_like", "ones", "full", "arange"):
        setattr(ns, name, creator(name, True))
    for name in ("empty", "empty_like"):
        setattr(ns, name, creator(name, False))
    ns.array = array
    ns.asarray = array
    ns.ascontiguousarray = ascontiguousarray
    ns.ndarray = np.ndarray
    return ns


class CountingKernels(EmulatedKernels):
    """The emulated kernels (or, with ``noop``, nothing at all), counting launches by name."""

    def __init__(self, dtype, noop: bool = False) -> None:
        super().__init__(dtype)
        self.noop = noop

    def _launch(self, name, cfg, args) -> None:
        COUNTS["launch"] += 1
        COUNTS[f"kernel:{name}"] += 1
        if not self.noop:
            super()._launch(name, cfg, args)


class CountingRuntime(Runtime):
    def gemm(self, a, w, out, *, trans_w: bool = False, accumulate: bool = True) -> None:
        """One cuBLAS call on CuPy, counted as one array operation."""
        COUNTS["array_op"] += 1
        COUNTS["fn:gemm"] += 1
        plain, wt = _plain(out), (_plain(w).T if trans_w else _plain(w))
        if accumulate:
            plain += _plain(a) @ wt
        else:
            np.matmul(_plain(a), wt, out=plain)

    def host(self, arr):
        if isinstance(arr, DevArray):
            COUNTS["d2h"] += 1
            COUNTS["host_sync"] += 1
            return np.array(_plain(arr))
        return super().host(arr)


def counting_runtime(dtype="float32", noop: bool = False) -> Runtime:
    return CountingRuntime(_xp(), CountingKernels(dtype, noop), dtype)


def counting_compiled(net, rule, readout, dtype="float32", noop: bool = False):
    """``(CupyCompiled, compiled)`` of ``net`` on the counting runtime (the same object twice: the
    first to reach the backend's internals, the second for the public interface)."""
    from spikeloom_cupy.backend import CupyCompiled

    from .backend import EmulatedCupyBackend

    class _Counting(EmulatedCupyBackend):
        def _compile(self, request):
            return CupyCompiled(request, counting_runtime(request.dtype, noop))

    compiled = _Counting().compile(net, rule=rule, readout=readout, dtype=dtype, device="cpu")
    return compiled, compiled


def per_step_counts(compiled_pair, phase: str, inputs_for, T1: int, T2: int) -> dict:
    """Per-step counts of ``phase`` ("eprop", "bptt_forward", "bptt_backward") between T1 and T2,
    both in the recurrent delivery mode the compiled network has when called (a run sets the
    next one's from its activity: that is undone)."""
    mode = compiled_pair[0].recurrent_mode

    def measure(T):
        inner, compiled = compiled_pair
        inner.recurrent_mode = mode
        x, labels = inputs_for(T)
        if phase == "bptt_forward":
            from spikeloom_cupy.bptt import _keep
            from spikeloom_cupy.forward import run

            pops, weights = inner._consts()
            xd = inner._device_inputs(x)
            COUNTS.clear()
            run(inner.rt, inner.built, inner._plan, pops, weights, xd, _keep(inner.built), inner.recurrent_mode)
            return collections.Counter(COUNTS)
        COUNTS.clear()
        compiled.loss_and_grads(x, labels)
        return collections.Counter(COUNTS)

    c1, c2 = measure(T1), measure(T2)
    keys = set(c1) | set(c2)
    return {k: (c2[k] - c1[k]) / (T2 - T1) for k in sorted(keys) if c2[k] != c1[k]}


def benchmark_setup(B: int = 2, n_hidden: int = 256, n_in: int = 700):
    import spikeloom as sl

    net = sl.Network(
        [sl.SpikeInput("inp", n_in), sl.ALIF("hidden", n_hidden, tau_syn=5.0, tau_mem=20.0), sl.LI("out", 20)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(n_in))),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(n_hidden - 1))),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(n_hidden))),
        ],
        seed=0,
    )
    rng = np.random.default_rng(0)

    def inputs_for(T):
        x = (rng.random((T, B, n_in)) < 0.02).astype(np.float32)
        return {"inp": x}, rng.integers(0, 20, B)

    return net, inputs_for


def report(noop_T: tuple[int, int] = (100, 400)) -> dict:
    import spikeloom as sl

    net, inputs_for = benchmark_setup()
    ro = sl.Readout("out", "per_step")
    out = {}
    for label, rule, phase in (
        ("eprop", sl.EProp(), "eprop"),
        ("bptt_forward", sl.BPTT(), "bptt_forward"),
        ("bptt_total", sl.BPTT(), "bptt"),
    ):
        pair = counting_compiled(net, rule, ro)
        out[label] = per_step_counts(pair, phase, inputs_for, 40, 104)
    fwd, tot = out["bptt_forward"], out.pop("bptt_total")
    out["bptt_backward"] = {k: tot.get(k, 0) - fwd.get(k, 0) for k in tot if tot.get(k, 0) != fwd.get(k, 0)}
    # host time per step with kernels that do nothing (array operations still run, on arrays made
    # small so that their arithmetic does not count: B = 1, 16 inputs, 16 hidden neurons)
    net, inputs_for = benchmark_setup(B=1, n_hidden=16, n_in=16)
    times = {}
    for label, rule in (("eprop", sl.EProp()), ("bptt", sl.BPTT())):
        inner, compiled = counting_compiled(net, rule, ro, noop=True)
        res = []
        for T in noop_T:
            x, labels = inputs_for(T)
            compiled.loss_and_grads(x, labels)  # warm-up
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                compiled.loss_and_grads(x, labels)
                best = min(best, time.perf_counter() - t0)
            res.append(best)
        times[label] = (res[1] - res[0]) / (noop_T[1] - noop_T[0]) * 1e3
    out["host_ms_per_step_noop"] = times
    return out


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(report(), indent=1))
