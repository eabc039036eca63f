"""The speed suite: standard workloads through the public API, timed, with peak memory and the
ratio to the NumPy reference measured in the same run.

Workloads (SHD-shaped: 700 input channels, 20 classes, sparse input spikes):

- ``inference``: a recurrent LIF network simulated, recording only the readout (``simulate``);
- ``bptt_train``: one ``train_step`` of BPTT (SuperSpike, max-over-time loss) with Adam;
- ``eprop_train``: one ``train_step`` of e-prop on a recurrent ALIF network (GeNN's parameters).

Each workload is compiled once, called once to warm up, then timed over ``repeats`` calls (the
median is reported); peak memory comes from one more, untimed call: the growth of the process's
resident set (Linux: its high-water mark is reset first) and, for NumPy arrays, tracemalloc's peak.
Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
import tracemalloc

import attrs
import numpy as np

import spikeloom as sl

__all__ = ["SIZES", "WORKLOADS", "BenchSize", "BenchResult", "run_bench", "format_table"]


@attrs.frozen
class BenchSize:
    n_in: int
    n_hidden: int
    n_out: int
    T: int
    batch: int
    input_rate: float = 0.01  # spikes per channel per step (about 10 Hz at dt = 1 ms)


SIZES = {
    "small": BenchSize(700, 64, 20, 100, 16),
    "medium": BenchSize(700, 256, 20, 500, 64),
    "shd": BenchSize(700, 256, 20, 1000, 128),
}


@attrs.frozen
class BenchResult:
    """One workload on one backend; ``speedup`` is the reference's time over this backend's."""

    backend: str
    workload: str
    size: str
    dtype: str
    device: str
    T: int
    batch: int
    n_hidden: int
    seconds: float | None = None
    timesteps_per_s: float | None = None
    samples_per_s: float | None = None
    peak_rss_mib: float | None = None  # process peak (or device peak on CUDA) during one call
    peak_traced_mib: float | None = None
    reference_seconds: float | None = None
    speedup: float | None = None
    skipped: str = ""

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def _network(size: BenchSize, kind: str) -> sl.Network:
    w_in = 4.0 / np.sqrt(size.n_in * size.input_rate * 20.0)
    if kind == "alif":
        hidden = sl.ALIF(
            "hidden", size.n_hidden, tau_mem=20.0, v_thresh=0.6, refractory=5.0, tau_adapt=2000.0, beta=0.0174
        )
    else:
        hidden = sl.LIF("hidden", size.n_hidden, tau_mem=20.0, tau_syn=5.0)
    return sl.Network(
        [sl.SpikeInput("inp", size.n_in), hidden, sl.LI("out", size.n_out, tau_mem=20.0)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.0, w_in)),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(size.n_hidden))),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(size.n_hidden))),
        ],
        seed=0,
    )


#: name -> (network kind, rule, readout mode, description)
WORKLOADS = {
    "inference": ("lif", None, None, "simulate, recording the readout only"),
    "bptt_train": ("lif", sl.BPTT(sl.SuperSpike(10.0)), "max", "one BPTT train_step with Adam"),
    "eprop_train": ("alif", sl.EProp(), "per_step", "one e-prop train_step with Adam"),
}


def _data(size: BenchSize):
    rng = np.random.default_rng(0)
    x = rng.random((size.T, size.batch, size.n_in)) < size.input_rate
    labels = rng.integers(0, size.n_out, size=size.batch)
    return x, labels


def _prepare(backend: sl.Backend, workload: str, size: BenchSize, dtype: str, device: str):
    kind, rule, mode, _ = WORKLOADS[workload]
    net = _network(size, kind)
    readout = sl.Readout("out", mode) if mode else None
    compiled = backend.compile(net, rule=rule, readout=readout, dtype=dtype, device=device, batch_size=size.batch)
    x, labels = _data(size)
    if rule is None:
        return lambda: compiled.simulate(x, record={"out": ("V",)})
    opt = sl.Adam(lr=1e-3)
    return lambda: compiled.train_step(x, labels, opt)


def proc_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in KiB; None where it cannot be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_high_water_mark() -> bool:
    """Restart the process's resident-set high-water mark (``VmHWM``) at the current size (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_memory(fn, device: str) -> tuple[float | None, float | None]:
    """``(peak, traced)`` in MiB during one call of ``fn``: the process's resident-set high-water
    mark during the call (Linux resets it first; elsewhere the process's lifetime peak), or on a
    CUDA device with PyTorch loaded the peak of device memory allocated by the call; and the peak of
    the allocations tracemalloc sees (NumPy's arrays)."""
    gpu = None
    if device.startswith("cuda") and "torch" in sys.modules:
        torch = sys.modules["torch"]
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            gpu = torch.cuda.memory_allocated()
    reset_high_water_mark()
    tracemalloc.start()
    try:
        fn()
        _, traced = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if gpu is not None:
        torch = sys.modules["torch"]
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - gpu) / 2**20, traced / 2**20
    hwm = proc_kib("VmHWM")
    if hwm is None:  # not Linux: the lifetime peak (ru_maxrss is KiB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = peak / 1024 if sys.platform == "darwin" else peak
    return hwm / 1024, traced / 2**20


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: compilation caches, allocator pools
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _needs(workload: str, size: BenchSize, dtype: str, device: str):
    kind, rule, mode, _ = WORKLOADS[workload]
    from spikeloom.capabilities import requirements

    net = _network(size, kind)
    surrogate = getattr(getattr(rule, "surrogate", None), "kind", None)
    return requirements(
        net.built, dtype=dtype, device=device, rule=getattr(rule, "kind", None), surrogate=surrogate, readout=mode
    )


def run_bench(
    backend,
    *,
    size: str = "small",
    dtype: str | None = None,
    device: str | None = None,
    repeats: int = 3,
    workloads=None,
    reference: bool = True,
) -> list[BenchResult]:
    """Time the standard workloads on ``backend`` (and on the NumPy reference, for the ratio)."""
    from .runner import default_device, resolve_backend, unmet_need

    backend = resolve_backend(backend)
    if size not in SIZES:
        raise ValueError(f"bench size {size!r}: choose one of {sorted(SIZES)}")
    s = SIZES[size]
    caps = backend.capabilities()
    device = device or default_device(caps)
    dtype = dtype or ("float32" if "float32" in caps.dtypes else sorted(caps.dtypes)[0])
    ref_backend = sl.get_backend("numpy") if reference else None
    results = []
    for name in workloads or WORKLOADS:
        base = {"backend": backend.name, "workload": name, "size": size, "dtype": dtype, "device": device}
        base.update(T=s.T, batch=s.batch, n_hidden=s.n_hidden)
        why = unmet_need(backend, caps, _needs(name, s, dtype, device))
        if why:
            results.append(BenchResult(**base, skipped=why))
            continue
        fn = _prepare(backend, name, s, dtype, device)
        seconds = _time(fn, repeats)
        rss, traced = _peak_memory(fn, device)
        ref_seconds = None
        if ref_backend is not None:
            if ref_backend is backend:
                ref_seconds = seconds
            else:
                ref_seconds = _time(_prepare(ref_backend, name, s, dtype, "cpu"), repeats)
        results.append(
            BenchResult(
                **base,
                seconds=seconds,
                timesteps_per_s=s.T / seconds,
                samples_per_s=s.batch / seconds,
                peak_rss_mib=rss,
                peak_traced_mib=traced,
                reference_seconds=ref_seconds,
                speedup=None if ref_seconds is None else ref_seconds / seconds,
            )
        )
    return results


def format_table(results: list[BenchResult]) -> str:
    """The results as a text table."""
    head = f"{'backend':<10} {'workload':<12} {'T':>5} {'B':>4} {'N':>5} {'s/call':>9} {'steps/s':>9} {'samples/s':>10} {'peak MiB':>9} {'traced MiB':>11} {'vs numpy':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.backend:<10} {r.workload:<12} skipped: {r.skipped}")
            continue

        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"

        lines.append(
            f"{r.backend:<10} {r.workload:<12} {r.T:>5} {r.batch:>4} {r.n_hidden:>5} {f(r.seconds, '9.4f')} "
            f"{f(r.timesteps_per_s, '9.1f')} {f(r.samples_per_s, '10.1f')} {f(r.peak_rss_mib, '9.1f')} "
            f"{f(r.peak_traced_mib, '11.1f')} {(f(r.speedup, '8.2f') + 'x') if r.speedup else '        -'}"
        )
    return "\n".join(lines)
