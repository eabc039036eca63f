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
    for t in range(T):
        for name in group:
            p = pops[name]
            _spiking_step(
                rt,
                p,
                state[name],
                drives[name][t] if drives[name] is not None else None,
                [(spikes[c.source][t - c.delay], weights[c.name]) for c in plan.internal[name] if t >= c.delay],
                scratch[name],
                _flags(p, keep.get(name, set())),
                _rec_args(rt, recs[name], t),
                recurrent_mode,
            )
    return recs


def _zero_state(rt: Runtime, p: PopConst, B: int) -> dict:
    st = {"I": rt.zeros((B, p.n)), "V": rt.zeros((B, p.n))}
    if p.spiking:
        st.update(a=rt.zeros((B, p.n)) if p.alif else rt.dummy, z=rt.zeros((B, p.n)), ref=rt.zeros((B, p.n), "int64"))
    return st


def _spiking_step(
    rt: Runtime, p: PopConst, st: dict, drive_t, delivered: list, scratch, flags: int, outs: list, mode: str
):
    """One ``spiking_step`` launch; the first delivered ``(spikes [B, N_pre], W)`` pair goes into
    the kernel (event-driven), the others are summed into ``scratch`` first."""
    B = st["V"].shape[0]
    fused = delivered[0] if delivered and mode == "events" else None
    rest = delivered[1:] if fused is not None else delivered
    h = drive_t
    if rest:
        if h is None:
            scratch[...] = 0
        else:
            scratch[...] = h
        for s, W in rest:
            deliver_step(rt, s, W, scratch, True, mode)
        h = scratch
    s_rec, W_rec = fused if fused is not None else (rt.dummy, rt.dummy)
    rt.launch(
        "spiking_step",
        B * p.n,
        B,
        p.n,
        h if h is not None else rt.dummy,
        int(h is not None),
        s_rec,
        W_rec,
        s_rec.shape[1] if fused is not None else 0,
        int(fused is not None),
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
    )


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
            delivered = [
                (self.ring[c.source][(t - c.delay) % self.depth[c.source]], self.weights[c.name])
                for c in self.built.incoming(name)
            ]
            rec = {v: rt.zeros((B, p.n)) for v in ("V", "I")}
            if p.spiking:
                rec["z"] = rt.zeros((B, p.n))
                if p.alif:
                    rec["a"] = rt.zeros((B, p.n))
                if p.has_ref or track_ref:
                    rec["refractory"] = rt.zeros((B, p.n))
                flags = REC_I | (REC_A if "a" in rec else 0) | (REC_REF if "refractory" in rec else 0)
                _spiking_step(
                    rt, p, self.state[name], None, delivered, self.scratch[name], flags, _rec_args(rt, rec), self.mode
                )
            else:
                h = self.scratch[name]
                h[...] = 0
                for s, W in delivered:
                    deliver_step(rt, s, W, h, True, self.mode)
                st = self.state[name]
                rt.launch("li_step", B * p.n, B, p.n, h, 1, st["I"], st["V"], p.am, p.as_, p.g, p.bias)
                rec["V"][...] = st["V"]
                rec["I"][...] = st["I"]
            out[name] = rec
        self._pending = {src: (x_t[src] if src in x_t else self.state[src]["z"]) for src in self.depth}
        self.t += 1
        return out
