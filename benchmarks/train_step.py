"""Time one training step (forward, loss, backward, Adam) of a standard workload on a backend.

Workload (the torch backend's speed target): 700 inputs (2 % Bernoulli spikes per step) -> 256
recurrent current-based LIF (tau_syn 5 ms, tau_mem 20 ms) -> 20 LI readout, float32, BPTT; and the
same network with ALIF neurons trained by e-prop.  Prints a table and writes JSON::

    python benchmarks/train_step.py --backend torch --device cpu --sizes 100x32,500x32 --json out.json

Reported per (rule, T, B): the median of ``--repeats`` timed steps after one warm-up, time per
step of the sequence, the hidden layer's activity (fraction of neuron-steps with a spike), peak
memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident memory so
far, which only grows, and ``training_memory_mb``: the peak during the training steps above the
resident memory just before them, i.e. without the compiled network and its input), and the
share of CPU time stolen by other guests of a virtual machine's host during the timed steps
(``cpu_steal``, :mod:`steal`; times taken with a large share are slow).
``--weight-scales 1,1`` gives the denser network (about 40 % activity).

``--paired`` times BPTT and e-prop in turns in one process instead (``measure_paired``) and
reports the ratio e-prop / BPTT of each pair of steps and their median; the ratio of two
separate runs is at the mercy of the machine's speed between them.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from functools import partial

import numpy as np
from steal import StealMeter

import spikeloom as sl
from spikeloom_conformance.bench import proc_kib, reset_high_water_mark

#: default weight scales (input, recurrent): the hidden layer then fires on about 2 % of its
#: neuron-steps (20 Hz), inside the 1-5 % of a trained network; ``1,1`` gives about 40 %
WEIGHT_SCALES = (0.4, 0.2)


def network(model: str, seed: int = 0, scales: tuple[float, float] = WEIGHT_SCALES, n_hidden: int = 256) -> sl.Network:
    """The workload's network: input weights ``N(0, s_in / sqrt(700))``, recurrent weights
    ``N(0, s_rec / sqrt(n_hidden - 1))``, readout weights ``N(0, 1 / sqrt(n_hidden))``."""
    pop = sl.ALIF if model == "alif" else sl.LIF
    s_in, s_rec = scales
    return sl.Network(
        [sl.SpikeInput("inp", 700), pop("hidden", n_hidden, tau_syn=5.0, tau_mem=20.0), sl.LI("out", 20)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.0, s_in / np.sqrt(700))),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, s_rec / np.sqrt(n_hidden - 1))),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(n_hidden))),
        ],
        seed=seed,
    )


def parse_scales(text: str) -> tuple[float, float]:
    s_in, s_rec = (float(v) for v in text.split(","))
    return s_in, s_rec


def hidden_activity(compiled, x) -> float:
    """Fraction of the hidden layer's neuron-steps with a spike, for spikes ``x`` ``[T, B, 700]``."""
    return float(np.mean(compiled.simulate(x, record={"hidden": ("z",)})["hidden"]["z"]))


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed_steps(step, repeats: int, wait) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``step``, with ``wait()`` (the device's
    synchronisation) before the clock starts and before it stops."""
    times = []
    for _ in range(repeats):
        wait()
        t0 = time.perf_counter()
        step()
        wait()
        times.append(time.perf_counter() - t0)
    return times


#: the hidden neuron model each rule trains in the workload
MODELS = {"bptt": "lif", "eprop": "alif"}


def setup(backend: str, device: str, rule: str, T: int, B: int, scales: tuple[float, float] = WEIGHT_SCALES):
    """``(compiled network, spikes x [T, B, 700], labels, Adam)`` of the workload for ``rule``."""
    compiled = sl.get_backend(backend).compile(
        network(MODELS[rule], scales=scales),
        rule=sl.EProp() if rule == "eprop" else sl.BPTT(),
        readout=sl.Readout("out", "per_step"),
        dtype="float32",
        device=device,
    )
    rng = np.random.default_rng(T * 7919 + B)
    # drawn one step at a time into a bool array: a float64 array [T, B, 700] would dominate the
    # peak memory (the bool input itself, T * B * 700 bytes, is part of every rule's peak)
    x = np.empty((T, B, 700), dtype=bool)
    for t in range(T):
        x[t] = rng.random((B, 700)) < 0.02
    labels = rng.integers(0, 20, size=B)
    return compiled, x, labels, sl.Adam(lr=1e-3)


def measure(
    backend: str, device: str, rule: str, T: int, B: int, repeats: int, scales: tuple[float, float] = WEIGHT_SCALES
) -> dict:
    compiled, x, labels, opt = setup(backend, device, rule, T, B, scales)
    # the memory training adds on top of the compiled network and its input (CPU, Linux)
    base_rss = proc_kib("VmRSS") if device == "cpu" and reset_high_water_mark() else None
    compiled.train_step(x, labels, opt)  # warm-up
    reset_peak(device)
    with StealMeter() as stolen:
        times = timed_steps(lambda: compiled.train_step(x, labels, opt), repeats, lambda: sync(device))
    med = statistics.median(times)
    peak = peak_memory_mb(device)
    hwm = proc_kib("VmHWM") if base_rss is not None else None
    training = None if hwm is None else (hwm - base_rss) / 1024
    activity = hidden_activity(compiled, x)  # after reading the peak: simulate records [T, B, N]
    return {
        "backend": backend,
        "device": device,
        "rule": rule,
        "model": MODELS[rule],
        "T": T,
        "B": B,
        "median_s": med,
        "us_per_step": med / T * 1e6,
        "hidden_activity": activity,
        "peak_memory_mb": peak,
        "training_memory_mb": training,
        "times_s": times,
        "cpu_steal": stolen.fraction,
    }


def measure_paired(
    backend: str, device: str, T: int, B: int, repeats: int, scales: tuple[float, float] = WEIGHT_SCALES
) -> dict:
    """e-prop's and BPTT's training steps timed in turns in one process (the order alternating
    from pair to pair), and the ratio e-prop / BPTT of each pair: on a machine whose speed drifts
    (other guests of a virtual machine's host), a pair's two steps see about the same machine, so
    the median of the pair ratios varies less than the ratio of two separate runs.  No memory
    figures: both networks live in the one process."""
    nets = {rule: setup(backend, device, rule, T, B, scales) for rule in ("bptt", "eprop")}
    for compiled, x, labels, opt in nets.values():
        compiled.train_step(x, labels, opt)  # warm-up
    times: dict[str, list[float]] = {"bptt": [], "eprop": []}
    with StealMeter() as stolen:
        for r in range(repeats):
            for rule in ("bptt", "eprop") if r % 2 == 0 else ("eprop", "bptt"):
                compiled, x, labels, opt = nets[rule]
                times[rule] += timed_steps(partial(compiled.train_step, x, labels, opt), 1, partial(sync, device))
    ratios = [e / b for e, b in zip(times["eprop"], times["bptt"], strict=True)]
    return {
        "backend": backend,
        "device": device,
        "T": T,
        "B": B,
        "us_per_step": {rule: statistics.median(ts) / T * 1e6 for rule, ts in times.items()},
        "times_s": times,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
        "cpu_steal": stolen.fraction,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rules", default="bptt,eprop")
    p.add_argument("--sizes", default="100x32,500x32,1000x32,100x256,500x256,1000x256", help="TxB,...")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--weight-scales", default=",".join(map(str, WEIGHT_SCALES)), help="input,recurrent")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--paired",
        action="store_true",
        help="time BPTT and e-prop in turns in one process and report the e-prop / BPTT ratio of each pair "
        "(--rules is ignored; no memory figures)",
    )
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = []
    if args.paired:
        for size in args.sizes.split(","):
            T, B = (int(v) for v in size.split("x"))
            r = measure_paired(args.backend, args.device, T, B, args.repeats, parse_scales(args.weight_scales))
            rows.append(r)
            us = r["us_per_step"]
            print(
                f"{r['backend']:>6} {r['device']:>6} paired T={T:<5} B={B:<4} bptt {us['bptt']:8.1f} us/step  "
                f"eprop {us['eprop']:8.1f} us/step  eprop/bptt per pair: median {r['median_ratio']:.2f} "
                f"(min {min(r['ratios']):.2f}, max {max(r['ratios']):.2f})"
                + ("" if r["cpu_steal"] is None else f"  cpu steal {r['cpu_steal']:.2f}"),
                flush=True,
            )
    for rule in [] if args.paired else args.rules.split(","):
        for size in args.sizes.split(","):
            T, B = (int(v) for v in size.split("x"))
            r = measure(args.backend, args.device, rule, T, B, args.repeats, parse_scales(args.weight_scales))
            rows.append(r)
            print(
                f"{r['backend']:>6} {r['device']:>6} {rule:>5} T={T:<5} B={B:<4} "
                f"{r['median_s'] * 1e3:9.1f} ms  {r['us_per_step']:8.1f} us/step  peak {r['peak_memory_mb']:8.1f} MiB"
                + ("" if r["training_memory_mb"] is None else f" (training {r['training_memory_mb']:.1f} MiB)")
                + f"  hidden activity {r['hidden_activity']:.3f}"
                + ("" if r["cpu_steal"] is None else f"  cpu steal {r['cpu_steal']:.2f}"),
                flush=True,
            )
    if args.json:
        meta = {"python": sys.version.split()[0], "machine": platform.machine(), "numpy": np.__version__}
        try:
            import torch

            meta["torch"] = torch.__version__
            if args.device.startswith("cuda"):
                meta["gpu"] = torch.cuda.get_device_name()
        except ImportError:
            pass
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
