"""The case corpus: small networks and inputs, generated from seeds, that together exercise every
model, synapse kind, reset, refractoriness, delay, connectivity kind, heterogeneity, readout mode
and surrogate.

The cases are built to be sensitive: neurons fire often but not always, membranes spend time in
the middle of their range, ALIF adaptation is strong enough to move the threshold, refractory
periods block spikes that would otherwise happen, delays are 1 to 3 steps on every kind of
connection (feed-forward, recurrent, into the readout), thresholds are not 1 (so that a missing
``v_thresh`` factor shows), and inputs for learning cases come with labels.

Inputs are *conditioned*: each candidate input is simulated by the float64 reference, and an input
is taken only if no membrane passes within ``CONDITION_MARGIN * v_thresh`` of its threshold (exact
ties, which every dtype computes exactly, are allowed) and the predictions are not near-ties, so
that a correct float32 backend fires exactly where the reference does and the checks may demand it.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import attrs
import numpy as np

import spikeloom as sl

__all__ = ["Case", "corpus", "get_case", "random_case", "CONDITION_MARGIN"]

#: how far (relative to v_thresh) every reference membrane must stay from its threshold
CONDITION_MARGIN = 5e-5
#: how far apart the top two prediction scores must be
PREDICTION_GAP = 1e-4
_ATTEMPTS = 60


def _kernel(tau_mem: float, tau_syn: float, dt: float = 1.0, scale_input: bool = False) -> tuple[float, float]:
    """Sum and sum of squares of the membrane's response to one input spike (SPEC §3)."""
    am = np.exp(-dt / tau_mem)
    asyn = np.exp(-dt / tau_syn) if tau_syn else 0.0
    g = 1.0 - am if scale_input else 1.0
    current = volt = 0.0
    total = squares = 0.0
    for t in range(int(20 * max(tau_mem, tau_syn or 1.0) / dt) + 10):
        current = asyn * current + (1.0 if t == 0 else 0.0)
        volt = am * volt + g * current
        total += volt
        squares += volt * volt
    return total, squares


def drive(
    n_pre: int,
    rate: float,
    *,
    v_thresh: float,
    tau_mem: float,
    tau_syn: float = 0.0,
    dt: float = 1.0,
    scale_input: bool = False,
    mean: float = 1.1,
    spread: float = 0.6,
    std: float = 0.2,
) -> sl.Normal:
    """Weights from ``n_pre`` sources firing with probability ``rate`` per step.

    With ``mean > 0`` the target's free membrane sits at ``mean * v_thresh`` on average and the
    weights vary by ``spread`` of their mean (so every neuron is driven, and fires often); with
    ``mean == 0`` (recurrent weights) they are centred and move the membrane by about
    ``std * v_thresh``.
    """
    total, squares = _kernel(tau_mem, tau_syn, dt, scale_input)
    if mean > 0:
        mu = 3.0 * mean * v_thresh / (n_pre * rate * total)
        return sl.Normal(float(mu), float(spread * mu))
    return sl.Normal(0.0, float(std * v_thresh / np.sqrt(n_pre * rate * squares)))


def readout_w(n_pre: int, rate: float, *, tau_mem: float, tau_syn: float = 0.0, dt: float = 1.0, scale_input=False):
    """Readout weights giving logits of order 1."""
    _, squares = _kernel(tau_mem, tau_syn, dt, scale_input)
    return sl.Normal(0.0, float(0.7 / np.sqrt(n_pre * rate * squares)))


@attrs.frozen(slots=False, eq=False)
class Case:
    """One network with its inputs (and, for learning cases, labels, a rule and a readout).

    ``make`` builds the :class:`spikeloom.Network`; ``T``/``batch`` the input shape; ``rate`` the
    spike probability per input channel and step (a dict per input, or one number); ``counts`` the
    largest spike count per bin (1: binary spikes); ``tags`` select the checks that use the case
    (``forward``, ``bptt``, ``eprop``, ``feedforward``, ``api``...).
    """

    name: str
    description: str
    make: Callable[[], sl.Network] = attrs.field(repr=False)
    T: int = 30
    batch: int = 3
    rate: float | dict = 0.3
    counts: int = 1
    seed: int = 0
    rule: object = None
    readout: object = None
    tags: frozenset = attrs.field(default=frozenset(), converter=frozenset)

    @functools.cached_property
    def network(self) -> sl.Network:
        return self.make()

    @property
    def learning(self) -> bool:
        return self.rule is not None

    def _draw(self, k: int, attempt: int):
        built = self.network.built
        key = zlib.crc32(self.name.encode())
        rng = np.random.default_rng([self.seed, key, k, attempt])
        x = {}
        for p in built.inputs:
            rate = self.rate[p.name] if isinstance(self.rate, dict) else self.rate
            if self.counts > 1:
                x[p.name] = rng.binomial(self.counts, rate / self.counts, size=(self.T, self.batch, p.n)).astype(
                    np.int64
                )
            else:
                x[p.name] = rng.random((self.T, self.batch, p.n)) < rate
        labels = None
        if self.readout is not None:
            n_out = built.populations[self.readout.population].n
            labels = rng.integers(0, n_out, size=self.batch)
        return (x if len(x) > 1 else next(iter(x.values()))), labels

    def data(self, k: int = 0):
        """``(x, labels)`` for input number ``k`` (k = 0 is the case's main input; the training
        check uses 1 and 2 as further batches); labels are None without a readout."""
        return self._conditioned(k)[0]

    def reference(self, k: int = 0):
        """The float64 reference run (:class:`~spikeloom_conformance.reference.RefRun`) of input ``k``."""
        return self._conditioned(k)[1]

    @functools.cache  # noqa: B019  (cases live as long as the corpus)
    def _conditioned(self, k: int):
        from .reference import run_reference

        why = ""
        for attempt in range(_ATTEMPTS):
            x, labels = self._draw(k, attempt)
            run = run_reference(self.network, x)
            why = conditioning_problem(self, run, labels)
            if not why:
                # shared by every check and backend in the process: a backend writing into what it
                # is given must fail, not corrupt the corpus for the next one
                return _freeze((x, labels)), _freeze(run)
        raise RuntimeError(f"case {self.name!r}: no well-conditioned input in {_ATTEMPTS} draws (last: {why})")


def _freeze(obj):
    """Make every array inside ``obj`` (tuples, dicts, lists, a RefRun) read-only; returns ``obj``."""
    if isinstance(obj, np.ndarray):
        obj.setflags(write=False)
    elif isinstance(obj, dict):
        for v in obj.values():
            _freeze(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _freeze(v)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _freeze(getattr(obj, name))
    return obj


def conditioning_problem(case: Case, run, labels) -> str:
    """Why the reference run is too close to a tie for float32 comparisons ("" if it is not)."""
    built = case.network.built
    for name, theta in run.theta.items():
        d = np.abs(run.recs[name]["V"] - theta) / built.populations[name].params["v_thresh"]
        d = d[~run.refractory[name] & (d != 0)]
        if d.size and d.min() < CONDITION_MARGIN:
            return f"population {name!r} passes within {d.min():.2g} v_thresh of its threshold"
    if case.readout is None or labels is None:
        return ""
    Y = run.recs[case.readout.population]["V"]
    T = Y.shape[0]
    steps = np.arange(T)[case.readout.steps(T)]
    Yw = Y[steps]
    mode = case.readout.mode
    if mode == "per_step":
        e = np.exp(Yw - Yw.max(axis=-1, keepdims=True))
        score = (e / e.sum(axis=-1, keepdims=True)).sum(axis=0)
    elif mode == "max":
        s = np.sort(Yw, axis=0)
        gap = s[-1] - s[-2] if len(steps) > 1 else np.ones_like(s[-1])
        gap = gap[gap != 0]  # exact ties (zeros before the first input arrives) are exact in every dtype
        if gap.size and gap.min() < PREDICTION_GAP * max(1.0, np.abs(Yw).max()):
            return "two steps nearly tie for the maximum of Y"
        score = s[-1]
    elif mode == "mean":
        score = Yw.mean(axis=0)
    else:
        score = Y[-1]
    top = np.sort(score, axis=-1)
    if score.shape[-1] > 1 and np.min(top[:, -1] - top[:, -2]) < PREDICTION_GAP:
        return "two classes nearly tie for the prediction"
    return ""


# -- the corpus ---------------------------------------------------------------------------------


def _basic_lif() -> sl.Network:
    h = {"v_thresh": 0.8, "tau_mem": 10.0}
    return sl.Network(
        [sl.SpikeInput("inp", 10), sl.LIF("h", 12, **h), sl.LI("out", 3, tau_mem=8.0)],
        [
            sl.Connection("inp", "h", weight=drive(10, 0.3, **h)),
            sl.Connection("h", "h", weight=drive(12, 0.2, **h, mean=0.0, std=0.4), delay=2),
            sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=8.0), delay=2),
        ],
        seed=10,
    )


def _forward_cases() -> list[Case]:
    cases = []

    cases.append(
        Case(
            "basic_lif",
            "the smallest feature set: LIF and LI, delta synapses, subtractive reset, dense, homogeneous, delays <= 2",
            _basic_lif,
            tags={"api"},
        )
    )

    def lif_delta_subtract():
        return sl.Network(
            [sl.SpikeInput("inp", 10), sl.LIF("h", 12, tau_mem=10.0, v_thresh=0.8), sl.LI("out", 4, tau_mem=8.0)],
            [
                sl.Connection("inp", "h", weight=drive(10, 0.3, v_thresh=0.8, tau_mem=10.0), delay=2),
                sl.Connection("h", "h", weight=drive(12, 0.2, v_thresh=0.8, tau_mem=10.0, mean=0.0, std=0.4)),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=8.0), delay=3),
                sl.Connection("inp", "out", weight=readout_w(10, 0.3, tau_mem=8.0)),
            ],
            seed=11,
        )

    cases.append(Case("lif_delta_subtract", "LIF, delta synapse, subtractive reset, delays 1-3", lif_delta_subtract))

    def lif_exp_zero_refractory():
        return sl.Network(
            [
                sl.SpikeInput("inp", 10),
                sl.LIF("h", 12, tau_mem=15.0, tau_syn=5.0, v_thresh=0.7, reset="zero", refractory=3.0),
                sl.LI("out", 4, tau_mem=10.0, tau_syn=4.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(10, 0.3, v_thresh=0.7, tau_mem=15.0, tau_syn=5.0, mean=2.5)),
                sl.Connection(
                    "h", "h", weight=drive(12, 0.2, v_thresh=0.7, tau_mem=15.0, tau_syn=5.0, mean=0.0, std=0.3), delay=2
                ),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=10.0, tau_syn=4.0)),
            ],
            seed=12,
        )

    cases.append(
        Case(
            "lif_exp_zero_refractory",
            "LIF, exponential synapse, zero reset, 3-step refractory period",
            lif_exp_zero_refractory,
        )
    )

    def alif_adaptation():
        return sl.Network(
            [
                sl.SpikeInput("inp", 10),
                sl.ALIF(
                    "h",
                    12,
                    tau_mem=12.0,
                    tau_syn=3.0,
                    v_thresh=sl.Uniform(0.4, 0.8),
                    beta=0.15,
                    tau_adapt=30.0,
                    refractory=2.0,
                ),
                sl.LI("out", 4, tau_mem=6.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(10, 0.3, v_thresh=0.6, tau_mem=12.0, tau_syn=3.0, mean=2.0)),
                sl.Connection(
                    "h", "h", weight=drive(12, 0.2, v_thresh=0.6, tau_mem=12.0, tau_syn=3.0, mean=0.0, std=0.3), delay=3
                ),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=6.0), delay=2),
            ],
            seed=13,
        )

    cases.append(
        Case("alif_adaptation", "ALIF with strong adaptation, per-neuron thresholds, refractoriness", alif_adaptation)
    )

    def alif_zero_scale_input():
        return sl.Network(
            [
                sl.SpikeInput("inp", 10),
                sl.ALIF(
                    "h",
                    12,
                    tau_mem=8.0,
                    tau_syn=2.0,
                    v_thresh=0.6,
                    reset="zero",
                    scale_input=True,
                    beta=0.1,
                    tau_adapt=50.0,
                    refractory=1.0,
                ),
                sl.LI("out", 3, tau_mem=5.0, scale_input=True, bias=0.2),
            ],
            [
                sl.Connection(
                    "inp",
                    "h",
                    weight=drive(10, 0.3, v_thresh=0.6, tau_mem=8.0, tau_syn=2.0, scale_input=True, mean=0.9),
                    delay=2,
                ),
                sl.Connection(
                    "h",
                    "h",
                    weight=drive(12, 0.2, v_thresh=0.6, tau_mem=8.0, tau_syn=2.0, scale_input=True, mean=0.0, std=0.3),
                ),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=5.0, scale_input=True)),
            ],
            seed=14,
        )

    cases.append(
        Case(
            "alif_zero_scale_input",
            "ALIF, zero reset, scale_input on hidden and readout, readout bias",
            alif_zero_scale_input,
        )
    )

    def heterogeneous():
        return sl.Network(
            [
                sl.SpikeInput("inp", 10),
                sl.LIF(
                    "h",
                    12,
                    tau_mem=sl.Gamma(15.0),
                    tau_syn=sl.Gamma(5.0),
                    v_thresh=sl.Uniform(0.5, 1.0),
                    refractory=sl.Uniform(0.0, 4.5),
                ),
                sl.LI("out", 4, tau_mem=sl.Gamma(10.0), tau_syn=sl.Gamma(5.0), bias=sl.Normal(0.0, 0.1)),
            ],
            [
                sl.Connection("inp", "h", weight=drive(10, 0.3, v_thresh=0.75, tau_mem=15.0, tau_syn=5.0, mean=2.0)),
                sl.Connection(
                    "h",
                    "h",
                    weight=drive(12, 0.2, v_thresh=0.75, tau_mem=15.0, tau_syn=5.0, mean=0.0, std=0.3),
                    delay=2,
                ),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=10.0, tau_syn=5.0), delay=2),
            ],
            seed=15,
        )

    cases.append(
        Case(
            "heterogeneous",
            "per-neuron time constants, thresholds, refractory periods and readout bias (Gamma/Uniform/Normal)",
            heterogeneous,
            tags={"api"},
        )
    )

    def sparse_multi():
        pre = np.array([0, 1, 2, 3, 4, 0, 2, 4, 1, 3])
        post = np.array([0, 2, 4, 6, 8, 9, 1, 3, 5, 7])
        fb_pre = np.array([0, 1, 2, 3, 4, 5, 6, 7])
        fb_post = np.array([9, 0, 8, 1, 7, 2, 6, 3])
        h1 = {"v_thresh": 0.6, "tau_mem": 10.0, "tau_syn": 3.0}
        h2 = {"v_thresh": 0.5, "tau_mem": 15.0}
        return sl.Network(
            [
                sl.SpikeInput("a", 8),
                sl.SpikeInput("b", 5),
                sl.LIF("h1", 10, **h1),
                sl.ALIF("h2", 8, **h2, beta=0.1, tau_adapt=20.0, reset="zero"),
                sl.LI("out", 3, tau_mem=8.0, tau_syn=2.0),
            ],
            [
                sl.Connection("a", "h1", weight=drive(3, 0.3, **h1, mean=0.4), connectivity=sl.FixedProbability(0.4)),
                sl.Connection("a", "h1", weight=drive(8, 0.3, **h1, mean=0.2), delay=3, name="a_to_h1_slow"),
                sl.Connection(
                    "b", "h1", weight=drive(1, 0.25, **h1, mean=0.3), connectivity=sl.Explicit(pre, post), delay=2
                ),
                sl.Connection(
                    "h1", "h2", weight=drive(5, 0.2, **h2, mean=0.9), connectivity=sl.FixedProbability(0.5), delay=2
                ),
                sl.Connection(
                    "h2",
                    "h1",
                    weight=drive(1, 0.2, **h1, mean=0.0, std=0.3),
                    connectivity=sl.Explicit(fb_pre, fb_post),
                    delay=3,
                ),
                sl.Connection(
                    "h1",
                    "out",
                    weight=readout_w(6, 0.2, tau_mem=8.0, tau_syn=2.0),
                    connectivity=sl.FixedProbability(0.6),
                ),
                sl.Connection("h2", "out", weight=readout_w(8, 0.2, tau_mem=8.0, tau_syn=2.0), delay=2),
            ],
            seed=16,
        )

    cases.append(
        Case(
            "sparse_multi",
            "two inputs, two hidden populations (LIF -> ALIF chain with feedback), fixed-probability and explicit "
            "connectivity, parallel connections with different delays",
            sparse_multi,
            rate={"a": 0.3, "b": 0.25},
            tags={"api"},
        )
    )

    def threshold_ties():
        w = np.zeros((6, 6))
        w[np.arange(6), np.arange(6)] = 0.5  # one input spike lifts a resting neuron exactly to threshold
        return sl.Network(
            [
                sl.SpikeInput("inp", 6),
                sl.LIF("h", 6, tau_mem=5.0, v_thresh=0.5),
                sl.LIF("g", 6, tau_mem=5.0, v_thresh=0.5, reset="zero"),
                sl.LI("out", 2),
            ],
            [
                sl.Connection("inp", "h", weight=np.full(6, 0.5), connectivity=sl.Explicit(np.arange(6), np.arange(6))),
                sl.Connection("h", "g", weight=w),
                sl.Connection("g", "out", weight=0.25),
            ],
            seed=17,
        )

    cases.append(
        Case(
            "threshold_ties",
            "membranes landing exactly on the threshold (V == theta must spike), both resets",
            threshold_ties,
            rate=0.15,
        )
    )

    def fine_dt():
        h = {"v_thresh": 0.5, "tau_mem": 6.0, "tau_syn": 2.5, "dt": 0.5}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.ALIF("h", 10, tau_mem=6.0, tau_syn=2.5, v_thresh=0.5, beta=0.1, tau_adapt=10.0, refractory=1.5),
                sl.LI("out", 3, tau_mem=4.0, tau_syn=1.5),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=2.0)),
                sl.Connection("h", "h", weight=drive(10, 0.2, **h, mean=0.0, std=0.3), delay=2),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=4.0, tau_syn=1.5, dt=0.5)),
            ],
            dt=0.5,
            seed=18,
        )

    cases.append(Case("fine_dt", "dt = 0.5 ms: decay factors and refractory steps from ms", fine_dt, T=40))

    def input_counts():
        return sl.Network(
            [sl.SpikeInput("inp", 8), sl.LIF("h", 10, tau_mem=10.0, v_thresh=0.9), sl.LI("out", 3)],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.6, v_thresh=0.9, tau_mem=10.0, mean=0.8), delay=3),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=20.0)),
            ],
            seed=19,
        )

    cases.append(
        Case("input_counts", "integer spike counts up to 3 per bin as input", input_counts, rate=0.5, counts=3)
    )

    def self_synapses():
        h = {"v_thresh": 0.7, "tau_mem": 10.0, "tau_syn": 2.0}
        return sl.Network(
            [sl.SpikeInput("inp", 8), sl.ALIF("h", 10, **h, beta=0.1, tau_adapt=15.0), sl.LI("out", 3)],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=0.9)),
                sl.Connection("h", "h", weight=drive(10, 0.2, **h, mean=0.0, std=0.4), allow_self=True),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=20.0)),
            ],
            seed=20,
        )

    cases.append(Case("self_synapses", "recurrent connection keeping its self-synapses (allow_self)", self_synapses))

    def long_run():
        h = {"v_thresh": 0.6, "tau_mem": 5.0, "tau_syn": 2.0}
        return sl.Network(
            [sl.SpikeInput("inp", 6), sl.LIF("h", 8, **h), sl.LI("out", 2, tau_mem=5.0)],
            [
                sl.Connection("inp", "h", weight=drive(6, 0.2, **h, mean=0.45)),
                sl.Connection("h", "h", weight=drive(8, 0.2, **h, mean=0.0, std=0.3)),
                sl.Connection("h", "out", weight=readout_w(8, 0.2, tau_mem=5.0)),
            ],
            seed=21,
        )

    cases.append(
        Case("long_run", "400 steps: errors that accumulate over long runs", long_run, T=400, batch=2, rate=0.2)
    )
    return [attrs.evolve(c, tags=c.tags | {"forward"}) for c in cases]


def random_case(seed: int) -> Case:
    """A random small network: model, synapse, reset, refractoriness, delays, connectivity,
    heterogeneity, scale_input and recurrence all drawn from ``seed``."""
    rng = np.random.default_rng([seed, 7777])
    kind = str(rng.choice(["LIF", "ALIF"]))
    tau_syn = float(rng.choice([0.0, 2.0, 5.0]))
    reset = str(rng.choice(["subtract", "zero"]))
    refractory = float(rng.choice([0.0, 1.0, 2.0, 3.0]))
    hetero = bool(rng.random() < 0.5)
    scale_input = bool(rng.random() < 0.3)
    recurrent = bool(rng.random() < 0.7)
    conn_kind = str(rng.choice(["dense", "fixed_probability", "explicit"]))
    delays = [int(d) for d in rng.integers(1, 4, size=3)]
    v_thresh = float(rng.uniform(0.5, 1.0))
    tau_mem = float(rng.uniform(5.0, 20.0))
    beta, tau_adapt = float(rng.uniform(0.05, 0.2)), float(rng.uniform(10, 60))
    n_in, n_h, n_out = 8, int(rng.integers(6, 13)), 3
    dens = 1.0 if conn_kind == "dense" else 0.6
    h = {"v_thresh": v_thresh, "tau_mem": tau_mem, "tau_syn": tau_syn, "scale_input": scale_input}

    def connectivity(n_pre, n_post, sub):
        if conn_kind == "dense":
            return sl.Dense()
        if conn_kind == "fixed_probability":
            return sl.FixedProbability(dens)
        m = np.random.default_rng([seed, sub]).random((n_pre, n_post)) < dens
        if sub == 2:
            np.fill_diagonal(m, False)
        m[0, 0] = sub != 2  # never empty
        pre, post = np.nonzero(m)
        return sl.Explicit(pre, post)

    def make():
        extra = {"beta": beta, "tau_adapt": tau_adapt} if kind == "ALIF" else {}
        pop = sl.ALIF if kind == "ALIF" else sl.LIF
        hidden = pop(
            "h",
            n_h,
            tau_mem=sl.Gamma(tau_mem) if hetero else tau_mem,
            tau_syn=(sl.Gamma(tau_syn) if hetero else tau_syn) if tau_syn else 0.0,
            v_thresh=sl.Uniform(0.7 * v_thresh, 1.3 * v_thresh) if hetero else v_thresh,
            reset=reset,
            refractory=refractory,
            scale_input=scale_input,
            **extra,
        )
        conns = [
            sl.Connection(
                "inp",
                "h",
                weight=drive(round(n_in * dens), 0.3, **h, mean=0.9),
                connectivity=connectivity(n_in, n_h, 1),
                delay=delays[0],
            ),
            sl.Connection("h", "out", weight=readout_w(n_h, 0.2, tau_mem=20.0), delay=delays[2]),
        ]
        if recurrent:
            conns.append(
                sl.Connection(
                    "h",
                    "h",
                    weight=drive(round(n_h * dens), 0.2, **h, mean=0.0, std=0.3),
                    connectivity=connectivity(n_h, n_h, 2),
                    delay=delays[1],
                )
            )
        return sl.Network([sl.SpikeInput("inp", n_in), hidden, sl.LI("out", n_out)], conns, seed=seed)

    desc = (
        f"random: {kind}, {'exponential' if tau_syn else 'delta'} synapse, {reset} reset, refractory {refractory:g} ms, "
        f"{conn_kind}, delays {delays}, {'heterogeneous' if hetero else 'homogeneous'}"
        + (", scale_input" if scale_input else "")
        + (", recurrent" if recurrent else "")
    )
    return Case(f"random_{seed}", desc, make, seed=seed, tags={"forward", "random"})


def _learning_cases() -> list[Case]:
    cases = [
        Case(
            "bptt_basic",
            "BPTT, SuperSpike(10), per-step loss, on the smallest feature set (LIF, delta synapses, dense)",
            _basic_lif,
            batch=4,
            rule=sl.BPTT(sl.SuperSpike(10.0)),
            readout=sl.Readout("out", "per_step"),
            tags={"bptt"},
        )
    ]

    def lif_recurrent(**kw):
        h = {"v_thresh": 0.7, "tau_mem": 10.0, "tau_syn": 4.0}

        def make():
            return sl.Network(
                [sl.SpikeInput("inp", 8), sl.LIF("h", 12, **h, **kw), sl.LI("out", 3, tau_mem=8.0)],
                [
                    sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=0.9)),
                    sl.Connection("h", "h", weight=drive(12, 0.2, **h, mean=0.0, std=0.3), delay=2),
                    sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=8.0)),
                ],
                seed=31,
            )

        return make

    cases.append(
        Case(
            "bptt_superspike_per_step",
            "BPTT, SuperSpike(10), per-step loss over a window, recurrent LIF with delay 2",
            lif_recurrent(),
            batch=4,
            rule=sl.BPTT(sl.SuperSpike(10.0)),
            readout=sl.Readout("out", "per_step", window=(5, None)),
            tags={"bptt"},
        )
    )

    def alif_zero():
        h = {"v_thresh": 0.6, "tau_mem": 12.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.ALIF("h", 12, **h, beta=0.12, tau_adapt=25.0, refractory=2.0, reset="zero"),
                sl.LI("out", 3, tau_mem=6.0, tau_syn=3.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=2.0), delay=2),
                sl.Connection("h", "h", weight=drive(12, 0.2, **h, mean=0.0, std=0.3)),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=6.0, tau_syn=3.0), delay=2),
            ],
            seed=32,
        )

    cases.append(
        Case(
            "bptt_triangle_max",
            "BPTT, Triangle(0.3) with v_thresh 0.6, max-over-time loss, ALIF, zero reset, refractory",
            alif_zero,
            batch=4,
            rule=sl.BPTT(sl.Triangle(0.3)),
            readout=sl.Readout("out", "max", window=(3, None)),
            tags={"bptt"},
        )
    )

    def hetero_sparse():
        h = {"v_thresh": 0.7, "tau_mem": 12.0, "tau_syn": 4.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF("h", 12, tau_mem=sl.Gamma(12.0), tau_syn=sl.Gamma(4.0), v_thresh=sl.Uniform(0.5, 0.9)),
                sl.LI("out", 3, tau_mem=sl.Gamma(8.0), tau_syn=2.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(4, 0.3, **h, mean=0.9), connectivity=sl.FixedProbability(0.5)),
                sl.Connection(
                    "h",
                    "h",
                    weight=drive(5, 0.2, **h, mean=0.0, std=0.3),
                    connectivity=sl.FixedProbability(0.4),
                    delay=3,
                ),
                sl.Connection(
                    "h",
                    "out",
                    weight=readout_w(8, 0.2, tau_mem=8.0, tau_syn=2.0),
                    connectivity=sl.FixedProbability(0.7),
                ),
            ],
            seed=33,
        )

    cases.append(
        Case(
            "bptt_sigmoid_mean",
            "BPTT, Sigmoid(10), mean-over-time loss over (2, -2), heterogeneous, sparse",
            hetero_sparse,
            batch=4,
            rule=sl.BPTT(sl.Sigmoid(10.0)),
            readout=sl.Readout("out", "mean", window=(2, -2)),
            tags={"bptt"},
        )
    )

    def scale_input():
        h = {"v_thresh": 0.8, "tau_mem": 8.0, "scale_input": True}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF("h", 12, **h, refractory=1.0),
                sl.LI("out", 3, tau_mem=10.0, scale_input=True),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=1.0), delay=3),
                sl.Connection("h", "h", weight=drive(12, 0.2, **h, mean=0.0, std=0.3), delay=2),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=10.0, scale_input=True), delay=3),
            ],
            seed=34,
        )

    cases.append(
        Case(
            "bptt_atan_last",
            "BPTT, Atan(2), last-step loss, scale_input, delays 2-3",
            scale_input,
            batch=4,
            rule=sl.BPTT(sl.Atan(2.0)),
            readout=sl.Readout("out", "last"),
            tags={"bptt"},
        )
    )

    def two_resets():
        hz = {"v_thresh": 0.6, "tau_mem": 10.0, "tau_syn": 3.0}
        hs = {"v_thresh": 0.7, "tau_mem": 10.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF("hz", 8, **hz, reset="zero"),
                sl.ALIF("hs", 8, **hs, beta=0.1, tau_adapt=20.0),
                sl.LI("out", 3, tau_mem=8.0),
            ],
            [
                sl.Connection("inp", "hz", weight=drive(8, 0.3, **hz, mean=0.9)),
                sl.Connection("inp", "hs", weight=drive(8, 0.3, **hs, mean=0.6)),
                sl.Connection("hz", "hs", weight=drive(8, 0.2, **hs, mean=0.3, std=0.3)),
                sl.Connection("hz", "out", weight=readout_w(8, 0.2, tau_mem=8.0)),
                sl.Connection("hs", "out", weight=readout_w(8, 0.2, tau_mem=8.0), delay=2),
            ],
            seed=35,
        )

    cases.append(
        Case(
            "bptt_no_detach",
            "BPTT with detach_reset=False (the reset's derivative flows), SuperSpike(100), both resets, a chain",
            two_resets,
            batch=4,
            rule=sl.BPTT(sl.SuperSpike(100.0), detach_reset=False),
            readout=sl.Readout("out", "per_step"),
            tags={"bptt"},
        )
    )

    def trainable_tau():
        tau_mem = np.array([2.0, 5.0, 8.0, 12.0, 15.0, 20.0, 30.0, 50.0, 100.0, 400.0])
        h = {"v_thresh": 0.6, "tau_mem": 15.0, "tau_syn": 5.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF(
                    "h",
                    10,
                    tau_mem=tau_mem,
                    tau_syn=sl.Gamma(5.0),
                    v_thresh=0.6,
                    train_tau_mem=True,
                    train_tau_syn=True,
                ),
                sl.LI("out", 3, tau_mem=sl.Gamma(10.0), tau_syn=4.0, train_tau_mem=True, train_tau_syn=True),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=0.9)),
                sl.Connection("h", "h", weight=drive(10, 0.2, **h, mean=0.0, std=0.3), delay=2),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=10.0, tau_syn=4.0)),
            ],
            seed=36,
        )

    cases.append(
        Case(
            "bptt_trainable_tau",
            "BPTT training the decay factors alpha_mem and alpha_syn (some start outside the clip range)",
            trainable_tau,
            batch=4,
            rule=sl.BPTT(sl.SuperSpike(10.0)),
            readout=sl.Readout("out", "max"),
            tags={"bptt", "api"},
        )
    )

    def rate_reg():
        h = {"v_thresh": 0.6, "tau_mem": 8.0, "tau_syn": 2.0, "dt": 0.5}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.ALIF("h", 10, tau_mem=8.0, tau_syn=2.0, v_thresh=0.6, beta=0.1, tau_adapt=15.0, refractory=1.5),
                sl.LI("out", 3, tau_mem=5.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=2.0)),
                sl.Connection("h", "h", weight=drive(10, 0.2, **h, mean=0.0, std=0.3)),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=5.0, dt=0.5)),
            ],
            dt=0.5,
            seed=37,
        )

    cases.append(
        Case(
            "bptt_rate_regularizer",
            "BPTT with the activity regulariser (c_reg, rates in Hz with dt = 0.5 ms), Sigmoid(25)",
            rate_reg,
            T=40,
            batch=4,
            rule=sl.BPTT(sl.Sigmoid(25.0)),
            readout=sl.Readout("out", "per_step", window=(10, None), c_reg=2e-6, target_rate=20.0),
            tags={"bptt", "nonseparable"},
        )
    )

    # -- e-prop ---------------------------------------------------------------------------------
    def ff_lif():
        h = {"v_thresh": 0.6, "tau_mem": 20.0}
        return sl.Network(
            [sl.SpikeInput("inp", 8), sl.LIF("h", 12, **h), sl.LI("out", 3, tau_mem=10.0)],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=0.9), delay=2),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=10.0), delay=3),
                sl.Connection("inp", "out", weight=readout_w(8, 0.3, tau_mem=10.0)),
            ],
            seed=41,
        )

    cases.append(
        Case(
            "eprop_lif_ff",
            "e-prop, feed-forward LIF (delta synapse, subtractive reset), delays 2 and 3, input -> readout too",
            ff_lif,
            batch=4,
            rule=sl.EProp(),
            readout=sl.Readout("out", "per_step", window=(4, None)),
            tags={"eprop", "feedforward"},
        )
    )

    def ff_alif_zero():
        h = {"v_thresh": 0.6, "tau_mem": 20.0, "tau_syn": 4.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.ALIF("h", 12, **h, beta=0.12, tau_adapt=25.0, reset="zero", refractory=2.0),
                sl.LI("out", 3, tau_mem=8.0, tau_syn=3.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=2.5)),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=8.0, tau_syn=3.0), delay=2),
            ],
            seed=42,
        )

    cases.append(
        Case(
            "eprop_alif_ff_zero",
            "e-prop, feed-forward ALIF (exponential synapse, zero reset, refractory); readout with its own "
            "synapse and membrane time constants",
            ff_alif_zero,
            batch=4,
            rule=sl.EProp(),
            readout=sl.Readout("out", "per_step"),
            tags={"eprop", "feedforward"},
        )
    )

    def ff_hetero():
        h = {"v_thresh": 0.7, "tau_mem": 15.0, "tau_syn": 4.0, "scale_input": True}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF(
                    "h",
                    10,
                    tau_mem=sl.Gamma(15.0),
                    tau_syn=sl.Gamma(4.0),
                    v_thresh=0.7,
                    scale_input=True,
                    refractory=1.0,
                ),
                sl.LI("out", 3, tau_mem=sl.Gamma(8.0), tau_syn=sl.Gamma(3.0)),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=1.0), delay=3),
                sl.Connection("h", "out", weight=readout_w(10, 0.2, tau_mem=8.0, tau_syn=3.0)),
            ],
            seed=43,
        )

    cases.append(
        Case(
            "eprop_hetero_ff",
            "e-prop with SuperSpike(10), per-neuron time constants in hidden and readout (per-synapse traces), "
            "scale_input",
            ff_hetero,
            batch=4,
            rule=sl.EProp(surrogate=sl.SuperSpike(10.0)),
            readout=sl.Readout("out", "per_step", window=(3, None)),
            tags={"eprop", "feedforward"},
        )
    )

    def recurrent_alif():
        h = {"v_thresh": 0.6, "tau_mem": 15.0, "tau_syn": 3.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.ALIF("h", 12, **h, beta=0.12, tau_adapt=30.0, refractory=2.0),
                sl.LI("out", 3, tau_mem=8.0),
            ],
            [
                sl.Connection("inp", "h", weight=drive(8, 0.3, **h, mean=2.0)),
                sl.Connection("h", "h", weight=drive(12, 0.2, **h, mean=0.0, std=0.3), delay=1),
                sl.Connection("h", "out", weight=readout_w(12, 0.2, tau_mem=8.0)),
            ],
            seed=44,
        )

    cases.append(
        Case(
            "eprop_recurrent",
            "e-prop, recurrent ALIF, symmetric feedback (an approximation of BPTT: compared with the reference)",
            recurrent_alif,
            batch=4,
            rule=sl.EProp(),
            readout=sl.Readout("out", "per_step", window=(5, None)),
            tags={"eprop"},
        )
    )

    cases.append(
        Case(
            "eprop_random_feedback_reg",
            "e-prop with random feedback, Sigmoid(10) and the online rate regulariser, zero reset",
            lif_recurrent(reset="zero"),
            batch=4,
            rule=sl.EProp(surrogate=sl.Sigmoid(10.0), feedback="random", c_reg=0.5, target_rate=30.0),
            readout=sl.Readout("out", "per_step"),
            tags={"eprop"},
        )
    )

    def two_populations():
        h1 = {"v_thresh": 0.6, "tau_mem": 10.0, "tau_syn": 3.0}
        h2 = {"v_thresh": 0.6, "tau_mem": 15.0}
        return sl.Network(
            [
                sl.SpikeInput("inp", 8),
                sl.LIF("h1", 8, **h1),
                sl.ALIF("h2", 8, **h2, beta=0.1, tau_adapt=20.0, refractory=1.0),
                sl.LI("out", 3, tau_mem=6.0),
            ],
            [
                sl.Connection("inp", "h1", weight=drive(8, 0.3, **h1, mean=0.9)),
                sl.Connection("inp", "h2", weight=drive(8, 0.3, **h2, mean=0.6), delay=2),
                sl.Connection("h1", "h2", weight=drive(8, 0.2, **h2, mean=0.3, std=0.3)),
                sl.Connection(
                    "h1", "out", weight=readout_w(6, 0.2, tau_mem=6.0), connectivity=sl.FixedProbability(0.7)
                ),
                sl.Connection("h2", "out", weight=readout_w(8, 0.2, tau_mem=6.0), delay=2),
                sl.Connection("h2", "out", weight=readout_w(8, 0.2, tau_mem=6.0), delay=3, name="h2_to_out_slow"),
            ],
            seed=45,
        )

    cases.append(
        Case(
            "eprop_two_populations",
            "e-prop, Atan(2), two trained populations (LIF -> ALIF), sparse and parallel readout connections",
            two_populations,
            batch=4,
            rule=sl.EProp(surrogate=sl.Atan(2.0)),
            readout=sl.Readout("out", "per_step", window=(3, None)),
            tags={"eprop"},
        )
    )
    return [attrs.evolve(c, tags=c.tags | {"learning"}) for c in cases]


N_RANDOM = 4


@functools.cache
def corpus() -> tuple[Case, ...]:
    """Every case of the kit, in a fixed order (names unique)."""
    cases = _forward_cases() + [random_case(s) for s in range(N_RANDOM)] + _learning_cases()
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return tuple(cases)


def get_case(name: str) -> Case:
    for c in corpus():
        if c.name == name:
            return c
    raise ValueError(f"unknown case {name!r}; cases are {[c.name for c in corpus()]}")
