"""Time training steps of the CuPy backend against the torch backend on the same CUDA device.

Workload (SHD-shaped, as ``train_step.py``, whose weight scales keep the hidden layer at a few
percent activity at every N; the activity of the first 200 steps is reported): 700 inputs (2 %
Bernoulli spikes per step) -> N recurrent ALIF (tau_syn 5 ms, tau_mem 20 ms) -> 20 LI readout, float32, per-step loss, one
``train_step`` (forward, loss, gradients, Adam) with BPTT or e-prop.  Each (rule, T, B, N) is
compiled once per backend, run once to warm up (and compile kernels), then timed ``--repeats``
times (median reported, the device synchronised around each step).  Peak device memory: torch's
``max_memory_allocated``; CuPy's memory pool size after one step from an emptied pool.  Prints a
table and writes JSON::

    python benchmarks/cupy_vs_torch.py --sizes 200x64x256,1000x256x256 --json out.json

``--budget`` (seconds) skips what is left once that much time has passed, so the script fits a
short GPU session; ``--eprop-memory TxB,...`` adds CuPy e-prop peak memory at several T.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import spikeloom as sl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import hidden_activity, timed_steps  # noqa: E402
from train_step import network as standard_network  # noqa: E402


def network(n_hidden: int) -> sl.Network:
    """``train_step.py``'s ALIF network with ``n_hidden`` recurrent neurons (its weight scales: the
    hidden layer fires on a few percent of its neuron-steps at every size)."""
    return standard_network("alif", n_hidden=n_hidden)


def backend_for(name: str) -> sl.Backend:
    """The backend itself (so this works whether or not the package's entry points are installed).
    Variants of the CuPy backend: ``cupy-steps`` runs every time loop step by step (BPTT's block
    loops off: one launch per step and direction for the recurrent population; e-prop's synapses
    one launch per step, not EPROP_STEPS at a time), as before those existed; ``cupy-bwd-block``
    and ``cupy-bwd-gemm`` (BPTT) take the block loop backward at every size / a cuBLAS product per
    step at every size (``spikeloom_cupy.bptt.BLOCK_BACKWARD_MAX_N`` picks by size);
    ``cupy-fwd-block`` runs the forward block loop at every size also with dense recurrent
    delivery (``spikeloom_cupy.forward.BLOCK_FORWARD_DENSE_MAX_N`` picks by size);
    ``cupy-tileN`` (e-prop) gives each thread of the synapse kernel N presynaptic neurons
    (``spikeloom_cupy.eprop.EPROP_PRE_TILE``; ``cupy-tile1`` is the kernel before tiles);
    ``cupy-kN`` (e-prop) advances the synapses N steps per launch (``EPROP_STEPS``);
    ``cupy-inthread`` (e-prop) updates the shared presynaptic traces in every synapse's thread
    instead of once per presynaptic neuron (``SHARED_PRE_TRACES`` off); ``cupy-groupN`` (e-prop)
    lets N warps of the synapse kernel take the same postsynaptic neurons (``EPROP_TILE_GROUP``;
    ``cupy-group1``: neighbouring warps take other neurons); ``cupy-generic`` (e-prop) launches
    the synapse kernel that reads every flag at run time (``SPECIALISED_SYNAPSES`` off);
    ``cupy-events`` delivers
    recurrent spikes event-driven in every training step, whatever the activity (its
    ``recurrent_mode`` set back before each step, as before training steps chose it);
    ``cupy-matmul`` makes its matrix products with ``cupy.matmul`` instead of one prepared cuBLAS
    call each (``spikeloom_cupy.gemm.BLAS_GEMM`` off)."""
    if name.startswith("cupy"):
        import spikeloom_cupy.bptt
        import spikeloom_cupy.eprop
        import spikeloom_cupy.forward
        import spikeloom_cupy.gemm
        from spikeloom_cupy.backend import CupyBackend

        spikeloom_cupy.forward.BLOCK_LOOP = name != "cupy-steps"
        spikeloom_cupy.forward.BLOCK_FORWARD_DENSE_MAX_N = (
            1 << 30 if name == "cupy-fwd-block" else DEFAULT_BLOCK_FORWARD_DENSE_MAX_N
        )
        steps = re.fullmatch(r"cupy-k(\d+)", name)
        spikeloom_cupy.eprop.EPROP_STEPS = (
            0 if name == "cupy-steps" else int(steps.group(1)) if steps else DEFAULT_EPROP_STEPS
        )
        spikeloom_cupy.eprop.SHARED_PRE_TRACES = name != "cupy-inthread"
        spikeloom_cupy.eprop.SPECIALISED_SYNAPSES = name != "cupy-generic"
        spikeloom_cupy.gemm.BLAS_GEMM = name != "cupy-matmul"
        tile = re.fullmatch(r"cupy-tile(\d+)", name)
        spikeloom_cupy.eprop.EPROP_PRE_TILE = int(tile.group(1)) if tile else DEFAULT_EPROP_PRE_TILE
        group = re.fullmatch(r"cupy-group(\d+)", name)
        spikeloom_cupy.eprop.EPROP_TILE_GROUP = int(group.group(1)) if group else DEFAULT_EPROP_TILE_GROUP
        spikeloom_cupy.bptt.BLOCK_BACKWARD_MAX_N = {"cupy-bwd-block": 1 << 30, "cupy-bwd-gemm": 0}.get(
            name, DEFAULT_BLOCK_BACKWARD_MAX_N
        )
        return CupyBackend()
    if name == "torch":
        from spikeloom_torch.backend import TorchBackend

        return TorchBackend()
    return sl.get_backend(name)


def timed_with(name: str, rule: str) -> bool:
    """Whether backend ``name`` is timed with ``rule``: the block loops' variants are BPTT's
    only, the e-prop synapse kernels' e-prop's only."""
    if re.fullmatch(r"cupy-(fwd|bwd)-\w+", name):
        return rule == "bptt"
    if re.fullmatch(r"cupy-(tile\d+|group\d+|k\d+|inthread|generic)", name):
        return rule == "eprop"
    return True


try:
    from spikeloom_cupy.bptt import BLOCK_BACKWARD_MAX_N as DEFAULT_BLOCK_BACKWARD_MAX_N
    from spikeloom_cupy.eprop import EPROP_PRE_TILE as DEFAULT_EPROP_PRE_TILE
    from spikeloom_cupy.eprop import EPROP_STEPS as DEFAULT_EPROP_STEPS
    from spikeloom_cupy.eprop import EPROP_TILE_GROUP as DEFAULT_EPROP_TILE_GROUP
    from spikeloom_cupy.forward import BLOCK_FORWARD_DENSE_MAX_N as DEFAULT_BLOCK_FORWARD_DENSE_MAX_N
except ImportError:  # without the CuPy backend's package
    DEFAULT_BLOCK_BACKWARD_MAX_N = DEFAULT_EPROP_STEPS = DEFAULT_BLOCK_FORWARD_DENSE_MAX_N = 0
    DEFAULT_EPROP_PRE_TILE = DEFAULT_EPROP_TILE_GROUP = 1

#: where the steps run ("cuda"; "cpu" only to try the script out with torch on a machine without a GPU)
DEVICE = "cuda"


def sync(name: str) -> None:
    if DEVICE == "cpu":
        return
    if name.startswith("cupy"):
        import cupy

        cupy.cuda.Device().synchronize()
    else:
        import torch

        torch.cuda.synchronize()


def reset_memory(name: str) -> None:
    sync(name)
    if DEVICE == "cpu":
        return
    if name.startswith("cupy"):
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
    else:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib(name: str) -> float | None:
    sync(name)
    if DEVICE == "cpu":
        return None
    if name.startswith("cupy"):
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def measure(name: str, rule: str, T: int, B: int, N: int, repeats: int) -> dict:
    compiled = backend_for(name).compile(
        network(N),
        rule=sl.EProp() if rule == "eprop" else sl.BPTT(),
        readout=sl.Readout("out", "per_step"),
        dtype="float32",
        device=DEVICE,
    )
    rng = np.random.default_rng(T * 7919 + B)
    x = rng.random((T, B, 700)) < 0.02
    labels = rng.integers(0, 20, size=B)
    opt = sl.Adam(lr=1e-3)

    def step():
        if name == "cupy-events":  # whatever the last call's activity, as before training steps chose
            compiled.recurrent_mode = "events"
        return compiled.train_step(x, labels, opt)

    reset_memory(name)
    t0 = time.perf_counter()
    first = step()  # warm-up: kernel compilation, allocator pools
    sync(name)
    warm = time.perf_counter() - t0
    peak = peak_memory_mib(name)
    times = timed_steps(step, repeats, lambda: sync(name))
    med = statistics.median(times) if times else warm
    activity = hidden_activity(compiled, x[: min(T, 200)]) if repeats else None
    return {
        "backend": name,
        "rule": rule,
        "T": T,
        "B": B,
        "N": N,
        "median_s": med,
        "warmup_s": warm,
        "us_per_step": med / T * 1e6,
        "peak_memory_mib": peak,
        "first_loss": first.loss,
        "times_s": times,
        "hidden_activity": activity,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", default="bptt,eprop")
    p.add_argument("--sizes", default="200x64x256,1000x256x256", help="TxBxN,...")
    p.add_argument(
        "--backends",
        default="torch,cupy",
        help="torch, cupy, and the CuPy variants cupy-steps, cupy-events, cupy-fwd-block, cupy-bwd-block, "
        "cupy-bwd-gemm, cupy-tileN, cupy-groupN, cupy-kN, cupy-inthread, cupy-generic, cupy-matmul",
    )
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--budget", type=float, default=None, help="seconds; skip what is left after this")
    p.add_argument("--eprop-memory", default="", help="TxB,... : CuPy e-prop peak memory at these sizes (N=256)")
    p.add_argument("--json", default=None)
    p.add_argument("--device", default="cuda", help="cuda (cpu only to try the script out with torch)")
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    start = time.perf_counter()
    rows, failures = [], 0
    jobs = [
        ("speed", b, rule, *(int(v) for v in size.split("x")))
        for size in args.sizes.split(",")
        for rule in args.rules.split(",")
        for b in args.backends.split(",")
        if timed_with(b, rule)
    ]
    jobs += [
        ("memory", "cupy", "eprop", *(int(v) for v in size.split("x")), 256)
        for size in args.eprop_memory.split(",")
        if size
    ]
    for kind, name, rule, T, B, N in jobs:
        label = f"{kind:<6} {name:>5} {rule:>5} T={T:<5} B={B:<4} N={N:<5}"
        if args.budget is not None and time.perf_counter() - start > args.budget:
            print(f"{label} skipped: time budget of {args.budget:.0f} s spent", flush=True)
            rows.append({"kind": kind, "backend": name, "rule": rule, "T": T, "B": B, "N": N, "skipped": "budget"})
            continue
        try:
            r = measure(name, rule, T, B, N, args.repeats if kind == "speed" else 0)
        except Exception as exc:  # report and go on: one failure must not hide the other numbers
            failures += 1
            print(f"{label} FAILED: {type(exc).__name__}: {exc}", flush=True)
            rows.append({"kind": kind, "backend": name, "rule": rule, "T": T, "B": B, "N": N, "error": repr(exc)})
            continue
        r["kind"] = kind
        rows.append(r)
        if kind == "speed":
            print(
                f"{label} {r['median_s'] * 1e3:9.1f} ms/train_step  {r['us_per_step']:8.1f} us/step  "
                f"peak {r['peak_memory_mib'] or 0:8.1f} MiB  activity {r['hidden_activity']:.3f}  "
                f"(warm-up {r['warmup_s']:.1f} s, loss {r['first_loss']:.4f})",
                flush=True,
            )
        else:
            print(
                f"{label} peak {r['peak_memory_mib'] or 0:8.1f} MiB (one e-prop step, {r['warmup_s']:.1f} s)",
                flush=True,
            )
    print("\nspeed-up of cupy over torch (median train_step time, same GPU):")
    for rule in args.rules.split(","):
        for size in args.sizes.split(","):
            T, B, N = (int(v) for v in size.split("x"))
            got = {
                r["backend"]: r.get("median_s")
                for r in rows
                if r["kind"] == "speed" and r["rule"] == rule and (r["T"], r["B"], r["N"]) == (T, B, N)
            }
            if not got.get("torch"):
                continue
            ratios = "  ".join(f"{b} {got['torch'] / v:.2f}x" for b, v in got.items() if b != "torch" and v)
            print(f"  {rule:>5} T={T:<5} B={B:<4} N={N:<5} {ratios or 'n/a'}")
    if args.json:
        meta = {"python": sys.version.split()[0], "machine": platform.machine(), "numpy": np.__version__}
        try:
            import torch

            meta["torch"] = torch.__version__
            meta["gpu"] = torch.cuda.get_device_name()
        except Exception:
            pass
        try:
            import cupy

            meta["cupy"] = cupy.__version__
        except Exception:
            pass
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
