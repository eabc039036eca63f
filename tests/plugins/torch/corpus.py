"""A small corpus of random networks on which the torch backend must agree with the NumPy reference.

Each :class:`Case` names a network description, an input density and a learning setup; together
they cover LIF and ALIF, delta and exponential synapses, both resets, refractory periods, delays
1-3, recurrent, sparse (FixedProbability) and Explicit connections, heterogeneous parameters,
trainable decay factors, scale_input, a hidden -> hidden chain, two inputs, dt = 0.5, every
surrogate and every readout mode (with and without a window and the activity regulariser).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import spikeloom as sl


@dataclass(frozen=True)
class Case:
    id: str
    kind: str = "LIF"
    tau_syn: float = 5.0
    reset: str = "subtract"
    refractory: float = 0.0
    delay: int = 1
    recurrent: bool = False
    connectivity: str = "dense"  # of inp -> h and h -> h: dense, fixed (FixedProbability) or explicit
    het: bool = False  # per-neuron tau_mem / v_thresh (Gamma / Uniform) and readout time constants
    train_tau: bool = False  # trainable alpha_mem (h, out) and alpha_syn (h); BPTT only
    scale_input: bool = False
    chain: bool = False  # a second hidden population h -> h2 -> out
    two_inputs: bool = False
    dt: float = 1.0
    density: float = 0.3  # input spike probability (below 5 %, the CPU path uses sparse products)
    counts: bool = False  # integer spike counts instead of 0/1
    T: int = 30
    B: int = 3
    seed: int = 0
    surrogate: sl.surrogates.Surrogate = field(default_factory=lambda: sl.SuperSpike(10.0))
    mode: str = "per_step"
    window: tuple | None = None
    c_reg: float = 0.0  # Readout.c_reg for BPTT, EProp.c_reg for e-prop
    detach_reset: bool = True
    feedback: str = "symmetric"
    delta_readout: bool = False  # the readout's synapses delta even where h's are exponential

    @property
    def eprop_ok(self) -> bool:
        """Whether e-prop accepts this setup (per_step loss, no trained time constants)."""
        return self.mode == "per_step" and not self.train_tau

    def network(self) -> sl.Network:
        gain = 8.0 if self.scale_input else 1.0
        kw = dict(
            tau_syn=self.tau_syn,
            reset=self.reset,
            refractory=self.refractory,
            scale_input=self.scale_input,
            train_tau_mem=self.train_tau,
            train_tau_syn=self.train_tau and self.tau_syn > 0,
        )
        if self.het:
            kw.update(tau_mem=sl.Gamma(20.0, shape=3), v_thresh=sl.Uniform(0.6, 1.2))
        if self.kind == "ALIF":
            kw.update(tau_adapt=sl.Gamma(60.0) if self.het else 50.0, beta=0.3)
        cls = sl.ALIF if self.kind == "ALIF" else sl.LIF
        n_in, n_h, n_out = 9, 7, 4
        out_kw = dict(bias=0.1, scale_input=self.scale_input, train_tau_mem=self.train_tau)
        if self.het:
            out_kw.update(tau_mem=sl.Gamma(10.0, shape=3), tau_syn=sl.Uniform(2.0, 4.0))
        elif self.tau_syn and not self.delta_readout:
            out_kw.update(tau_syn=3.0)
        pops = [sl.SpikeInput("inp", n_in), cls("h", n_h, **kw), sl.LI("out", n_out, **out_kw)]
        rng = np.random.default_rng(self.seed + 1000)

        def conn(n_pre, n_post, recurrent=False):
            if self.connectivity == "fixed":
                return sl.FixedProbability(0.6)
            if self.connectivity == "explicit":
                m = rng.random((n_pre, n_post)) < 0.6
                if recurrent:
                    np.fill_diagonal(m, False)
                pre, post = np.nonzero(m)
                return sl.Explicit(pre, post)
            return sl.Dense()

        conns = [
            sl.Connection("inp", "h", weight=sl.Normal(0.15 * gain, 0.3 * gain), connectivity=conn(n_in, n_h)),
            sl.Connection("h", "out", delay=self.delay, weight=sl.Normal(0.0, 0.5)),
        ]
        if self.recurrent:
            conns.append(
                sl.Connection(
                    "h", "h", weight=sl.Normal(0.0, 0.4 * gain), delay=self.delay, connectivity=conn(n_h, n_h, True)
                )
            )
        if self.chain:
            pops.insert(2, sl.LIF("h2", 5, tau_syn=self.tau_syn, reset=self.reset, v_thresh=0.5))
            conns += [
                sl.Connection("h", "h2", weight=sl.Normal(0.1, 0.3), delay=min(self.delay + 1, 3)),
                sl.Connection("h2", "out", weight=sl.Normal(0.0, 0.5)),
            ]
        if self.two_inputs:
            pops.insert(1, sl.SpikeInput("inp2", 3))
            conns += [
                sl.Connection("inp2", "h", weight=sl.Normal(0.1 * gain, 0.3 * gain), delay=2),
                sl.Connection("inp2", "out", weight=sl.Normal(0.0, 0.3), trainable=False),
            ]
        return sl.Network(pops, conns, dt=self.dt, seed=self.seed)

    def inputs(self, T: int | None = None, B: int | None = None):
        T, B = T or self.T, B or self.B
        rng = np.random.default_rng(self.seed + 1)
        net = self.network()

        def one(n):
            x = rng.random((T, B, n)) < self.density
            return x * rng.integers(1, 3, size=x.shape) if self.counts else x

        xs = {p.name: one(p.n) for p in net.built.inputs}
        labels = rng.integers(0, 4, size=B)
        return (xs if len(xs) > 1 else xs["inp"]), labels

    def readout(self, rule: str = "bptt") -> sl.Readout:
        return sl.Readout("out", self.mode, self.window, c_reg=self.c_reg if rule == "bptt" else 0.0)

    def bptt(self) -> sl.BPTT:
        return sl.BPTT(surrogate=self.surrogate, detach_reset=self.detach_reset)

    def eprop(self) -> sl.EProp:
        surrogate = self.surrogate if self.surrogate.kind != "superspike" else sl.Triangle(0.3)
        return sl.EProp(surrogate=surrogate, feedback=self.feedback, c_reg=self.c_reg)

    def __str__(self) -> str:
        return self.id


CASES = [
    Case("lif-delta-dense", tau_syn=0.0, recurrent=True, surrogate=sl.SuperSpike(10.0), mode="per_step"),
    Case(
        "lif-exp-zero-refractory",
        reset="zero",
        refractory=2.0,
        delay=2,
        recurrent=True,
        surrogate=sl.Triangle(0.5),
        mode="max",
        window=(3, None),
        detach_reset=False,
    ),
    Case(
        "alif-het-fixed",
        kind="ALIF",
        het=True,
        connectivity="fixed",
        recurrent=True,
        delay=3,
        surrogate=sl.Sigmoid(5.0),
        mode="per_step",
        window=(5, 25),
        c_reg=0.05,
        feedback="random",
    ),
    Case(
        "alif-zero-explicit-train",
        kind="ALIF",
        reset="zero",
        refractory=1.0,
        connectivity="explicit",
        recurrent=True,
        train_tau=True,
        scale_input=True,
        surrogate=sl.Atan(2.0),
        mode="mean",
        c_reg=0.01,
    ),
    Case(
        "lif-chain-train-last",
        chain=True,
        het=True,
        train_tau=True,
        delay=2,
        surrogate=sl.SuperSpike(5.0),
        mode="last",
        detach_reset=False,
        seed=3,
    ),
    Case(
        "lif-sparse-inputs-chain",
        chain=True,
        two_inputs=True,
        recurrent=True,
        density=0.03,
        counts=True,
        T=40,
        B=4,
        dt=0.5,
        refractory=1.5,
        surrogate=sl.Triangle(0.3),
        c_reg=0.02,
        seed=5,
    ),
    Case(
        "alif-delta-het-readout",
        kind="ALIF",
        tau_syn=0.0,
        het=True,
        delay=2,
        scale_input=True,
        surrogate=sl.Atan(4.0),
        mode="per_step",
        feedback="random",
        seed=7,
    ),
    Case(
        "lif-zero-fixed-sigmoid-max",
        reset="zero",
        connectivity="fixed",
        recurrent=True,
        two_inputs=True,
        surrogate=sl.Sigmoid(25.0),
        mode="max",
        c_reg=0.03,
        seed=11,
    ),
]


#: cases for e-prop evaluated in chunks: the corpus's e-prop cases and more setups that e-prop accepts
CHUNKED_CASES = [c for c in CASES if c.eprop_ok] + [
    Case("alif-exp-delay2", kind="ALIF", delay=2, recurrent=True, surrogate=sl.Triangle(0.3), T=37),
    # the benchmark's setup: exponential synapses into ALIF, a delta-synapse readout (backward_alif)
    Case("alif-exp-delta-readout", kind="ALIF", delta_readout=True, recurrent=True, c_reg=0.05, T=36),
    Case("alif-delta-delay3-reg", kind="ALIF", tau_syn=0.0, delay=3, c_reg=0.1, T=29, refractory=2.0),
    Case("lif-het-exp-random", het=True, recurrent=True, delay=2, feedback="random", c_reg=0.05, T=33),
    Case("alif-het-delta", kind="ALIF", het=True, tau_syn=0.0, recurrent=True, T=31, window=(4, 27)),
    Case("lif-delta-scale-input", tau_syn=0.0, scale_input=True, recurrent=True, delay=2, T=26),
    Case("alif-exp-scale-input-chain", kind="ALIF", scale_input=True, chain=True, recurrent=True, T=35),
    Case("lif-two-inputs-explicit", two_inputs=True, connectivity="explicit", delay=3, T=23, B=5),
    Case("lif-zero-exp", reset="zero", recurrent=True, delay=2, T=34),
    Case("alif-zero-delta-refractory", kind="ALIF", reset="zero", tau_syn=0.0, refractory=2.0, c_reg=0.05, T=30),
    Case("alif-zero-het-random", kind="ALIF", reset="zero", het=True, recurrent=True, feedback="random", T=27),
    Case("lif-zero-scale-input-chain", reset="zero", scale_input=True, chain=True, delay=3, T=25),
]
