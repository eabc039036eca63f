"""Hidden firing rates at initialisation: default weights (KaimingUniform) vs fluctuation-driven init.

A feed-forward network of 4 hidden LIF layers (128 neurons each) and an LI readout, driven by
(a) Poisson spikes (200 channels at 20 Hz, 300 steps of 1 ms) and (b) the digits ``pixels`` and
``sequential`` encodings.  Rates are measured on the NumPy reference, float64::

    python examples/fluctuation_rates.py
"""

from __future__ import annotations

import numpy as np

import spikeloom as sl
from spikeloom.data.digits import load_digits

LAYERS, HIDDEN = 4, 128


def network(n_in: int, tau_syn: float) -> sl.Network:
    pops = [sl.SpikeInput("inp", n_in)]
    pops += [sl.LIF(f"h{i}", HIDDEN, tau_mem=20.0, tau_syn=tau_syn) for i in range(LAYERS)]
    pops.append(sl.LI("out", 10, tau_syn=tau_syn))
    conns = [sl.Connection(a.name, b.name) for a, b in zip(pops[:-1], pops[1:], strict=True)]
    return sl.Network(pops, conns, seed=1)


def rates(net: sl.Network, x: np.ndarray) -> list[float]:
    names = [f"h{i}" for i in range(LAYERS)]
    rec = sl.get_backend("numpy").compile(net, dtype="float64").simulate(x, record={n: ("z",) for n in names})
    return [1000.0 * float(rec[n]["z"].mean()) / net.dt for n in names]


def main() -> None:
    rng = np.random.default_rng(0)
    poisson = rng.random((300, 64, 200)) < 0.02
    pixels, _ = load_digits("pixels")
    sequential, _ = load_digits("sequential")
    inputs = {
        "Poisson 20 Hz, T=300": (poisson, poisson),
        "digits pixels, T=16": (pixels.batch(np.arange(256))[0], pixels),
        "digits sequential, T=64": (sequential.batch(np.arange(256))[0], sequential),
    }
    print(f"{'input':<26} {'synapse':<12} {'init':<22} " + " ".join(f"h{i} (Hz)" for i in range(LAYERS)))
    for label, (x, sample) in inputs.items():
        for tau_syn in (0.0, 5.0):
            net = network(x.shape[2], tau_syn)
            kind = "delta" if tau_syn == 0 else f"tau_syn={tau_syn:g}"
            row = rates(net, x)
            print(f"{label:<26} {kind:<12} {'default':<22} " + " ".join(f"{r:7.2f}" for r in row))
            for xi in (1.5, 2.0):
                try:
                    new, _ = sl.fluctuation_init(net, sample, sl.FluctuationConfig(xi=xi))
                except ValueError as exc:
                    print(f"{label:<26} {kind:<12} {f'fluctuation xi={xi:g}':<22} error: {exc}")
                    continue
                row = rates(new, x)
                print(f"{label:<26} {kind:<12} {f'fluctuation xi={xi:g}':<22} " + " ".join(f"{r:7.2f}" for r in row))


if __name__ == "__main__":
    main()
