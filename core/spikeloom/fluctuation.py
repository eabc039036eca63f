"""Fluctuation-driven, data-dependent weight initialisation (Rossbroich, Gygax & Zenke 2022; SPEC §7).

Weights onto a spiking population are drawn so that each neuron's *free* membrane potential (no
threshold, no reset) driven by Poisson-like input is Gaussian with mean ``mu_u`` and standard
deviation ``sigma_u = (theta - mu_u) / xi``: the threshold sits ``xi`` standard deviations above
the mean, and neurons fire from fluctuations rather than from a mean drive.  With ``N`` presynaptic
neurons firing at ``nu`` (per ms) and the post-synaptic potential kernel ``eps`` of the target's own
update (SPEC §3), Campbell's theorem gives ``E[U] = N nu mu_w eps_bar`` and
``Var[U] = N nu (sigma_w^2 + mu_w^2) eps_hat`` with ``eps_bar = dt sum eps`` and
``eps_hat = dt sum eps^2`` (ms), hence::

    mu_w      = mu_u / (N nu eps_bar)
    sigma_w^2 = sigma_u^2 / (N nu eps_hat) - mu_w^2

Rates are *measured*: the input rate from a data sample, each deeper population's rate by
simulating the sample after the populations before it were initialised.  See
docs/initialisation.md for the multi-afferent split, heterogeneous neurons and readouts::

    new_net, report = fluctuation_init(net, x_sample)          # x_sample: [T, B, N_in] spikes
    print(report.summary())
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from types import MappingProxyType

import attrs
import numpy as np

from .distributions import rng_for

__all__ = [
    "FluctuationConfig",
    "FluctuationReport",
    "PopulationInit",
    "AfferentInit",
    "fluctuation_init",
    "psp_kernel",
    "psp_integrals",
    "weight_moments",
    "KERNEL_TAUS",
]

#: the PSP kernel is followed for this many multiples of the neuron's longest time constant (SPEC §7)
KERNEL_TAUS = 10.0


# -- configuration ------------------------------------------------------------------------------
def _real(name: str):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"FluctuationConfig.{name} must be a number, got {value!r:.80}")
        return float(value)

    return convert


def _check_xi(instance, attribute, value):
    if not (math.isfinite(value) and 1.0 < value < 3.0):
        raise ValueError(
            "FluctuationConfig.xi (the threshold's distance above mu_u in standard deviations of the free "
            f"membrane potential) must lie strictly between 1 and 3, got {value!r}"
        )


def _check_finite(instance, attribute, value):
    if not math.isfinite(value):
        raise ValueError(f"FluctuationConfig.{attribute.name} must be finite, got {value!r}")


def _check_alpha(instance, attribute, value):
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(
            "FluctuationConfig.alpha (the share of the variance given to feed-forward afferents) "
            f"must lie in [0, 1], got {value!r}"
        )


def _optional_positive(instance, attribute, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"FluctuationConfig.{attribute.name} must be None or a finite number > 0, got {value!r}")


def _sample_size(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"FluctuationConfig.sample_size must be an integer >= 1, got {value!r}")


@attrs.frozen
class FluctuationConfig:
    """Targets of the fluctuation-driven initialisation.

    ``xi``: the threshold's distance above the mean free membrane potential, in standard
    deviations (``1 < xi < 3``; default 1.5, see docs/initialisation.md).  ``mu_u``: target mean of the free membrane potential
    in the units of ``v_thresh`` (default 0: the centred, balanced regime); it must lie below every
    initialised population's threshold.  ``alpha``: share of the membrane variance given to
    feed-forward afferents when a population also has recurrent ones (default 0.9; the rest goes
    to the recurrent ones).  ``sample_size``: examples taken from a data set to measure rates
    (default 256).  ``readout_sigma_u``: ``None`` keeps the readouts' (LI) own weights; a number
    initialises connections onto readouts too, centred (``mu_u = 0``) with that standard deviation
    of the readout's membrane.  ``recurrent_rate_hz``: the rate (Hz) assumed for afferents whose
    rate is not yet measured when their target is initialised (self-connections, feedback from
    later populations), and used as is; ``None`` assumes the fan-in-weighted mean rate of the
    target's measured afferents, and a population with self-connections is then drawn twice: once
    with that assumption, once more with its own rate measured after the first draw.
    """

    xi: float = attrs.field(default=1.5, converter=_real("xi"), validator=_check_xi)
    mu_u: float = attrs.field(default=0.0, converter=_real("mu_u"), validator=_check_finite)
    alpha: float = attrs.field(default=0.9, converter=_real("alpha"), validator=_check_alpha)
    sample_size: int = attrs.field(default=256, validator=_sample_size)
    readout_sigma_u: float | None = attrs.field(default=None, validator=_optional_positive)
    recurrent_rate_hz: float | None = attrs.field(default=None, validator=_optional_positive)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "sample_size", int(self.sample_size))
        for name in ("readout_sigma_u", "recurrent_rate_hz"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict:
        return attrs.asdict(self)


# -- the PSP kernel -----------------------------------------------------------------------------
def psp_kernel(alpha_mem, alpha_syn, gain, n_steps: int) -> np.ndarray:
    """Free membrane response ``eps[t]`` ``[n_steps, n]`` to one unit input ``h[0] = 1`` at step 0.

    Follows SPEC §3 without threshold: ``I[t] = alpha_syn I[t-1] + h[t]``,
    ``V[t] = alpha_mem V[t-1] + gain I[t]``; ``alpha_syn = 0`` is a delta synapse.  Each argument
    is a scalar or an array ``[n]``.
    """
    a_m, a_s, g = np.broadcast_arrays(
        np.atleast_1d(np.asarray(alpha_mem, dtype=np.float64)),
        np.atleast_1d(np.asarray(alpha_syn, dtype=np.float64)),
        np.atleast_1d(np.asarray(gain, dtype=np.float64)),
    )
    out = np.empty((int(n_steps), a_m.size))
    current = np.ones(a_m.size)
    v = np.zeros(a_m.size)
    for t in range(int(n_steps)):
        if t > 0:
            current = a_s * current
        v = a_m * v + g * current
        out[t] = v
    return out


def psp_integrals(population, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(eps_bar, eps_hat)``, each ``[n]`` in ms, of one built population (:class:`BuiltPopulation`).

    ``eps_bar = dt * sum_t eps[t]`` and ``eps_hat = dt * sum_t eps[t]^2`` over the kernel of the
    population's own update (its ``alpha_mem``, ``alpha_syn``, ``scale_input``), followed for
    ``ceil(10 * max(tau_mem, tau_syn) / dt)`` steps, per neuron: heterogeneous neurons get their own.
    """
    tau_mem = np.asarray(population.params["tau_mem"], dtype=np.float64)
    tau_syn = np.zeros_like(tau_mem) if population.synapse == "delta" else np.asarray(population.params["tau_syn"])
    steps = np.maximum(np.ceil(KERNEL_TAUS * np.maximum(tau_mem, tau_syn) / dt - 1e-9).astype(np.int64), 1)
    gain = (1.0 - population.alpha_mem) if population.scale_input else np.ones(population.n)
    kernel = psp_kernel(population.alpha_mem, population.alpha_syn, gain, int(steps.max()))
    kernel[np.arange(kernel.shape[0])[:, None] >= steps[None, :]] = 0.0
    return dt * kernel.sum(axis=0), dt * (kernel**2).sum(axis=0)


# -- the weight statistics ----------------------------------------------------------------------
def variance_shares(recurrent, alpha: float) -> np.ndarray:
    """Share of the membrane variance of each afferent ``[C]``: ``alpha`` split equally over the
    feed-forward ones and ``1 - alpha`` over the recurrent ones; a group that is alone gets all."""
    rec = np.asarray(recurrent, dtype=bool)
    n_rec, n_ff = int(rec.sum()), int((~rec).sum())
    if n_rec == 0:
        return np.full(rec.size, 1.0 / n_ff)
    if n_ff == 0:
        return np.full(rec.size, 1.0 / n_rec)
    return np.where(rec, (1.0 - alpha) / n_rec, alpha / n_ff)


def weight_moments(n_pre, rates, shares, eps_bar, eps_hat, mu_u, sigma_u) -> tuple[np.ndarray, np.ndarray]:
    """``(mu_w [n], sigma_w^2 [C, n])`` for ``C`` afferents onto ``n`` neurons.

    ``n_pre`` ``[C, n]``: synapses from each afferent onto each neuron; ``rates`` ``[C]`` in 1/ms
    (kHz); ``shares`` ``[C]`` (sum 1); ``eps_bar``, ``eps_hat`` ``[n]`` in ms; ``mu_u`` and
    ``sigma_u`` scalars or ``[n]``.  One ``mu_w`` is shared by every synapse onto a neuron (all
    ``N_total`` presynaptic neurons), ``mu_w = mu_u / (eps_bar sum_c N_c nu_c)``, and afferent ``c``
    carries ``share_c`` of the variance:
    ``sigma_c^2 = share_c sigma_u^2 / (N_c nu_c eps_hat) - mu_w^2``.  With one rate for all this is
    SPEC §7's ``mu_w = mu_u / (N nu eps_bar)``.  Entries with ``N_c = 0`` are NaN (no synapse).
    """
    n_pre = np.asarray(n_pre, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)[:, None]
    shares = np.asarray(shares, dtype=np.float64)[:, None]
    drive = (n_pre * rates).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_w = np.where(drive > 0, mu_u / (eps_bar * drive), np.nan)
        var = np.where(n_pre > 0, shares * np.square(sigma_u) / (n_pre * rates * eps_hat) - mu_w**2, np.nan)
    return mu_w, var


# -- the report ---------------------------------------------------------------------------------
def _readonly(arr) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64)
    arr.setflags(write=False)
    return arr


def _summary_value(arr: np.ndarray):
    """A float when every neuron shares the value, else the list of values (JSON-friendly)."""
    finite = arr[np.isfinite(arr)]
    if finite.size and np.all(finite == finite[0]) and finite.size == arr.size:
        return float(finite[0])
    return [None if not np.isfinite(v) else float(v) for v in arr]


@attrs.frozen(eq=False)
class AfferentInit:
    """How one connection onto an initialised population was drawn.

    ``rate_hz``: the source's rate (Hz), measured on the sample (``rate_measured``; for a
    self-connection: the population's own rate after a first draw) or assumed;
    ``n_pre``: the mean number of synapses per target neuron; ``recurrent``: the source is the
    target itself or is initialised after it; ``variance_share``: its share of the membrane
    variance; ``mu_w``, ``sigma_w``: ``[n]`` per target neuron.
    """

    connection: str
    source: str
    rate_hz: float
    rate_measured: bool
    n_pre: float
    recurrent: bool
    variance_share: float
    mu_w: np.ndarray
    sigma_w: np.ndarray

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("connection", "source", "rate_hz", "rate_measured", "n_pre")}
        out.update(recurrent=self.recurrent, variance_share=self.variance_share)
        out.update(mu_w=_summary_value(self.mu_w), sigma_w=_summary_value(self.sigma_w))
        return out


@attrs.frozen(eq=False)
class PopulationInit:
    """The initialisation of one target population.

    ``rate_hz``: its own rate measured after its afferents were drawn (``None`` for a readout);
    ``n_total``: presynaptic neurons per target neuron over all afferents (mean); ``mu_u`` and
    ``sigma_u`` ``[n]``: the targets; ``eps_bar``, ``eps_hat`` ``[n]`` in ms; ``mu_w`` ``[n]``.
    """

    population: str
    kind: str
    n: int
    rate_hz: float | None
    n_total: float
    mu_u: np.ndarray
    sigma_u: np.ndarray
    eps_bar: np.ndarray
    eps_hat: np.ndarray
    mu_w: np.ndarray
    afferents: tuple[AfferentInit, ...]

    def to_dict(self) -> dict:
        out = {"population": self.population, "kind": self.kind, "n": self.n, "rate_hz": self.rate_hz}
        out["n_total"] = self.n_total
        for key in ("mu_u", "sigma_u", "eps_bar", "eps_hat", "mu_w"):
            out[key] = _summary_value(getattr(self, key))
        out["afferents"] = [a.to_dict() for a in self.afferents]
        return out


@attrs.frozen(eq=False)
class FluctuationReport:
    """What :func:`fluctuation_init` measured and chose: ``input_rates_hz`` per input population,
    ``populations`` (by name, in ``order``, the order they were initialised in)."""

    config: FluctuationConfig
    dt: float
    input_rates_hz: Mapping[str, float]
    order: tuple[str, ...]
    populations: Mapping[str, PopulationInit]

    def rates_hz(self) -> dict[str, float]:
        """Measured rate (Hz) of every input and every initialised spiking population."""
        out = dict(self.input_rates_hz)
        out.update({k: p.rate_hz for k, p in self.populations.items() if p.rate_hz is not None})
        return out

    def to_dict(self) -> dict:
        """A JSON-compatible dict (per-neuron values collapse to one number when all are equal)."""
        return {
            "config": self.config.to_dict(),
            "dt": self.dt,
            "input_rates_hz": dict(self.input_rates_hz),
            "order": list(self.order),
            "populations": [self.populations[k].to_dict() for k in self.order],
        }

    def summary(self) -> str:
        """A plain-text table: one line per population, one indented line per afferent."""
        c = self.config
        lines = [f"fluctuation-driven init: xi={c.xi:g}, mu_u={c.mu_u:g}, alpha={c.alpha:g}, dt={self.dt:g} ms"]
        for name, rate in self.input_rates_hz.items():
            lines.append(f"  {name:<14} input          nu={rate:8.2f} Hz")
        for name in self.order:
            p = self.populations[name]
            rate = "   -    " if p.rate_hz is None else f"{p.rate_hz:8.2f}"
            lines.append(
                f"  {name:<14} {p.kind:<5} n={p.n:<5d} nu={rate} Hz  N={p.n_total:<8.6g} "
                f"mu_w={np.nanmean(p.mu_w):.4g}  eps_bar={np.mean(p.eps_bar):.4g} ms  "
                f"eps_hat={np.mean(p.eps_hat):.4g} ms"
            )
            for a in p.afferents:
                tag = "rec" if a.recurrent else "ff "
                src = "measured" if a.rate_measured else "assumed"
                lines.append(
                    f"    <- {a.source:<12} {tag} N={a.n_pre:<8.6g} nu={a.rate_hz:.2f} Hz ({src})  "
                    f"share={a.variance_share:.3g}  sigma_w={np.nanmean(a.sigma_w):.4g}"
                )
        return "\n".join(lines)


# -- the data sample ----------------------------------------------------------------------------
def _sample(data, network, config: FluctuationConfig) -> dict[str, np.ndarray]:
    from .data.dataset import Dataset
    from .inputs import prepare_inputs

    built = network.built
    if isinstance(data, Dataset) and not isinstance(data, np.ndarray):
        if len(data) == 0:
            raise ValueError("fluctuation_init: the data set is empty; rates cannot be measured")
        k = min(len(data), config.sample_size)
        idx = np.sort(rng_for(network.seed, "fluctuation/sample").choice(len(data), size=k, replace=False))
        data = data.batch(idx)[0]
    try:
        return prepare_inputs(built, data, np.float64)
    except ValueError as exc:
        raise ValueError(f"fluctuation_init: sample_x: {exc}") from None


# -- the order of initialisation ----------------------------------------------------------------
def _order(built, targets: list[str]) -> list[str]:
    """Targets in topological order from the inputs; cycles are broken in declaration order."""
    done = {p.name for p in built.inputs}
    remaining = list(targets)
    order = []
    while remaining:
        pick = None
        for name in remaining:  # every source other than itself ready
            if all(c.source in done or c.source == name for c in built.incoming(name)):
                pick = name
                break
        if pick is None:  # a cycle: take the first one that some ready population feeds
            for name in remaining:
                if any(c.source in done for c in built.incoming(name)):
                    pick = name
                    break
        if pick is None:
            raise ValueError(
                f"fluctuation_init: populations {remaining} receive nothing from any SpikeInput "
                "(directly or through other populations); their rates cannot be measured"
            )
        order.append(pick)
        done.add(pick)
        remaining.remove(pick)
    return order


def _subnetwork(network, names: set[str], weights: dict[str, np.ndarray]):
    """The populations ``names`` and the connections among them, with the weights drawn so far."""
    from .network import Network

    pops = [p for p in network.populations if p.name in names]
    conns = [
        attrs.evolve(c, weight=weights[c.name]) if c.name in weights else c
        for c in network.connections
        if c.source in names and c.target in names
    ]
    return Network(pops, conns, dt=network.dt, seed=network.seed)


def _compiler(backend, dtype: str, device: str):
    from .backend import Backend
    from .host import get_backend

    be = backend if isinstance(backend, Backend) else get_backend(backend)

    def rates(network, inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, float]:
        compiled = be.compile(network, dtype=dtype, device=device)
        rec = compiled.simulate(inputs, record={n: ("z",) for n in names})
        return {n: float(np.mean(rec[n]["z"], dtype=np.float64)) * 1000.0 / network.dt for n in names}

    return rates


# -- the initialisation -------------------------------------------------------------------------
def fluctuation_init(
    network,
    sample_x,
    config: FluctuationConfig | None = None,
    *,
    backend="numpy",
    dtype: str = "float64",
    device: str = "cpu",
):
    """A new network whose connections onto spiking populations are drawn fluctuation-driven.

    ``sample_x``: input spikes ``[T, B, N_in]`` (a dict of them per input population when there
    are several), or a data set (:class:`spikeloom.data.Dataset`) from which ``config.sample_size``
    examples are drawn (seeded by the network's seed).  Populations are initialised in
    topological order from the inputs; after each, the sample is simulated on ``backend`` (a name
    or a :class:`~spikeloom.Backend`; default the NumPy reference, in ``dtype``) through the
    populations initialised so far and its firing rate is measured for the populations it feeds.

    Every connection onto an LIF/ALIF population (and onto LI readouts when
    ``config.readout_sigma_u`` is set) gets an explicit ``[N_pre, N_post]`` weight array drawn from
    ``Normal(mu_w, sigma_w)`` per target neuron with the stream ``"fluctuation/<connection>/weight"``
    of the network's seed; everything else is kept.  Returns ``(new_network, FluctuationReport)``.

    Raises ``ValueError`` when an afferent was silent on the sample (measured rate 0 Hz), when
    ``mu_u`` is not below a population's threshold, or when the targets cannot be met
    (``sigma_w^2 < 0``: ``mu_u`` too large for ``xi``).
    """
    from .network import Network

    if not isinstance(network, Network):
        raise ValueError(f"fluctuation_init: network must be a spikeloom.Network, got {type(network).__name__}")
    if config is None:
        config = FluctuationConfig()
    elif not isinstance(config, FluctuationConfig):
        raise ValueError(f"fluctuation_init: config must be a FluctuationConfig, got {type(config).__name__}")
    built = network.built
    dt = built.dt
    inputs = _sample(sample_x, network, config)
    rates_khz = {name: float(np.mean(x, dtype=np.float64)) / dt for name, x in inputs.items()}
    input_rates_hz = {name: 1000.0 * r for name, r in rates_khz.items()}

    targets = [
        p.name
        for p in built.neuron_populations
        if built.incoming(p.name) and (p.spiking or config.readout_sigma_u is not None)
    ]
    for p in built.neuron_populations:
        if p.spiking and not built.incoming(p.name):
            fed = sorted({c.target for c in built.outgoing(p.name) if c.target in targets})
            if fed:
                raise ValueError(
                    f"fluctuation_init: {p.kind} {p.name!r} has no incoming connection, so it never fires, yet it "
                    f"feeds {fed}; connect it to an input or remove it"
                )
    order = _order(built, targets)
    simulate_rates = _compiler(backend, dtype, device)
    weights: dict[str, np.ndarray] = {}
    measured = set(inputs)
    reports: dict[str, PopulationInit] = {}
    for name in order:
        pop = built.populations[name]
        reports[name] = _init_population(network, pop, config, rates_khz, measured, weights)
        if pop.spiking:
            rate = simulate_rates(_subnetwork(network, measured | {name}, weights), inputs, [name])[name]
            self_fed = any(c.source == name for c in built.incoming(name))
            if self_fed and config.recurrent_rate_hz is None and rate > 0:
                # its own rate was assumed; draw again with the rate just measured, then measure anew
                reports[name] = _init_population(network, pop, config, rates_khz, measured, weights, rate / 1000.0)
                rate = simulate_rates(_subnetwork(network, measured | {name}, weights), inputs, [name])[name]
            rates_khz[name] = rate / 1000.0
            reports[name] = attrs.evolve(reports[name], rate_hz=rate)
        measured.add(name)
    conns = [attrs.evolve(c, weight=weights[c.name]) if c.name in weights else c for c in network.connections]
    new_network = attrs.evolve(network, connections=conns)
    report = FluctuationReport(
        config=config,
        dt=dt,
        input_rates_hz=MappingProxyType(input_rates_hz),
        order=tuple(order),
        populations=MappingProxyType(reports),
    )
    return new_network, report


def _init_population(network, pop, config, rates_khz, measured, weights, own_rate=None) -> PopulationInit:
    """Draw the afferent weights of ``pop`` into ``weights``; ``own_rate`` (1/ms): the rate of its
    self-connections, measured in a first pass (else assumed like other recurrent afferents)."""
    built = network.built
    where = f"fluctuation_init: {pop.kind} {pop.name!r}"
    incoming = built.incoming(pop.name)
    if pop.spiking:
        theta = np.asarray(pop.params["v_thresh"], dtype=np.float64)
        if np.any(config.mu_u >= theta):
            raise ValueError(
                f"{where}: FluctuationConfig.mu_u={config.mu_u:g} must lie below the threshold "
                f"v_thresh (min {theta.min():g}); choose a smaller mu_u"
            )
        mu_u = np.full(pop.n, config.mu_u)
        sigma_u = (theta - config.mu_u) / config.xi
    else:  # an LI readout: no threshold, a centred membrane with the given spread
        mu_u = np.zeros(pop.n)
        sigma_u = np.full(pop.n, float(config.readout_sigma_u))
    eps_bar, eps_hat = psp_integrals(pop, built.dt)

    recurrent = np.array([c.source not in measured for c in incoming])
    ff_rates = [(rates_khz[c.source], c.n_synapses / pop.n) for c in incoming if c.source in measured]
    for c in incoming:
        if c.source in measured and rates_khz[c.source] <= 0:
            raise ValueError(
                f"{where}: its afferent {c.source!r} (connection {c.name!r}) fired at 0 Hz on the data sample, "
                "so no weight can set the membrane statistics; use a larger or livelier sample, or a smaller xi / "
                f"larger mu_u for {c.source!r} so that it fires"
            )
    if config.recurrent_rate_hz is not None:
        assumed = config.recurrent_rate_hz / 1000.0
    else:  # a target is initialised once some measured population feeds it, so total_n > 0
        total_n = sum(n for _, n in ff_rates)
        assumed = sum(r * n for r, n in ff_rates) / total_n
    rates = np.array([rates_khz[c.source] if c.source in measured else assumed for c in incoming])
    from_data = ~recurrent
    if own_rate is not None:
        is_self = np.array([c.source == pop.name for c in incoming])
        rates = np.where(is_self, own_rate, rates)
        from_data |= is_self
    shares = variance_shares(recurrent, config.alpha)
    n_pre = np.stack([c.mask.sum(axis=0).astype(np.float64) for c in incoming])
    mu_w, var = weight_moments(n_pre, rates, shares, eps_bar, eps_hat, mu_u, sigma_u)
    bad = np.isfinite(var) & (var < 0)
    if np.any(bad):
        c = incoming[int(np.argwhere(bad)[0][0])]
        raise ValueError(
            f"{where}: the targets cannot be met for connection {c.name!r}: the shared mean weight alone "
            f"gives more membrane variance than its share (sigma_w^2 < 0); lower |mu_u| "
            f"(now {config.mu_u:g}) or xi (now {config.xi:g})"
        )
    afferents = []
    for k, c in enumerate(incoming):
        sigma = np.sqrt(np.where(np.isfinite(var[k]), var[k], 0.0))
        mean = np.where(np.isfinite(mu_w), mu_w, 0.0)
        z = rng_for(network.seed, f"fluctuation/{c.name}/weight").standard_normal(c.mask.shape)
        weights[c.name] = np.where(c.mask, mean[None, :] + sigma[None, :] * z, 0.0)
        afferents.append(
            AfferentInit(
                connection=c.name,
                source=c.source,
                rate_hz=float(rates[k] * 1000.0),
                rate_measured=bool(from_data[k]),
                n_pre=float(n_pre[k].mean()),
                recurrent=bool(recurrent[k]),
                variance_share=float(shares[k]),
                mu_w=_readonly(mu_w),
                sigma_w=_readonly(np.where(np.isfinite(var[k]), np.sqrt(np.abs(var[k])), np.nan)),
            )
        )
    return PopulationInit(
        population=pop.name,
        kind=pop.kind,
        n=pop.n,
        rate_hz=None,
        n_total=float(n_pre.sum(axis=0).mean()),
        mu_u=_readonly(mu_u),
        sigma_u=_readonly(sigma_u),
        eps_bar=_readonly(eps_bar),
        eps_hat=_readonly(eps_hat),
        mu_w=_readonly(mu_w),
        afferents=tuple(afferents),
    )
