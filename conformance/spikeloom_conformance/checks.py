"""The check catalogue.

Every check is a plain function ``check_<name>(backend, case, tol, *, device)``: ``backend`` is a
:class:`spikeloom.Backend`, ``case`` a :class:`~spikeloom_conformance.cases.Case`, ``tol`` the
:class:`~spikeloom_conformance.tolerances.Tolerance` of the dtype under test.  A check raises
AssertionError naming the first disagreement with the float64 reference, returns a note (or
nothing) when the backend agrees, and raises :class:`~spikeloom_conformance.catalogue.CheckSkipped`
when it cannot run for a reason the declaration does not show.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

import spikeloom as sl
from spikeloom.capabilities import ALL_MODELS, ALL_READOUTS, ALL_RULES, ALL_SURROGATES
from spikeloom.inputs import normalize_record
from spikeloom.inputs import zero_state as core_zero_state
from spikeloom.rules import ALPHA_CLIP

from .cases import Case
from .catalogue import CheckSkipped, register
from .compare import compare_arrays, compare_recordings, compare_state, scale_of
from .reference import reference_backend, reference_grads, run_reference, select_batch, theta_of

__all__ = ["probes", "random_state", "HostAdam", "TRAIN_LR", "TRAIN_STEPS"]

#: Adam's learning rate and the number of steps of the training check
TRAIN_LR = 0.02
TRAIN_STEPS = 3
#: state-forced steps per case at most (the long case is compared along its first steps)
MAX_FORCED_STEPS = 150
#: random states per case in the random-state check
N_RANDOM_STATES = 6


# -- helpers ------------------------------------------------------------------------------------


def _compile(backend, case: Case, tol, device, *, rule=None, readout=None):
    """Compile, turning a refusal of something the backend declares into a failure."""
    try:
        return backend.compile(case.network, rule=rule, readout=readout, dtype=tol.dtype, device=device)
    except sl.UnsupportedFeature as exc:
        if isinstance(rule, sl.EProp) and exc.feature == "resets" and exc.value == "zero":
            raise CheckSkipped(
                "the backend implements e-prop for the subtractive reset only (allowed by SPEC §6): "
                "it refused resets='zero' with e-prop"
            ) from None
        raise AssertionError(
            f"compile raised UnsupportedFeature although the backend declares everything case {case.name!r} "
            f"needs: {exc}"
        ) from None


def _at(x, t):
    """The input of step ``t`` in the form ``x`` has (array or dict per input)."""
    return {k: v[t] for k, v in x.items()} if isinstance(x, dict) else x[t]


def _n_steps(x) -> int:
    return (next(iter(x.values())) if isinstance(x, dict) else x).shape[0]


def _head(recs: dict, stop: int) -> dict:
    """The first ``stop`` steps of every array of ``{pop: {var: arr}}`` (or ``{pop: arr}``)."""
    return {k: ({v: a[:stop] for v, a in d.items()} if isinstance(d, dict) else d[:stop]) for k, d in recs.items()}


def _batch(recs: dict, idx) -> dict:
    idx = list(idx)
    return {k: ({v: a[:, idx] for v, a in d.items()} if isinstance(d, dict) else d[:, idx]) for k, d in recs.items()}


def _scales(recs: dict) -> dict:
    return {(pop, var): scale_of(a) for pop, d in recs.items() for var, a in d.items()}


def _host(rec: dict) -> dict:
    return {pop: {v: np.asarray(a) for v, a in d.items()} for pop, d in rec.items()}


def _check_keys(label, got, expected: dict) -> None:
    if not isinstance(got, dict):
        raise AssertionError(f"{label}: expected a dict population -> variables, got {type(got).__name__}")
    if set(got) != set(expected):
        raise AssertionError(f"{label}: recorded populations {sorted(got)}, expected {sorted(expected)}")
    for pop, vars_ in expected.items():
        if set(got[pop]) != set(vars_):
            raise AssertionError(
                f"{label}: recorded variables of {pop!r} are {sorted(got[pop])}, expected {sorted(vars_)}"
            )


def _compare_run(label, case, got, ref, tol, *, batch=None, want=None) -> str:
    """Compare a whole run (over the dtype's horizon) with the reference run (or ``want``)."""
    T = _n_steps(case.data()[0])
    H = T if tol.horizon is None else min(T, tol.horizon)
    refr, theta, wanted = ref.refractory, ref.theta, ref.recs if want is None else want
    if batch is not None:
        refr, theta = _batch(refr, batch), _batch(theta, batch)
        if want is None:
            wanted = _batch(wanted, batch)
    return compare_recordings(
        label,
        case.network.built,
        _head(_host(got), H),
        _head(wanted, H),
        tol,
        rtol=tol.run_rtol,
        atol=tol.run_atol,
        refractory=_head(refr, H),
        theta=_head(theta, H),
        scales=_scales(ref.recs),
    )


def _raises(exc_type, what: str, fn: Callable, *args, **kwargs) -> str:
    """An empty string if ``fn(*args)`` raises ``exc_type``, else a line saying what happened."""
    try:
        fn(*args, **kwargs)
    except exc_type:
        return ""
    except Exception as exc:  # the wrong exception is a finding, not a crash of the kit
        return f"{what}: raised {type(exc).__name__} ({exc}) instead of {exc_type.__name__}"
    return f"{what}: did not raise {exc_type.__name__}"


def _same(label, got: dict, want: dict, exact: bool, tol) -> None:
    """Two recordings of the same backend are identical (bitwise where ``exact``)."""
    for pop, d in want.items():
        for var, w in d.items():
            g = np.asarray(got[pop][var])
            if exact:
                if not np.array_equal(g, w):
                    t, b, n = (int(i) for i in np.argwhere(g != w)[0])
                    raise AssertionError(
                        f"{label}: {pop}.{var} differs first at step {t}, batch element {b}, neuron {n}: "
                        f"{float(g[t, b, n])!r} vs {float(w[t, b, n])!r}"
                    )
            else:
                compare_arrays(f"{label}: {pop}.{var}", g, w, rtol=tol.step_rtol, atol=tol.step_atol)


def _forward_hint(backend, case, tol, device) -> str:
    """When gradients disagree: does the forward pass already?"""
    try:
        c = _compile(backend, case, tol, device)
        note = _compare_run("simulate", case, c.simulate(case.data()[0]), case.reference(), tol)
    except AssertionError as exc:
        return f"\n(the forward pass already differs: {exc})"
    except Exception:
        return ""
    return "\n(the forward pass agrees with the reference" + (f"; {note})" if note else ")")


def _compare_result(label, built, res, ref, tol, *, grads=True) -> None:
    if not isinstance(res.loss, (float, np.floating)) or not math.isfinite(res.loss):
        raise AssertionError(f"{label}: loss must be a finite float, got {res.loss!r}")
    if abs(res.loss - ref.loss) > tol.loss_rtol * max(abs(ref.loss), 1e-12):
        raise AssertionError(
            f"{label}: loss {res.loss!r}, expected {ref.loss!r} (relative difference "
            f"{abs(res.loss - ref.loss) / max(abs(ref.loss), 1e-300):.3g}, allowed {tol.loss_rtol:g})"
        )
    pred = np.asarray(res.predictions)
    if pred.shape != ref.predictions.shape or not np.array_equal(pred, ref.predictions):
        raise AssertionError(f"{label}: predictions {pred.tolist()}, expected {ref.predictions.tolist()}")
    if not grads:
        return
    if res.grads is None or set(res.grads) != set(ref.grads):
        raise AssertionError(
            f"{label}: gradients for {sorted(res.grads or ())}, expected exactly the trainable parameters "
            f"{sorted(ref.grads)}"
        )
    masks = {f"{c.name}.weight": c.mask for c in built.connections}
    for name, want in ref.grads.items():
        got = np.asarray(res.grads[name])
        if got.dtype != np.dtype(tol.dtype):
            raise AssertionError(f"{label}: gradient of {name!r} has dtype {got.dtype}, expected {tol.dtype}")
        if got.shape == want.shape and name in masks and np.any(got[~masks[name]] != 0):
            i, j = (int(v) for v in np.argwhere((got != 0) & ~masks[name])[0])
            raise AssertionError(
                f"{label}: gradient of {name!r} is {got[i, j]!r} at [{i}, {j}], where the connection has no synapse "
                "(it must be exactly 0 there)"
            )
        compare_arrays(f"{label}: gradient of {name!r}", got, want, rtol=tol.grad_rtol, atol=tol.grad_atol)


def _is_cpu(device: str) -> bool:
    return device.split(":", 1)[0] == "cpu"


# -- forward: whole runs and state-forced steps ---------------------------------------------------


@register()
def check_forward_run(backend, case, tol, *, device="cpu"):
    """Whole runs: every state variable (I, V, a, z) of every population at every step equals the reference.

    ``simulate(x)`` from zero state must record exactly the documented variables, ``V`` before the
    reset.  float32 runs are compared over the profile's horizon and up to the first spike that flips
    within round-off of the threshold.
    """
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    got = c.simulate(x)
    _check_keys("simulate(x)", got, normalize_record(case.network.built, None))
    return _compare_run("simulate(x)", case, got, case.reference(), tol)


def _forced_step(c, case, tol, state, x_t, ref_state_after, ref_rec, refractory, theta, t: int, label: str) -> int:
    """One state-forced step of the backend compared with the reference; returns the flips excused."""
    built = case.network.built
    result = c.step(state, x_t)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"{label}: Compiled.step must return (new state, recorded values)")
    new_state, rec = result
    want = {pop: {v: np.asarray(a)[None] for v, a in d.items()} for pop, d in ref_rec.items()}
    got = {pop: {v: np.asarray(a)[None] for v, a in d.items()} for pop, d in rec.items()}
    compare_recordings(
        label,
        built,
        got,
        want,
        tol,
        rtol=tol.step_rtol,
        atol=tol.step_atol,
        refractory={k: v[None] for k, v in refractory.items()},
        theta={k: np.asarray(v)[None] for k, v in theta.items()},
        scales={(p, v): scale_of(a) for p, d in ref_rec.items() for v, a in d.items()},
        t0=t,
    )
    skip = {p: np.asarray(rec[p]["z"]) != ref_rec[p]["z"] for p in theta}
    compare_state(f"{label}: state", built, new_state, ref_state_after, tol, skip=skip)
    return int(sum(int(m.sum()) for m in skip.values()))


@register(extra=(("stepping", True),))
def check_step_trajectory(backend, case, tol, *, device="cpu"):
    """State-forced single steps: from the reference's own state before every step, one ``Compiled.step``
    gives the reference's recorded values and next state (spikes, refractory counters, spike history).

    Each step starts again from the reference, so a spike that flips within round-off of the threshold
    cannot make the comparison diverge; the first mismatching step and neuron are reported.
    """
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    ref = case.reference()
    flips = 0
    for t in range(min(_n_steps(x), MAX_FORCED_STEPS)):
        rec_t = {p: {v: a[t] for v, a in d.items()} for p, d in ref.recs.items()}
        flips += _forced_step(
            c,
            case,
            tol,
            ref.states[t],
            _at(x, t),
            ref.states[t + 1],
            rec_t,
            {p: r[t] for p, r in ref.refractory.items()},
            {p: th[t] for p, th in ref.theta.items()},
            t,
            f"step {t} from the reference state",
        )
    return f"{flips} spike(s) flipped within round-off of the threshold" if flips else ""


def random_state(case: Case, i: int, batch: int = 3) -> tuple[dict, object]:
    """A random but valid state (membranes around threshold, refractory counters, spike history) and
    a random input for one step of ``case``'s network."""
    built = case.network.built
    rng = np.random.default_rng([case.seed, 4242, i])
    state = core_zero_state(built, batch, np.float64)
    for p in built.neuron_populations:
        st = state["populations"][p.name]
        vt = p.params["v_thresh"] if "v_thresh" in p.params else np.ones(p.n)
        st["V"] = rng.uniform(-0.5, 1.5, (batch, p.n)) * vt
        st["I"] = rng.normal(0.0, 0.5, (batch, p.n)) * vt
        if "a" in st:
            st["a"] = rng.uniform(0.0, 4.0, (batch, p.n))
        if "z" in st:
            st["z"] = (rng.random((batch, p.n)) < 0.3).astype(np.float64)
            st["ref"] = rng.integers(0, p.n_ref + 1, size=(batch, p.n))
    for src, h in state["history"].items():
        h[...] = rng.random(h.shape) < 0.3
        if built.populations[src].is_input and case.counts > 1:
            h[...] = rng.integers(0, case.counts + 1, size=h.shape)
    x = {
        p.name: (
            rng.integers(0, case.counts + 1, size=(batch, p.n)) if case.counts > 1 else rng.random((batch, p.n)) < 0.3
        )
        for p in built.inputs
    }
    return state, (x if len(x) > 1 else next(iter(x.values())))


@register(applies=lambda case: "forward" in case.tags, extra=(("stepping", True),))
def check_step_random_states(backend, case, tol, *, device="cpu"):
    """State-forced single steps from random states: membranes around threshold, adaptation,
    refractory counters part-way through, arbitrary spike history; each step equals the reference's."""
    c = _compile(backend, case, tol, device)
    ref_c = reference_backend().compile(case.network, dtype="float64")
    built = case.network.built
    flips = 0
    for i in range(N_RANDOM_STATES):
        state, x_t = random_state(case, i)
        after, rec = ref_c.step(state, x_t)
        refractory = {p.name: state["populations"][p.name]["ref"] > 0 for p in built.neuron_populations if p.spiking}
        theta = {name: theta_of(built, name, rec[name].get("a", np.zeros_like(rec[name]["V"]))) for name in refractory}
        flips += _forced_step(c, case, tol, state, x_t, after, rec, refractory, theta, 0, f"random state {i}")
    return f"{flips} spike(s) flipped within round-off of the threshold" if flips else ""


@register(applies=lambda case: "forward" in case.tags, extra=(("stepping", True),))
def check_step_matches_simulate(backend, case, tol, *, device="cpu"):
    """The backend's own stepping from ``zero_state(B)`` reproduces its own ``simulate``, and
    ``zero_state`` has the documented layout, all zeros."""
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    built = case.network.built
    B = case.batch
    state = c.zero_state(B)
    compare_state("zero_state(B)", built, state, core_zero_state(built, B, np.dtype(tol.dtype)), tol)
    for pop, d in state["populations"].items():
        for var, a in d.items():
            if np.any(np.asarray(a) != 0):
                raise AssertionError(f"zero_state(B): {pop}.{var} is not all zero")
    sim = _host(c.simulate(x))
    steps = []
    for t in range(_n_steps(x)):
        state, rec = c.step(state, _at(x, t))
        steps.append(rec)
    stepped = {pop: {v: np.stack([np.asarray(s[pop][v]) for s in steps]) for v in d} for pop, d in sim.items()}
    ref = case.reference()
    return _compare_run("stepping from zero_state vs simulate", case, stepped, ref, tol, want=sim)


@register(applies=lambda case: "api" in case.tags)
def check_record_selection(backend, case, tol, *, device="cpu"):
    """``simulate(x, record=...)`` returns exactly what was asked (a population name, a list of
    names, a dict of variables) with the reference's values."""
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    built = case.network.built
    names = [p.name for p in built.neuron_populations]
    spiking = [p.name for p in built.neuron_populations if p.spiking]
    requests = [names[-1], names[:1], {spiking[0]: ("z",)}, {names[-1]: "V", spiking[-1]: ["V", "z"]}]
    ref = case.reference()
    for record in requests:
        label = f"simulate(x, record={record!r})"
        got = c.simulate(x, record=record)
        expected = normalize_record(built, record)
        _check_keys(label, got, expected)
        want = {pop: {v: ref.recs[pop][v] for v in vars_} for pop, vars_ in expected.items()}
        _compare_run(label, case, got, ref, tol, want=want)


# -- batches, determinism, dtypes, parameters ------------------------------------------------------


@register()
def check_batch_independence(backend, case, tol, *, device="cpu"):
    """Each batch element evolves on its own: a batch equals its elements simulated one at a time,
    and permuting the batch permutes the results."""
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    ref = case.reference()
    whole = _host(c.simulate(x))
    for b in range(case.batch):
        alone = c.simulate(select_batch(x, [b]))
        _compare_run(
            f"batch element {b} simulated alone vs inside the batch",
            case,
            alone,
            ref,
            tol,
            batch=[b],
            want=_batch(whole, [b]),
        )
    perm = list(range(case.batch))[::-1]
    _compare_run(
        f"simulate(x[:, {perm}]) vs simulate(x)[:, {perm}]",
        case,
        c.simulate(select_batch(x, perm)),
        ref,
        tol,
        batch=perm,
        want=_batch(whole, perm),
    )


@register(applies=lambda case: case.learning and "nonseparable" not in case.tags, with_rule=True)
def check_batch_independence_grads(backend, case, tol, *, device="cpu"):
    """The loss and gradients of a batch are the means of its elements' (predictions their concatenation)."""
    c = _compile(backend, case, tol, device, rule=case.rule, readout=case.readout)
    x, labels = case.data()
    whole = c.loss_and_grads(x, labels)
    parts = [c.loss_and_grads(select_batch(x, [b]), labels[[b]]) for b in range(case.batch)]
    mean_loss = float(np.mean([p.loss for p in parts]))
    if abs(whole.loss - mean_loss) > tol.loss_rtol * max(abs(mean_loss), 1e-12):
        raise AssertionError(f"loss of the batch {whole.loss!r} is not the mean of its elements' losses {mean_loss!r}")
    pred = np.concatenate([np.asarray(p.predictions) for p in parts])
    if not np.array_equal(np.asarray(whole.predictions), pred):
        raise AssertionError(
            f"predictions of the batch {np.asarray(whole.predictions).tolist()} vs one at a time {pred.tolist()}"
        )
    for name, g in whole.grads.items():
        mean = np.mean([np.asarray(p.grads[name], dtype=np.float64) for p in parts], axis=0)
        compare_arrays(
            f"gradient of {name!r} of the batch vs the mean of its elements'",
            g,
            mean,
            rtol=tol.grad_rtol,
            atol=tol.grad_atol,
        )


@register(applies=lambda case: "api" in case.tags)
def check_determinism(backend, case, tol, *, device="cpu"):
    """Repeated calls give the same results: simulate twice (with another input in between, so no
    state is carried over), a second compile, and a repeated state-forced step (bitwise on the CPU)."""
    exact = _is_cpu(device)
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    first = _host(c.simulate(x))
    c.simulate(case.data(1)[0])
    _same("simulate(x) repeated after simulating another input", c.simulate(x), first, exact, tol)
    _same("simulate(x) on a second compile", _compile(backend, case, tol, device).simulate(x), first, exact, tol)
    if backend.capabilities().stepping:
        state = case.reference().states[3]
        a = c.step(state, _at(x, 3))[1]
        b = c.step(state, _at(x, 3))[1]
        _same(
            "step(state, x_t) repeated",
            {p: {v: np.asarray(w)[None] for v, w in d.items()} for p, d in b.items()},
            {p: {v: np.asarray(w)[None] for v, w in d.items()} for p, d in a.items()},
            exact,
            tol,
        )


def _variants(x):
    """The same spikes as bool, uint8, int64, float32 and float64 arrays."""
    single = not isinstance(x, dict)
    xs = {"_": x} if single else x
    counts = any(np.asarray(v).max() > 1 for v in xs.values())
    kinds = ("int64", "float32", "float64", "uint8") if counts else ("bool", "uint8", "int64", "float32", "float64")
    for kind in kinds:
        v = {k: np.asarray(a).astype(kind) for k, a in xs.items()}
        yield kind, (v["_"] if single else v)


@register(applies=lambda case: "api" in case.tags)
def check_dtype_handling(backend, case, tol, *, device="cpu"):
    """Results come back as NumPy arrays of the compiled dtype (spikes as 0/1), whatever the input's
    dtype (bool, uint8, int64, float32, float64); parameters and step states keep their dtypes; a
    float64 run really carries float64 precision."""
    want = np.dtype(tol.dtype)
    c = _compile(backend, case, tol, device)
    x, _ = case.data()
    base = None
    for kind, xv in _variants(x):
        rec = c.simulate(xv)
        for pop, d in rec.items():
            for var, a in d.items():
                if not isinstance(a, np.ndarray):
                    raise AssertionError(
                        f"simulate(x as {kind}): {pop}.{var} is a {type(a).__name__}, not a NumPy array"
                    )
                if a.dtype != want:
                    raise AssertionError(f"simulate(x as {kind}): {pop}.{var} has dtype {a.dtype}, expected {want}")
                if var == "z" and not np.all((a == 0) | (a == 1)):
                    raise AssertionError(f"simulate(x as {kind}): {pop}.z holds values other than 0 and 1")
        if base is None:
            base = _host(rec)
        else:
            _same(f"simulate(x as {kind}) vs simulate(x as bool)", rec, base, _is_cpu(device), tol)
    for name, p in c.get_params().items():
        if not isinstance(p, np.ndarray) or p.dtype != want:
            raise AssertionError(
                f"get_params(): {name!r} is {type(p).__name__} of dtype {getattr(p, 'dtype', '?')}, expected {want}"
            )
    if backend.capabilities().stepping:
        state, rec = c.step(c.zero_state(case.batch), _at(x, 0))
        for pop, d in state["populations"].items():
            for var, a in d.items():
                a = np.asarray(a)
                ok = a.dtype.kind in "iu" if var == "ref" else a.dtype == want
                if not ok:
                    raise AssertionError(
                        f"step(): state {pop}.{var} has dtype {a.dtype}, expected {'an integer dtype' if var == 'ref' else want}"
                    )
        for pop, d in rec.items():
            for var, a in d.items():
                if np.asarray(a).dtype != want:
                    raise AssertionError(
                        f"step(): recorded {pop}.{var} has dtype {np.asarray(a).dtype}, expected {want}"
                    )
    if want == np.float64:
        _precision_probe(backend, tol, device)


def _precision_probe(backend, tol, device):
    """A float64 run must not be computed in float32: 0.1 is inexact in float32, and after 40 steps
    of leak float32 arithmetic is off by ~1e-7 relative, float64 by ~1e-16."""
    caps = backend.capabilities()
    if "LIF" not in caps.models or "delta" not in caps.synapses or "dense" not in caps.connectivity:
        return
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("h", 1, tau_mem=7.0, v_thresh=1e6)],
        [sl.Connection("inp", "h", weight=0.1)],
    )
    x = np.ones((40, 1, 1))
    got = backend.compile(net, dtype="float64", device=device).simulate(x)["h"]["V"]
    want = run_reference(net, x).recs["h"]["V"]
    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want) / np.maximum(np.abs(want), 1e-300)))
    if err > 1e-12:
        raise AssertionError(
            f"float64 precision probe: the membrane differs from the float64 reference by {err:.3g} relative "
            "(float32 arithmetic gives ~1e-7, float64 ~1e-16): the float64 run is not computed in float64"
        )


def _new_params(case: Case, current: dict, seed: int) -> dict:
    """Different valid values for every parameter (zero outside masks, decay factors in (0, 1))."""
    rng = np.random.default_rng([case.seed, 5151, seed])
    masks = {f"{c.name}.weight": c.mask for c in case.network.built.connections}
    out = {}
    for name, v in current.items():
        v = np.asarray(v, dtype=np.float64)
        if name.endswith((".alpha_mem", ".alpha_syn")):
            new = np.clip(v + rng.uniform(-0.05, 0.05, v.shape), 0.5, 0.99)
        else:
            new = v * rng.uniform(0.5, 1.5, v.shape) + rng.normal(0.0, 0.05 * scale_of(v), v.shape)
        if name in masks:
            new = np.where(masks[name], new, 0.0)
        out[name] = new
    return out


@register(applies=lambda case: "api" in case.tags)
def check_params_roundtrip(backend, case, tol, *, device="cpu"):
    """``get_params()`` gives every parameter by its stable name, the network's initial values in the
    compiled dtype, as copies; ``set_params`` (all or some) round-trips exactly, and the network
    then computes with the new values (compared with the reference given the same values)."""
    want_dtype = np.dtype(tol.dtype)
    c = _compile(backend, case, tol, device)
    built = case.network.built
    initial = built.initial_params()
    got = c.get_params()
    if set(got) != set(initial):
        raise AssertionError(f"get_params() names {sorted(got)}, expected {sorted(initial)}")
    for name, v in initial.items():
        g = np.asarray(got[name])
        if g.shape != v.shape:
            raise AssertionError(f"get_params()[{name!r}] has shape {list(g.shape)}, expected {list(v.shape)}")
        if not np.array_equal(g, v.astype(want_dtype)):
            compare_arrays(
                f"get_params()[{name!r}] vs the network's initial values", g, v.astype(want_dtype), rtol=0, atol=0
            )
    for name in got:  # copies: changing what we got must not change the backend
        got[name][...] = 123.0
    again = c.get_params()
    for name, v in initial.items():
        if not np.array_equal(again[name], v.astype(want_dtype)):
            raise AssertionError(f"get_params() returned a view: writing into {name!r} changed the backend's parameter")
    new = _new_params(case, initial, 0)
    c.set_params(new)
    back = c.get_params()
    for name, v in new.items():
        compare_arrays(f"get_params()[{name!r}] after set_params", back[name], v.astype(want_dtype), rtol=0, atol=0)
    one = sorted(new)[0]
    partial = _new_params(case, {one: new[one]}, 1)
    c.set_params(partial)
    back = c.get_params()
    for name, v in new.items():
        expect = (partial[name] if name == one else v).astype(want_dtype)
        compare_arrays(f"get_params()[{name!r}] after set_params of {one!r} only", back[name], expect, rtol=0, atol=0)
    params = {**new, **partial}
    x, _ = case.data()
    ref = run_reference(
        case.network, x, {k: np.asarray(v, dtype=want_dtype).astype(np.float64) for k, v in params.items()}
    )
    return _compare_run("simulate(x) after set_params", case, c.simulate(x), ref, tol)


@register(applies=lambda case: "api" in case.tags)
def check_bad_inputs(backend, case, tol, *, device="cpu"):
    """Malformed arguments raise ValueError: compile options, input spikes (shape, channels, NaN,
    negative, non-numeric), record requests, parameters (name, shape, NaN, weights outside the
    connectivity, decay factors outside (0, 1)), step states and labels."""
    caps = backend.capabilities()
    built = case.network.built
    x, labels = case.data()
    c = _compile(backend, case, tol, device)
    first = built.inputs[0]
    T, B = case.T, case.batch
    problems = [
        _raises(ValueError, "compile(dtype='int32')", backend.compile, case.network, dtype="int32", device=device),
        _raises(ValueError, "compile(device='CPU 0')", backend.compile, case.network, dtype=tol.dtype, device="CPU 0"),
        _raises(
            ValueError,
            "compile(batch_size=0)",
            backend.compile,
            case.network,
            dtype=tol.dtype,
            device=device,
            batch_size=0,
        ),
        _raises(
            ValueError,
            "compile(rule=BPTT(), readout=None)",
            backend.compile,
            case.network,
            rule=sl.BPTT(),
            dtype=tol.dtype,
            device=device,
        ),
    ]

    def with_first(arr):
        return {**x, first.name: arr} if isinstance(x, dict) else arr

    bad_x = {
        "a 2-d input": np.zeros((T, first.n)),
        "one input channel too many": np.zeros((T, B, first.n + 1)),
        "NaN in the input": np.where(np.arange(first.n) == 0, np.nan, 0.0) * np.ones((T, B, 1)),
        "a negative spike count": -np.ones((T, B, first.n)),
        "string spikes": np.full((T, B, first.n), "1"),
    }
    for what, arr in bad_x.items():
        problems.append(_raises(ValueError, f"simulate with {what}", c.simulate, with_first(arr)))
    problems.append(
        _raises(ValueError, "simulate(record='no_such_population')", c.simulate, x, record="no_such_population")
    )
    problems.append(
        _raises(
            ValueError, "simulate(record={pop: ['W']})", c.simulate, x, record={built.neuron_populations[0].name: ["W"]}
        )
    )
    params = c.get_params()
    name = sorted(params)[0]
    problems += [
        _raises(ValueError, "set_params({'no.such': ...})", c.set_params, {"no.such": np.zeros(1)}),
        _raises(
            ValueError,
            f"set_params({name!r}: wrong shape)",
            c.set_params,
            {name: np.zeros(np.shape(params[name]) + (1,))},
        ),
        _raises(
            ValueError, f"set_params({name!r}: NaN)", c.set_params, {name: np.full(np.shape(params[name]), np.nan)}
        ),
    ]
    for conn in built.connections:
        if not conn.mask.all():
            w = np.asarray(params[f"{conn.name}.weight"], dtype=np.float64).copy()
            w[~conn.mask] = 0.5
            problems.append(
                _raises(
                    ValueError,
                    f"set_params({conn.name}.weight non-zero outside the connectivity)",
                    c.set_params,
                    {f"{conn.name}.weight": w},
                )
            )
            break
    for key in params:
        if key.endswith((".alpha_mem", ".alpha_syn")):
            problems.append(
                _raises(
                    ValueError, f"set_params({key!r} = 1.5)", c.set_params, {key: np.full(np.shape(params[key]), 1.5)}
                )
            )
            break
    if not np.array_equal(c.get_params()[name], params[name]):
        problems.append("a refused set_params changed the parameters")
    if caps.stepping:
        state = c.zero_state(B)
        problems.append(
            _raises(
                ValueError, "step(state without 'history')", c.step, {"populations": state["populations"]}, _at(x, 0)
            )
        )
        pop0 = built.neuron_populations[0].name
        broken = {
            "populations": {**state["populations"], pop0: {**state["populations"][pop0], "V": np.zeros((B, 1))}},
            "history": state["history"],
        }
        problems.append(_raises(ValueError, "step(state with a mis-shaped V)", c.step, broken, _at(x, 0)))
        problems.append(
            _raises(
                ValueError,
                "step(x_t with another batch size)",
                c.step,
                state,
                select_batch(x, [0])[0] if not isinstance(x, dict) else {k: v[0, :1] for k, v in x.items()},
            )
        )
    problems.append(
        _raises(
            ValueError,
            "loss_and_grads on a network compiled without a rule",
            c.loss_and_grads,
            x,
            np.zeros(B, dtype=int),
        )
    )
    if case.learning and case.rule.kind in caps.rules:
        cl = _compile(backend, case, tol, device, rule=case.rule, readout=case.readout)
        n_out = built.populations[case.readout.population].n
        problems += [
            _raises(ValueError, "labels out of range", cl.loss_and_grads, x, np.full(B, n_out)),
            _raises(ValueError, "labels of the wrong shape", cl.loss_and_grads, x, labels[:-1]),
            _raises(ValueError, "fractional labels", cl.loss_and_grads, x, np.full(B, 0.5)),
        ]
    problems = [p for p in problems if p]
    if problems:
        raise AssertionError("bad inputs were accepted or raised the wrong error:\n  " + "\n  ".join(problems))


# -- undeclared capabilities -----------------------------------------------------------------------


def _pick(declared, preferred):
    for p in preferred:
        if p in declared:
            return p
    return None


def _probe_network(
    caps, *, model=None, synapse=None, reset=None, connectivity=None, extra=None, delay=1, n_in=3, readout=False
):
    """A minimal network that needs only declared capabilities, except what the arguments ask for."""
    model = model or _pick(caps.models, ("LIF", "ALIF", "LI"))
    synapse = synapse or _pick(caps.synapses, ("delta", "exponential"))
    kind = connectivity or _pick(caps.connectivity, ("dense", "fixed_probability", "explicit"))
    if model is None or synapse is None or kind is None:
        return None
    conn = {
        "dense": sl.Dense(),
        "fixed_probability": sl.FixedProbability(0.5),
        "explicit": sl.Explicit([0, 1], [0, 1]),
    }[kind]
    kw = dict(extra or {})
    if synapse == "exponential":
        kw["tau_syn"] = 5.0
    cls = {"LIF": sl.LIF, "ALIF": sl.ALIF, "LI": sl.LI}[model]
    if model != "LI":
        r = reset or _pick(caps.resets, ("subtract", "zero"))
        if r is None:
            return None
        kw["reset"] = r
    elif "refractory" in kw or "reset" in kw:
        return None
    pops = [sl.SpikeInput("inp", n_in), cls("h", 4, **kw)]
    conns = [sl.Connection("inp", "h", connectivity=conn, delay=delay)]
    if readout:
        if model == "LI" or "LI" not in caps.models:
            return None
        pops.append(sl.LI("out", 2))
        conns.append(sl.Connection("h", "out", connectivity=conn))
    return sl.Network(pops, conns, seed=1)


def _rule_for(kind, surrogate):
    s = {"superspike": sl.SuperSpike(), "triangle": sl.Triangle(), "sigmoid": sl.Sigmoid(), "atan": sl.Atan()}[
        surrogate
    ]
    return sl.BPTT(surrogate=s) if kind == "bptt" else sl.EProp(surrogate=s)


def probes(caps, dtype: str, device: str):
    """``(feature, value, description, thunk)`` for every capability the backend does not declare:
    calling ``thunk(backend)`` must raise UnsupportedFeature naming ``feature``."""
    out = []

    def add(feature, value, what, net, **kw):
        if net is not None:
            out.append(
                (
                    feature,
                    value,
                    what,
                    lambda b, net=net, kw=kw: b.compile(net, **{"dtype": dtype, "device": device, **kw}),
                )
            )

    base = _probe_network(caps)
    for d in sorted({"float16", "float32", "float64"} - caps.dtypes):
        add("dtypes", d, f"compile(dtype={d!r})", base, dtype=d)
    for dev in sorted({"spikeloomprobe", "cpu", "cuda"} - caps.devices):
        add("devices", dev, f"compile(device={dev!r})", base, device=dev)
    for m in sorted(ALL_MODELS - caps.models):
        add("models", m, f"a network with an {m} population", _probe_network(caps, model=m))
    for s in sorted({"delta", "exponential"} - caps.synapses):
        add("synapses", s, f"a population with a {s} synapse", _probe_network(caps, synapse=s))
    for r in sorted({"subtract", "zero"} - caps.resets):
        model = _pick(caps.models, ("LIF", "ALIF"))
        add("resets", r, f"reset={r!r}", _probe_network(caps, model=model, reset=r) if model else None)
    for k in sorted({"dense", "fixed_probability", "explicit"} - caps.connectivity):
        add("connectivity", k, f"{k} connectivity", _probe_network(caps, connectivity=k))
    model = _pick(caps.models, ("LIF", "ALIF"))
    if not caps.refractory and model:
        add("refractory", True, "refractory=2 ms", _probe_network(caps, model=model, extra={"refractory": 2.0}))
    if not caps.heterogeneous:
        add(
            "heterogeneous",
            True,
            "per-neuron tau_mem",
            _probe_network(caps, extra={"tau_mem": np.array([10.0, 12.0, 14.0, 16.0])}),
        )
    if not caps.scale_input:
        add("scale_input", True, "scale_input=True", _probe_network(caps, extra={"scale_input": True}))
    if not caps.trainable_time_constants:
        add("trainable_time_constants", True, "train_tau_mem=True", _probe_network(caps, extra={"train_tau_mem": True}))
    if caps.max_delay is not None:
        add(
            "max_delay",
            caps.max_delay + 1,
            f"delay={caps.max_delay + 1}",
            _probe_network(caps, delay=caps.max_delay + 1),
        )
    if caps.max_neurons is not None:
        add(
            "max_neurons",
            caps.max_neurons + 5,
            f"{caps.max_neurons + 5} neurons",
            _probe_network(caps, n_in=caps.max_neurons + 1),
        )
    ro_net = _probe_network(caps, readout=True)
    per_step = sl.Readout("out", "per_step")
    sur = _pick(caps.surrogates, sorted(ALL_SURROGATES)) or "superspike"
    for r in sorted(ALL_RULES - caps.rules):
        add("rules", r, f"rule={r}", ro_net, rule=_rule_for(r, sur), readout=per_step)
    rule_kind = _pick(caps.rules, ("bptt", "eprop"))
    if rule_kind:
        for s in sorted(ALL_SURROGATES - caps.surrogates):
            add("surrogates", s, f"a {s} surrogate", ro_net, rule=_rule_for(rule_kind, s), readout=per_step)
    for m in sorted(ALL_READOUTS - caps.readouts):
        add("readouts", m, f"Readout(mode={m!r})", ro_net, readout=sl.Readout("out", m))
    if not caps.stepping and base is not None:
        out.append(
            (
                "stepping",
                True,
                "Compiled.step",
                lambda b, net=base: (lambda c: c.step(c.zero_state(1), np.zeros((1, 3))))(
                    b.compile(net, dtype=dtype, device=device)
                ),
            )
        )
    return out


@register(backend_level=True)
def check_undeclared_raise(backend, case, tol, *, device="cpu"):
    """Asking for anything the capabilities do not declare raises UnsupportedFeature naming the
    capability (never a silent fallback): each undeclared dtype, device, model, synapse, reset,
    connectivity, flag, limit, rule, surrogate and readout, and ``step`` without ``stepping``."""
    caps = backend.capabilities()
    problems = []
    found = probes(caps, tol.dtype, device)
    for feature, value, what, thunk in found:
        try:
            thunk(backend)
        except sl.UnsupportedFeature as exc:
            if exc.feature != feature:
                problems.append(f"{what}: UnsupportedFeature names {exc.feature}={exc.value!r}, expected {feature}")
        except Exception as exc:
            problems.append(f"{what}: raised {type(exc).__name__} ({exc}) instead of UnsupportedFeature({feature})")
        else:
            problems.append(f"{what}: accepted, although the backend does not declare {feature}={value!r}")
    if problems:
        raise AssertionError("undeclared capabilities were not refused:\n  " + "\n  ".join(problems))
    return f"{len(found)} undeclared capabilities refused"


# -- learning -----------------------------------------------------------------------------------


def _grads_check(backend, case, tol, device):
    c = _compile(backend, case, tol, device, rule=case.rule, readout=case.readout)
    x, labels = case.data()
    res = c.loss_and_grads(x, labels)
    try:
        _compare_result("loss_and_grads", case.network.built, res, reference_grads(case), tol)
    except AssertionError as exc:
        raise AssertionError(str(exc) + _forward_hint(backend, case, tol, device)) from None
    again = c.loss_and_grads(x, labels)
    exact = _is_cpu(device)
    for name, g in res.grads.items():
        same = np.array_equal(np.asarray(again.grads[name]), np.asarray(g))
        if exact and not same:
            raise AssertionError(f"loss_and_grads repeated: the gradient of {name!r} changed (not deterministic)")
    if exact and again.loss != res.loss:
        raise AssertionError(f"loss_and_grads repeated: the loss changed from {res.loss!r} to {again.loss!r}")


@register(applies=lambda case: "bptt" in case.tags, with_rule=True)
def check_bptt_grads(backend, case, tol, *, device="cpu"):
    """BPTT: loss, predictions and the gradient of every trainable parameter equal the reference's
    (zero where a connection has no synapse), and repeat exactly."""
    _grads_check(backend, case, tol, device)


@register(applies=lambda case: "eprop" in case.tags, with_rule=True)
def check_eprop_grads(backend, case, tol, *, device="cpu"):
    """e-prop: loss, predictions and every gradient equal the reference's (eligibility traces, their
    filtering by the readout, the learning signal, feedback, the online rate regulariser)."""
    _grads_check(backend, case, tol, device)


@register(applies=lambda case: "feedforward" in case.tags, with_rule=True, extra=(("rules", "bptt"),))
def check_eprop_equals_bptt(backend, case, tol, *, device="cpu"):
    """Without spiking-to-spiking connections, with detach_reset and the per-step loss, the backend's
    e-prop gradients equal its own BPTT gradients (SPEC §6 exactness)."""
    x, labels = case.data()
    ce = _compile(backend, case, tol, device, rule=case.rule, readout=case.readout)
    bptt = sl.BPTT(surrogate=case.rule.surrogate, detach_reset=True)
    cb = _compile(backend, case, tol, device, rule=bptt, readout=case.readout)
    ge, gb = ce.loss_and_grads(x, labels), cb.loss_and_grads(x, labels)
    gb_host = sl.backend.StepResult(
        loss=gb.loss, predictions=np.asarray(gb.predictions), grads={k: np.asarray(v) for k, v in gb.grads.items()}
    )
    _compare_result("e-prop vs the backend's BPTT", case.network.built, ge, gb_host, tol)


@register(applies=lambda case: case.learning, with_readout=True)
def check_evaluate(backend, case, tol, *, device="cpu"):
    """``evaluate(x, labels)`` (forward only) gives the reference's loss (activity regulariser
    included) and predictions."""
    c = _compile(backend, case, tol, device, readout=case.readout)
    x, labels = case.data()
    ref = reference_backend().compile(case.network, readout=case.readout, dtype="float64").evaluate(x, labels)
    _compare_result("evaluate", case.network.built, c.evaluate(x, labels), ref, tol, grads=False)


class HostAdam:
    """SPEC §6's Adam in float64 on host arrays (the kit's own, to check ``train_step`` against)."""

    def __init__(self, lr: float, beta1=0.9, beta2=0.999, eps=1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m: dict = {}
        self.v: dict = {}

    def step(self, params: dict, grads: dict) -> dict:
        self.t += 1
        out = dict(params)
        for name, g in grads.items():
            g = np.asarray(g, dtype=np.float64)
            m = self.beta1 * self.m.get(name, 0.0) + (1 - self.beta1) * g
            v = self.beta2 * self.v.get(name, 0.0) + (1 - self.beta2) * g * g
            self.m[name], self.v[name] = m, v
            mhat, vhat = m / (1 - self.beta1**self.t), v / (1 - self.beta2**self.t)
            p = np.asarray(params[name], dtype=np.float64) - self.lr * mhat / (np.sqrt(vhat) + self.eps)
            if name.endswith((".alpha_mem", ".alpha_syn")):
                p = np.clip(p, *ALPHA_CLIP)
            out[name] = p
        return out


@register(applies=lambda case: case.learning, with_rule=True)
def check_train_steps(backend, case, tol, *, device="cpu"):
    """Three ``train_step`` calls with Adam on three batches: each applies Adam (SPEC §6) to the
    gradients ``loss_and_grads`` gives, clips trained decay factors to [2/e, 0.995], leaves the other
    parameters alone and returns the loss before the step; in float64 the whole trajectory (losses
    and parameters) equals the reference's."""
    c = _compile(backend, case, tol, device, rule=case.rule, readout=case.readout)
    trainable = set(c.trainable_names())
    opt, host = sl.Adam(lr=TRAIN_LR), HostAdam(TRAIN_LR)
    ref = reference_backend().compile(case.network, rule=case.rule, readout=case.readout, dtype="float64")
    ref_opt = sl.Adam(lr=TRAIN_LR)
    vs_reference = tol.dtype == "float64"
    for k in range(TRAIN_STEPS):
        x, labels = case.data(k)
        before = c.get_params()
        g = c.loss_and_grads(x, labels)
        r = c.train_step(x, labels, opt)
        after = c.get_params()
        label = f"train_step {k + 1}"
        if abs(r.loss - g.loss) > tol.loss_rtol * max(abs(g.loss), 1e-12):
            raise AssertionError(
                f"{label}: returned loss {r.loss!r}, but loss_and_grads gives {g.loss!r} before the step"
            )
        if not np.array_equal(np.asarray(r.predictions), np.asarray(g.predictions)):
            raise AssertionError(
                f"{label}: predictions {np.asarray(r.predictions).tolist()} differ from loss_and_grads'"
            )
        expected = host.step(
            {n: np.asarray(v, dtype=np.float64) for n, v in before.items()}, {n: g.grads[n] for n in trainable}
        )
        for name in before:
            if name not in trainable:
                if not np.array_equal(after[name], before[name]):
                    raise AssertionError(f"{label}: the non-trainable parameter {name!r} changed")
                continue
            compare_arrays(
                f"{label}: {name!r} vs Adam applied to loss_and_grads' gradient",
                after[name],
                expected[name],
                rtol=tol.param_rtol,
                atol=tol.param_atol,
                scale=scale_of(expected[name]),
            )
            if name.endswith((".alpha_mem", ".alpha_syn")):
                a = np.asarray(after[name], dtype=np.float64)
                lo, hi = (np.float64(np.asarray(v, dtype=tol.dtype)) for v in ALPHA_CLIP)
                if np.any(a < lo) or np.any(a > hi):
                    raise AssertionError(f"{label}: {name!r} = {a.tolist()} lies outside the clip range [2/e, 0.995]")
        rr = ref.train_step(x, labels, ref_opt)
        if k == 0 or vs_reference:
            if abs(r.loss - rr.loss) > tol.loss_rtol * max(abs(rr.loss), 1e-12):
                raise AssertionError(f"{label}: loss {r.loss!r}, the reference's {rr.loss!r}")
        if vs_reference:
            ref_params = ref.get_params()
            for name in sorted(trainable):
                compare_arrays(
                    f"{label}: {name!r} vs the reference's after the same steps",
                    after[name],
                    ref_params[name],
                    rtol=tol.param_rtol,
                    atol=tol.param_atol,
                    scale=scale_of(ref_params[name]),
                )
