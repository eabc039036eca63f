"""The train-step workload of ``train_step.py`` in spikeloom (torch backend) and in its peers.

Same network everywhere: 700 inputs (2 % Bernoulli spikes per step) -> 256 recurrent
current-based LIF (tau_syn 5 ms, tau_mem 20 ms, threshold 1, subtractive reset) -> 20 leaky
readout neurons, with the same initial weights in every library (``train_step.network``; the
hidden layer fires on about 2 % of its neuron-steps with the default ``--weight-scales``); loss:
the per-step cross-entropy averaged over steps; one step = forward, loss, backward, Adam.
snnTorch and Norse run it the way their users write it (autograd through a Python time loop;
Norse's own recurrent LIF module), float32 on the CPU.  Each (library, T, B) runs in its own
process so that peak resident memory is comparable; each row records the share of CPU time
stolen by other guests of a virtual machine's host while it ran (``cpu_steal``).  Also measured:
the machine's float32 GEMM rate with the same threads (``torch.mm`` at the step's shapes), and
how much of it spikeloom's step reaches (its dense products' floating-point work over its time).
Needs
``pip install snntorch norse``::

    python benchmarks/peers.py --threads 2 --sizes 100x32,500x32 --json peers.json

``--paired`` runs all libraries in one process instead and times them in rotating rounds
(:func:`measure_paired`), for a speed ratio less at the mercy of the machine's drift.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

from steal import StealMeter
from train_step import WEIGHT_SCALES, network, parse_scales

N_IN, N_HID, N_OUT = 700, 256, 20
ALPHA_SYN, ALPHA_MEM = math.exp(-1 / 5), math.exp(-1 / 20)


def _data(T: int, B: int):
    import torch

    g = torch.Generator().manual_seed(T * 7919 + B)
    x = (torch.rand((T, B, N_IN), generator=g) < 0.02).float()
    y = torch.randint(0, N_OUT, (B,), generator=g)
    return x, y


def _initial_weights(scales):
    """The network's initial weights ``{name: [N_pre, N_post]}`` as float32 torch tensors."""
    import torch

    import spikeloom as sl

    params = sl.get_backend("numpy").compile(network("lif", scales=scales), dtype="float32").get_params()
    return {k: torch.from_numpy(v.copy()) for k, v in params.items()}


def _snntorch_step(T: int, B: int, scales):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    fc_in = torch.nn.Linear(N_IN, N_HID, bias=False)
    fc_rec = torch.nn.Linear(N_HID, N_HID, bias=False)
    fc_out = torch.nn.Linear(N_HID, N_OUT)
    lif = snn.Synaptic(
        alpha=ALPHA_SYN, beta=ALPHA_MEM, spike_grad=surrogate.fast_sigmoid(slope=10), reset_mechanism="subtract"
    )
    w = _initial_weights(scales)
    with torch.no_grad():
        fc_in.weight.copy_(w["inp_to_hidden.weight"].T)
        fc_rec.weight.copy_(w["hidden_to_hidden.weight"].T)
        fc_out.weight.copy_(w["hidden_to_out.weight"].T)
        fc_out.bias.zero_()
    params = [*fc_in.parameters(), *fc_rec.parameters(), *fc_out.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = _data(T, B)

    def step():
        syn, mem = lif.init_synaptic()
        spk = torch.zeros(B, N_HID)
        out = torch.zeros(B, N_OUT)
        loss = 0.0
        for t in range(T):
            spk, syn, mem = lif(fc_in(x[t]) + fc_rec(spk), syn, mem)
            out = ALPHA_MEM * out + fc_out(spk)
            loss = loss + torch.nn.functional.cross_entropy(out, y)
        loss = loss / T
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _norse_step(T: int, B: int, scales):
    import norse.torch as norse
    import torch

    p = norse.LIFParameters(
        tau_syn_inv=torch.tensor(200.0),
        tau_mem_inv=torch.tensor(50.0),
        v_th=torch.tensor(1.0),
        v_reset=torch.tensor(0.0),
    )
    w = _initial_weights(scales)
    hidden = norse.LIFRecurrent(
        N_IN,
        N_HID,
        p=p,
        dt=1e-3,
        input_weights=torch.nn.Parameter(w["inp_to_hidden.weight"].T.contiguous()),
        recurrent_weights=torch.nn.Parameter(w["hidden_to_hidden.weight"].T.contiguous()),
    )
    fc_out = torch.nn.Linear(N_HID, N_OUT)
    with torch.no_grad():
        fc_out.weight.copy_(w["hidden_to_out.weight"].T)
        fc_out.bias.zero_()
    readout = norse.LI(p=norse.LIParameters(tau_mem_inv=torch.tensor(50.0), tau_syn_inv=torch.tensor(1000.0)), dt=1e-3)
    opt = torch.optim.Adam([*hidden.parameters(), *fc_out.parameters()], lr=1e-3)
    x, y = _data(T, B)

    def step():
        z, _ = hidden(x)
        v, _ = readout(fc_out(z))
        loss = torch.nn.functional.cross_entropy(v.reshape(T * B, N_OUT), y.repeat(T))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _spikeloom_step(T: int, B: int, scales):
    import spikeloom as sl

    net = network("lif", scales=scales)
    compiled = sl.get_backend("torch").compile(net, rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float32")
    x, y = _data(T, B)
    x, y = x.numpy() > 0, y.numpy()
    opt = sl.Adam(lr=1e-3)
    step = lambda: compiled.train_step(x, y, opt)  # noqa: E731
    step.activity = lambda: float(compiled.simulate(x, record={"hidden": ("z",)})["hidden"]["z"].mean())
    return step


def dense_flops(T: int, B: int, activity: float) -> dict[str, float]:
    """Floating-point work of one BPTT step's products as dense GEMMs would do it: the recurrent
    products forward and backward and its weight gradient, the input product and its weight
    gradient, the readout's; and the part spikeloom does as dense GEMMs at this activity (its
    input products and, below 5 % activity, its recurrent forward and weight gradient add up
    rows selected by spikes instead)."""
    rec = 2.0 * T * B * N_HID * N_HID
    inp = 2.0 * T * B * N_IN * N_HID
    out = 2.0 * T * B * N_HID * N_OUT
    full = 3 * rec + 2 * inp + 3 * out
    from spikeloom_torch.spikes import SPARSE_BELOW, SPARSE_STEP_MIN_WORK

    sparse_rec = activity < SPARSE_BELOW and B * N_HID * N_HID >= SPARSE_STEP_MIN_WORK
    # with sparse recurrent spikes, the readout's drive and weight gradient are sums of rows too
    done_dense = rec if sparse_rec else 3 * rec + 3 * out
    return {"dense_equivalent": full, "spikeloom_dense": done_dense}


def gemm_rate(threads: int) -> dict[str, float]:
    """float32 GEMM rate (FLOP/s) of ``torch.mm`` at the step's shapes, best of several runs."""
    import torch

    torch.set_num_threads(threads)
    rates = {}
    for m, k, n in [(32, 256, 256), (256, 256, 256), (256, 25600, 256), (25600, 700, 256)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        reps = max(3, int(2e9 / (2 * m * k * n)))
        torch.mm(a, b)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            best = min(best, (time.perf_counter() - t0) / reps)
        rates[f"{m}x{k}x{n}"] = 2.0 * m * k * n / best
    return rates


LIBRARIES = {"spikeloom": _spikeloom_step, "snntorch": _snntorch_step, "norse": _norse_step}


def _child(lib: str, T: int, B: int, repeats: int, threads: int, scales) -> None:
    import torch

    torch.set_num_threads(threads)
    step = LIBRARIES[lib](T, B, scales)
    step()  # warm-up
    times = []
    with StealMeter() as stolen:
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"library": lib, "T": T, "B": B, "median_s": statistics.median(times), "times_s": times, "peak_rss_mb": rss}
    row["cpu_steal"] = stolen.fraction
    if hasattr(step, "activity"):  # after reading the peak: simulate records [T, B, N]
        row["hidden_activity"] = step.activity()
    print(json.dumps(row))


def measure_paired(libraries: list[str], T: int, B: int, repeats: int, threads: int, scales) -> dict:
    """Every library's step in one process, timed in rounds (each round runs one step of each
    library, the order rotating from round to round), and per round the ratio of the faster
    peer's time to spikeloom's: on a machine whose speed drifts, a round's steps see about the
    same machine, so the median of the round ratios varies less than the ratio of separate runs.
    No memory figures (all libraries share the process)."""
    import torch

    torch.set_num_threads(threads)
    steps = {lib: LIBRARIES[lib](T, B, scales) for lib in libraries}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {lib: [] for lib in libraries}
    with StealMeter() as stolen:
        for r in range(repeats):
            for lib in libraries[r % len(libraries) :] + libraries[: r % len(libraries)]:
                t0 = time.perf_counter()
                steps[lib]()
                times[lib].append(time.perf_counter() - t0)
    peers = [lib for lib in libraries if lib != "spikeloom"]
    ratios = [min(times[p][r] for p in peers) / times["spikeloom"][r] for r in range(repeats)] if peers else []
    return {
        "T": T,
        "B": B,
        "times_s": times,
        "median_s": {lib: statistics.median(ts) for lib, ts in times.items()},
        "ratios": ratios,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "cpu_steal": stolen.fraction,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--libraries", default="spikeloom,snntorch,norse")
    p.add_argument("--sizes", default="100x32,500x32,1000x32,100x256,500x256,1000x256")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weight-scales", default=",".join(map(str, WEIGHT_SCALES)), help="input,recurrent")
    p.add_argument("--json", default=None)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument(
        "--paired",
        action="store_true",
        help="all libraries in one process, timed in rotating rounds; reports per round the faster "
        "peer's time over spikeloom's (no memory figures)",
    )
    args = p.parse_args(argv)
    scales = parse_scales(args.weight_scales)
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]), args.repeats, args.threads, scales)
        return 0
    if args.paired:
        libraries = args.libraries.split(",")
        if "spikeloom" not in libraries:
            p.error("--paired compares against spikeloom: --libraries must include it")
        rows = []
        for size in args.sizes.split(","):
            T, B = (int(v) for v in size.split("x"))
            r = measure_paired(libraries, T, B, args.repeats, args.threads, scales)
            rows.append(r)
            print(
                f"T={T:<5} B={B:<4} "
                + "  ".join(f"{lib} {t * 1e3:.1f} ms" for lib, t in r["median_s"].items())
                + (
                    ""
                    if r["median_ratio"] is None
                    else f"  faster peer / spikeloom per round: median {r['median_ratio']:.2f}x "
                    f"(min {min(r['ratios']):.2f}, max {max(r['ratios']):.2f})"
                )
                + ("" if r["cpu_steal"] is None else f"  cpu steal {r['cpu_steal']:.2f}"),
                flush=True,
            )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {"threads": args.threads, "weight_scales": scales, "paired": True, "results": rows}, f, indent=1
                )
        return 0
    gemm = json.loads(
        subprocess.run(
            [sys.executable, "-c", f"import json, peers; print(json.dumps(peers.gemm_rate({args.threads})))"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout
    )
    best_gemm = max(gemm.values())
    print("float32 GEMM rate (torch.mm): " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in gemm.items()) + " GFLOP/s")
    rows = []
    for size in args.sizes.split(","):
        T, B = (int(v) for v in size.split("x"))
        for lib in args.libraries.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                lib,
                str(T),
                str(B),
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
                "--weight-scales",
                args.weight_scales,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{lib} T={T} B={B}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(
                f"{lib:>10} T={T:<5} B={B:<4} {r['median_s'] * 1e3:9.1f} ms  peak RSS {r['peak_rss_mb']:8.1f} MiB"
                + ("" if r.get("cpu_steal") is None else f"  cpu steal {r['cpu_steal']:.2f}"),
                flush=True,
            )
        mine = [r for r in rows if r["library"] == "spikeloom" and (r["T"], r["B"]) == (T, B)]
        peers = [r for r in rows if r["library"] != "spikeloom" and (r["T"], r["B"]) == (T, B)]
        if mine:
            r = mine[0]
            flops = dense_flops(T, B, r["hidden_activity"])
            r.update({k: v / r["median_s"] / best_gemm for k, v in flops.items()})
            print(
                f"{'':>10} hidden activity {r['hidden_activity']:.3f}; spikeloom's dense GEMM work reaches "
                f"{r['spikeloom_dense']:.0%} of the GEMM rate (all products as dense GEMMs: {r['dense_equivalent']:.0%})",
                flush=True,
            )
        if mine and peers:
            best = min(peers, key=lambda r: r["median_s"])
            print(
                f"{'':>10} spikeloom vs the faster peer ({best['library']}): {best['median_s'] / mine[0]['median_s']:.2f}x",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            meta = {"threads": args.threads, "weight_scales": scales, "gemm_flops_per_s": gemm}
            json.dump({**meta, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
