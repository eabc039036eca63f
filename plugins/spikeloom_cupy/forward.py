"""The forward pass: whole sequences group by group (:func:`run`) and one step at a time for all
populations together (:class:`Stepper`, used by e-prop and state-forced stepping).

In :func:`run`, the input a population receives from inputs and earlier groups is delivered for
all steps at once (:func:`external_drive`).  A population whose group holds only itself and that
has no recurrent connection then runs as one fused time loop (``spiking_forward``/``li_forward``);
the others advance step by step with ``spiking_step``, which delivers one recurrent connection
itself, event-driven.  :class:`Stepper` keeps each source's last ``delay`` spike vectors in a ring
buffer ``[D, B, N]``, so its memory does not grow with ``T``.
"""

from __future__ import annotations

from spikeloom.built import BuiltConnection, BuiltNetwork

from .consts import PopConst
from .delivery import deliver_rows, deliver_step
from .plan import Plan
from .runtime import Runtime

__all__ = ["REC_I", "REC_A", "REC_REF", "external_drive", "run", "Stepper"]

# record flags of the neuron kernels (neuron.cu)
REC_I, REC_A, REC_REF = 1, 2, 4


def external_drive(rt: Runtime, conns, spikes: dict, weights: dict, n: int, T: int, B: int, modes: dict):
    """``h[t] = sum_c s_c[t - d_c] @ W_c`` for all steps, ``[T, B, n]`` (None without connections).
    ``modes`` caches the delivery mode per (source, delay) within one call."""
    if not conns:
        return None
    h = rt.zeros((T, B, n))
    for c in conns:
        d = c.delay
        if d >= T:
            continue
        s = spikes[c.source]
        x2d = s[: T - d].reshape((T - d) * B, s.shape[2])
        key = (c.source, d)
        modes[key] = deliver_rows(rt, x2d, weights[c.name], h[d:].reshape((T - d) * B, n), True, modes.get(key))
    return h


def _flags(p: PopConst, keep: set[str]) -> int:
    f = 0
    if "I" in keep:
        f |= REC_I
    if p.alif and "a" in keep:
        f |= REC_A
    if p.has_ref and "refractory" in keep:
        f |= REC_REF
    return f


def _records(rt: Runtime, p: PopConst, keep: set[str], T: int, B: int) -> dict:
    names = {"V"} | (keep & {"I"})
    if p.spiking:
        names |= {"z"} | (keep & {"a", "refractory"})
        if not p.alif:
            names.discard("a")
        if not p.has_ref:
            names.discard("refractory")
    return {v: rt.zeros((T, B, p.n)) for v in names}


def _rec_args(rt: Runtime, rec: dict, t: int | None = None) -> list:
    pick = (lambda v: rec[v]) if t is None else (lambda v: rec[v][t])
    return [pick(v) if v in rec else rt.dummy for v in ("V", "z", "I", "a", "refractory")]


def _consts_args(p: PopConst) -> list:
    return [p.am, p.as_, p.g, p.vth, p.rho, p.beta, p.nref]


def run(
    rt: Runtime,
    built: BuiltNetwork,
    plan: Plan,
    pops: dict[str, PopConst],
    weights: dict,
    inputs: dict,
    keep: dict[str, set[str]],
    recurrent_mode: str = "events",
) -> dict[str, dict]:
    """Simulate all steps of ``inputs`` (``{name: [T, B, N]}`` device arrays) from zero state.

    Returns ``{population: {variable: [T, B, N]}}`` with ``V`` (before the reset) of every
    population, ``z`` of every spiking one, and ``I``, ``a``, ``refractory`` where ``keep`` asks
    (``refractory`` only where some neuron has a refractory period: elsewhere it is all zero).
    """
    T, B = next(iter(inputs.values())).shape[:2]
    spikes = dict(inputs)
    out: dict[str, dict] = {}
    modes: dict = {}
    for group in plan.groups:
        drives = {
            name: external_drive(rt, plan.external[name], spikes, weights, pops[name].n, T, B, modes) for name in group
        }
        if len(group) == 1 and plan.fused(group[0]):
            name = group[0]
            p, h = pops[name], drives[name]
            rec = _records(rt, p, keep.get(name, set()), T, B)
            has_h, h_arg = (1, h) if h is not None else (0, rt.dummy)
            if p.spiking:
                rt.launch(
                    "spiking_forward",
                    B * p.n,
                    T,
                    B,
                    p.n,
                    h_arg,
                    has_h,
                    *_consts_args(p),
                    int(p.alif),
                    int(p.zero_reset),
                    _flags(p, keep.get(name, set())),
                    *_rec_args(rt, rec),
                )
                spikes[name] = rec["z"]
            else:
                rt.launch(
                    "li_forward",
                    B * p.n,
                    T,
                    B,
                    p.n,
                    h_arg,
                    has_h,
                    p.am,
                    p.as_,
                    p.g,
                    p.bias,
                    REC_I if "I" in rec else 0,
                    rec["V"],
                    rec.get("I", rt.dummy),
                )
            out[name] = rec
            continue
        out.update(_run_group(rt, plan, group, pops, weights, drives, keep, T, B, spikes, recurrent_mode))
    return out


def _run_group(rt, plan, group, pops, weights, drives, keep, T, B, spikes, recurrent_mode) -> dict:
    recs = {name: _records(rt, pops[name], keep.get(name, set()), T, B) for name in group}
    for name in group:
        spikes[name] = recs[name]["z"]
    state = {name: _zero_state(rt, pops[name], B) for name in group}
    scratch = {name: rt.zeros((B, pops[name].n)) for name in group}
    steppers = {}
    for name in group:
        p, internal = pops[name], plan.internal[name]
        fused = internal[0] if internal and recurrent_mode == "events" else None
        rest = [c for c in internal if c is not fused]
        common = dict(
            rt=rt,
            p=p,
            st=state[name],
            src=(spikes[fused.source], weights[fused.name], fused.delay, 0) if fused is not None else None,
            flags=_flags(p, keep.get(name, set())),
            outs=_rec_args(rt, recs[name]),
            per_step=True,
        )
        if not rest:  # the same arguments at every step but t: prepared once
            steppers[name] = _step_launcher(h=drives[name], h_per_step=True, **common)
            continue

        def stepper(t, name=name, rest=rest, common=common):
            h = scratch[name]
            if drives[name] is not None:
                h[...] = drives[name][t]
            else:
                h[...] = 0
            for c in rest:
                if t >= c.delay:
                    deliver_step(rt, spikes[c.source][t - c.delay], weights[c.name], h, True, recurrent_mode)
            rt.launch("spiking_step", *_step_args(t=t, h=h, h_per_step=False, **common))

        steppers[name] = stepper
    for t in range(T):
        for name in group:
            steppers[name](t)
    return recs


def _zero_state(rt: Runtime, p: PopConst, B: int) -> dict:
    st = {"I": rt.zeros((B, p.n)), "V": rt.zeros((B, p.n))}
    if p.spiking:
        st.update(a=rt.zeros((B, p.n)) if p.alif else rt.dummy, z=rt.zeros((B, p.n)), ref=rt.zeros((B, p.n), "int64"))
    return st


def _step_args(
    rt: Runtime, p: PopConst, st: dict, t: int, h, h_per_step: bool, src, flags: int, outs: list, per_step: bool
) -> list:
    """``(n, *arguments)`` of ``spiking_step``; ``src`` is ``(spikes, W, delay, ring)`` of the
    connection the kernel delivers itself, or None."""
    B = st["V"].shape[0]
    spikes, W, delay, ring = src if src is not None else (rt.dummy, rt.dummy, 0, 0)
    return [
        B * p.n,
        t,
        B,
        p.n,
        int(per_step),
        h if h is not None else rt.dummy,
        int(h is not None),
        int(h_per_step),
        spikes,
        W,
        spikes.shape[-1] if src is not None else 0,
        delay,
        ring,
        int(src is not None),
        st["I"],
        st["V"],
        st["a"],
        st["z"],
        st["ref"],
        *_consts_args(p),
        int(p.alif),
        int(p.zero_reset),
        flags,
        *outs,
    ]


def _step_launcher(**kwargs):
    """``run(t)`` for ``spiking_step`` with arguments fixed but the step."""
    rt = kwargs["rt"]
    n, *args = _step_args(t=0, **kwargs)
    return rt.prepare("spiking_step", n, *args)


class Stepper:
    """All populations advanced together, one step per :meth:`step`, from zero state.

    Each source (input or spiking population) keeps its last ``D`` spike vectors in a ring
    ``[D, B, N]`` (``D`` its longest outgoing delay): the spikes of step ``u`` sit in slot
    ``u mod D``.  After a step, :meth:`delivered` gives ``s_source[t - delay]`` of a connection.
    """

    def __init__(
        self, rt: Runtime, built: BuiltNetwork, pops: dict[str, PopConst], weights: dict, B: int, mode: str = "events"
    ) -> None:
        self.rt, self.built, self.pops, self.weights, self.B, self.mode = rt, built, pops, weights, B, mode
        self.depth: dict[str, int] = {}
        for c in built.connections:
            self.depth[c.source] = max(self.depth.get(c.source, 0), c.delay)
        self.ring = {src: rt.zeros((d, B, built.populations[src].n)) for src, d in self.depth.items()}
        self.state = {name: _zero_state(rt, p, B) for name, p in pops.items()}
        self.scratch = {name: rt.zeros((B, p.n)) for name, p in pops.items()}
        self.t = 0  # the step the next call computes
        # spikes of the last step, written into the rings when the next step starts (so that
        # ``delivered`` stays valid until then)
        self._pending: dict = {}

    def delivered(self, c: BuiltConnection):
        """``s_source[t - delay]`` ``[B, N_pre]`` for the step just taken."""
        t = self.t - 1
        return self.ring[c.source][(t - c.delay) % self.depth[c.source]]

    def set_state(self, state: dict) -> None:
        """Continue from a host state laid out as ``Compiled.step`` documents (after the reset)."""
        rt = self.rt
        for name, p in self.pops.items():
            given = state["populations"][name]
            st = self.state[name]
            st["I"], st["V"] = rt.asarray(given["I"]), rt.asarray(given["V"])
            if p.spiking:
                st["z"] = rt.asarray(given["z"])
                st["ref"] = rt.asarray(given["ref"], "int64")
                if p.alif:
                    st["a"] = rt.asarray(given["a"])
        self._pending = {}
        self.t = max(self.depth.values(), default=0)
        for src, d in self.depth.items():
            hist = state["history"][src]
            for lag in range(1, d + 1):
                self.ring[src][(self.t - lag) % d] = rt.asarray(hist[lag - 1])

    def _flush(self) -> None:
        for src, newest in self._pending.items():
            self.ring[src][(self.t - 1) % self.depth[src]] = newest
        self._pending = {}

    def get_state(self) -> dict:
        self._flush()
        rt = self.rt
        pops = {}
        for name, p in self.pops.items():
            st = self.state[name]
            entry = {"V": rt.host(st["V"]), "I": rt.host(st["I"])}
            if p.spiking:
                if p.alif:
                    entry["a"] = rt.host(st["a"])
                entry.update(z=rt.host(st["z"]), ref=rt.host(st["ref"]))
            pops[name] = entry
        import numpy as np

        history = {}
        for src, d in self.depth.items():
            ring = rt.host(self.ring[src])
            history[src] = np.stack([ring[(self.t - 1 - lag) % d] for lag in range(d)])
        return {"populations": pops, "history": history}

    def step(self, x_t: dict, track_ref: bool = False) -> dict[str, dict]:
        """Advance by one step; ``x_t`` holds each input's spikes ``[B, N]`` (device arrays).
        Returns ``{population: {variable: [B, N]}}`` (``V`` before the reset; ``refractory``
        where some neuron has a refractory period, or always with ``track_ref``)."""
        self._flush()
        rt, t, B = self.rt, self.t, self.B
        out = {}
        for name, p in self.pops.items():
            # every one of these is written entirely by the step's kernel (or copied into)
            rec = {v: rt.empty((B, p.n)) for v in ("V", "I")}
            if p.spiking:
                rec["z"] = rt.empty((B, p.n))
                if p.alif:
                    rec["a"] = rt.empty((B, p.n))
                if p.has_ref or track_ref:
                    rec["refractory"] = rt.empty((B, p.n))
                flags = REC_I | (REC_A if "a" in rec else 0) | (REC_REF if "refractory" in rec else 0)
                conns = self.built.incoming(name)
                fused = conns[0] if conns and self.mode == "events" else None
                h = None
                if len(conns) > (1 if fused is not None else 0):
                    h = self.scratch[name]
                    h[...] = 0
                    for c in conns:
                        if c is not fused:
                            s_c = self.ring[c.source][(t - c.delay) % self.depth[c.source]]
                            deliver_step(rt, s_c, self.weights[c.name], h, True, self.mode)
                src = None
                if fused is not None:
                    src = (self.ring[fused.source], self.weights[fused.name], fused.delay, self.depth[fused.source])
                args = _step_args(rt, p, self.state[name], t, h, False, src, flags, _rec_args(rt, rec), False)
                rt.launch("spiking_step", *args)
            else:
                h = self.scratch[name]
                h[...] = 0
                for c in self.built.incoming(name):
                    s_c = self.ring[c.source][(t - c.delay) % self.depth[c.source]]
                    deliver_step(rt, s_c, self.weights[c.name], h, True, self.mode)
                st = self.state[name]
                rt.launch("li_step", B * p.n, B, p.n, h, 1, st["I"], st["V"], p.am, p.as_, p.g, p.bias)
                rec["V"][...] = st["V"]
                rec["I"][...] = st["I"]
            out[name] = rec
        self._pending = {src: (x_t[src] if src in x_t else self.state[src]["z"]) for src in self.depth}
        self.t += 1
        return out
