"""The train-step workload of ``train_step.py`` in spikeloom (torch backend) and in its peers.

Same network everywhere: 700 inputs (2 % Bernoulli spikes per step) -> 256 recurrent
current-based LIF (tau_syn 5 ms, tau_mem 20 ms, threshold 1, subtractive reset) -> 20 leaky
readout neurons; loss: the per-step cross-entropy averaged over steps; one step = forward, loss,
backward, Adam.  snnTorch and Norse run it the way their users write it (autograd through a Python
time loop; Norse's own recurrent LIF module), float32 on the CPU.  Each (library, T, B) runs in its
own process so that peak resident memory is comparable.  Needs ``pip install snntorch norse``::

    python benchmarks/peers.py --threads 2 --sizes 100x32,500x32 --json peers.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

N_IN, N_HID, N_OUT = 700, 256, 20
ALPHA_SYN, ALPHA_MEM = math.exp(-1 / 5), math.exp(-1 / 20)


def _data(T: int, B: int):
    import torch

    g = torch.Generator().manual_seed(T * 7919 + B)
    x = (torch.rand((T, B, N_IN), generator=g) < 0.02).float()
    y = torch.randint(0, N_OUT, (B,), generator=g)
    return x, y


def _snntorch_step(T: int, B: int):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    fc_in = torch.nn.Linear(N_IN, N_HID, bias=False)
    fc_rec = torch.nn.Linear(N_HID, N_HID, bias=False)
    fc_out = torch.nn.Linear(N_HID, N_OUT)
    lif = snn.Synaptic(
        alpha=ALPHA_SYN, beta=ALPHA_MEM, spike_grad=surrogate.fast_sigmoid(slope=10), reset_mechanism="subtract"
    )
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


def _norse_step(T: int, B: int):
    import norse.torch as norse
    import torch

    p = norse.LIFParameters(
        tau_syn_inv=torch.tensor(200.0),
        tau_mem_inv=torch.tensor(50.0),
        v_th=torch.tensor(1.0),
        v_reset=torch.tensor(0.0),
    )
    hidden = norse.LIFRecurrent(N_IN, N_HID, p=p, dt=1e-3)
    fc_out = torch.nn.Linear(N_HID, N_OUT)
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


def _spikeloom_step(T: int, B: int):
    import numpy as np

    import spikeloom as sl

    net = sl.Network(
        [sl.SpikeInput("inp", N_IN), sl.LIF("hidden", N_HID, tau_syn=5.0, tau_mem=20.0), sl.LI("out", N_OUT)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(N_IN))),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(N_HID - 1))),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(N_HID))),
        ],
    )
    compiled = sl.get_backend("torch").compile(net, rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float32")
    x, y = _data(T, B)
    x, y = x.numpy() > 0, y.numpy()
    opt = sl.Adam(lr=1e-3)
    return lambda: compiled.train_step(x, y, opt)


LIBRARIES = {"spikeloom": _spikeloom_step, "snntorch": _snntorch_step, "norse": _norse_step}


def _child(lib: str, T: int, B: int, repeats: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    step = LIBRARIES[lib](T, B)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"library": lib, "T": T, "B": B, "median_s": statistics.median(times), "times_s": times, "peak_rss_mb": rss}
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--libraries", default="spikeloom,snntorch,norse")
    p.add_argument("--sizes", default="100x32,500x32,1000x32,100x256,500x256,1000x256")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]), args.repeats, args.threads)
        return 0
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
            ]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{lib} T={T} B={B}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(
                f"{lib:>10} T={T:<5} B={B:<4} {r['median_s'] * 1e3:9.1f} ms  peak RSS {r['peak_rss_mb']:8.1f} MiB",
                flush=True,
            )
        mine = [r for r in rows if r["library"] == "spikeloom" and (r["T"], r["B"]) == (T, B)]
        peers = [r for r in rows if r["library"] != "spikeloom" and (r["T"], r["B"]) == (T, B)]
        if mine and peers:
            best = min(peers, key=lambda r: r["median_s"])
            print(
                f"{'':>10} spikeloom vs the faster peer ({best['library']}): {best['median_s'] / mine[0]['median_s']:.2f}x",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
