"""The forward pass: whole sequences group by group (:func:`run`) and one step at a time for all
populations together (:class:`Stepper`, used by e-prop and state-forced stepping).

In :func:`run`, the input a population receives from inputs and earlier groups is delivered for
all steps at once (:func:`external_drive`).  A population whose group holds only itself and that
has no recurrent connection then runs as one fused time loop (``spiking_forward``/``li_forward``);
one whose only connection inside its group is its own recurrent connection runs as a block loop
(``spiking_block_loop``: one launch, one block per example walking all steps); the others advance
step by step with ``spiking_step``, which delivers one recurrent connection itself, event-driven.
:class:`Stepper` keeps each source's last ``delay`` spike vectors in a ring
buffer ``[D, B, N]``, so its memory does not grow with ``T``.
"""

from __future__ import annotations

from spikeloom.built import BuiltConnection, BuiltNetwork
from spikeloom.plan import Plan

from .consts import PopConst
from .delivery import deliver_rows, deliver_step
from .launch import BLOCK_LOOP_MAX_SHARED, block_config
from .runtime import Runtime

__all__ = [
    "BLOCK_LOOP",
    "BLOCK_FORWARD_DENSE_MAX_N",
    "block_loop_connection",
    "REC_I",
    "REC_A",
    "REC_REF",
    "external_drive",
    "run",
    "Stepper",
]

#: run a recurrent population whose only connection inside its group is its own as one block
#: loop (one launch for all steps, forward and backward) instead of one launch per step
BLOCK_LOOP = True

#: with dense recurrent delivery (the previous call saw more than ``EVENT_MAX_DENSITY`` of the
#: recurrent spikes), a recurrent population of more than this many neurons runs forward step by
#: step, one cuBLAS product and one ``spiking_step`` per step, instead of as a block loop, whose
#: blocks then read most rows of ``W`` at every step.  The backward pass makes the same choice
#: above ``bptt.BLOCK_BACKWARD_MAX_N`` (measured there); this threshold follows it by analogy and
#: is not measured yet
BLOCK_FORWARD_DENSE_MAX_N = 512

# record flags of the neuron kernels (neuron.cu)
REC_I, REC_A, REC_REF, REC_PSI = 1, 2, 4, 8


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
    return [pick(v) if v in rec else rt.dummy for v in ("V", "z", "I", "a", "refractory", "psi")]


def _state_args(st: dict) -> list:
    """A spiking population's state arrays ``[B, N]`` in the order the step kernels take them."""
    return [st["I"], st["V"], st["a"], st["z"], st["ref"]]


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
                    *_rec_args(rt, rec)[:5],
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
        own = block_loop_connection(plan, group, pops, rt.dtype.itemsize)
        if own is not None and not (recurrent_mode == "dense" and pops[own.target].n > BLOCK_FORWARD_DENSE_MAX_N):
            out[own.target] = _run_block_loop(rt, pops[own.target], own, weights, drives[own.target], keep, T, B)
            spikes[own.target] = out[own.target]["z"]
            continue
        out.update(_run_group(rt, plan, group, pops, weights, drives, keep, T, B, spikes, recurrent_mode))
    return out


def block_loop_connection(plan: Plan, group, pops: dict[str, PopConst], itemsize: int) -> BuiltConnection | None:
    """The recurrent connection of ``group`` when the group runs as a block loop
    (``spiking_block_loop`` forward, ``spiking_block_backward`` backward): one spiking population
    whose only connection inside the group is one of its own, with a row of the population fitting
    in a block's shared memory; else None."""
    if not BLOCK_LOOP or len(group) != 1:
        return None
    name = group[0]
    p, internal = pops[name], plan.internal[name]
    if not p.spiking or len(internal) != 1 or internal[0].source != name:
        return None
    if block_config(1, p.n, itemsize)[2] > BLOCK_LOOP_MAX_SHARED:
        return None
    return internal[0]


def _run_block_loop(rt, p: PopConst, own: BuiltConnection, weights, h, keep, T: int, B: int) -> dict:
    rec = _records(rt, p, keep.get(p.name, set()), T, B)
    st = _zero_state(rt, p, B)
    cfg = block_config(B, p.n, rt.dtype.itemsize)
    if cfg is None:
        return rec
    rt.launch_blocks(
        "spiking_block_loop",
        cfg,
        T,
        B,
        p.n,
        h if h is not None else rt.dummy,
        int(h is not None),
        weights[own.name],
        own.delay,
        *_state_args(st),
        *_consts_args(p),
        int(p.alif),
        int(p.zero_reset),
        _flags(p, keep.get(p.name, set())),
        *_rec_args(rt, rec)[:5],
    )
    return rec


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
        # the same arguments at every step but t: prepared once (with the connections delivered
        # here in h2, and without for the steps before any of them arrives)
        launch = _step_launcher(h=drives[name], h_per_step=True, **common)
        if not rest:
            steppers[name] = launch
            continue
        launch_h2 = _step_launcher(h=drives[name], h_per_step=True, h2=scratch[name], **common)

        def stepper(t, name=name, rest=rest, launch=launch, launch_h2=launch_h2):
            # the connections delivered here go to h2; the drive of all steps stays in h
            delivered = False
            for c in rest:
                if t >= c.delay:
                    deliver_step(
                        rt,
                        spikes[c.source][t - c.delay],
                        weights[c.name],
                        scratch[name],
                        delivered,
                        recurrent_mode,
                        site=c.name,
                    )
                    delivered = True
            (launch_h2 if delivered else launch)(t)

        steppers[name] = stepper
    for t in range(T):
        for name in group:
            steppers[name](t)
    rt.release()
    return recs


def _zero_state(rt: Runtime, p: PopConst, B: int) -> dict:
    st = {"I": rt.zeros((B, p.n)), "V": rt.zeros((B, p.n))}
    if p.spiking:
        st.update(a=rt.zeros((B, p.n)) if p.alif else rt.dummy, z=rt.zeros((B, p.n)), ref=rt.zeros((B, p.n), "int64"))
    return st


def _step_args(
    rt: Runtime,
    p: PopConst,
    st: dict,
    t: int,
    h,
    h_per_step: bool,
    src,
    flags: int,
    outs: list,
    per_step: bool,
    surrogate: tuple = (0, 0.0, 0.0),
    h2=None,
) -> list:
    """``(n, *arguments)`` of ``spiking_step``; ``src`` is ``(spikes, W, delay, ring)`` of the
    connection the kernel delivers itself, or None; ``surrogate`` ``(kind, p, q)`` is used where
    ``flags`` asks for ``psi``."""
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
        h2 if h2 is not None else rt.dummy,
        int(h2 is not None),
        spikes,
        W,
        spikes.shape[-1] if src is not None else 0,
        delay,
        ring,
        int(src is not None),
        *_state_args(st),
        *_consts_args(p),
        int(p.alif),
        int(p.zero_reset),
        flags,
        *surrogate,
        *outs,
    ]


def _step_launcher(**kwargs):
    """``run(t)`` for ``spiking_step`` with arguments fixed but the step."""
    rt = kwargs["rt"]
    n, *args = _step_args(t=0, **kwargs)
    return rt.prepare("spiking_step", n, *args)


class Stepper:
    """All populations advanced together, one step per :meth:`step`, from zero state.

    Each source keeps its recent spike vectors in a ring ``[R, B, N]``: the spikes of step ``u``
    sit in slot ``u mod R``.  A spiking population's ring has ``R = D + 1`` slots (``D`` its longest
    outgoing delay), and the step's kernel writes the new spikes straight into slot ``t mod R``,
    which no connection reads during step ``t`` (delays are at least 1).  An input's ring has
    ``R = D + chunk`` slots, so that ``chunk`` steps of input can be copied in at once
    (:meth:`load_inputs`) without overwriting the ``D`` steps that are still delivered.  With
    ``keep``, every ring has ``keep`` more slots, so that a reader may take the spikes delivered in
    the last ``keep + 1`` steps straight from the ring (e-prop's synapse chunks read a chunk's
    delivered spikes at its end).  After a step, :meth:`delivered` gives ``s_source[t - delay]``
    of a connection.  The records a step
    returns alternate between two sets of buffers (the previous step's stay valid during the next
    one; a spiking source's ``z`` is its ring slot, an LI population's ``V``/``I`` its state).
    """

    def __init__(
        self,
        rt: Runtime,
        built: BuiltNetwork,
        pops: dict[str, PopConst],
        weights: dict,
        B: int,
        mode: str = "events",
        chunk: int = 1,
        keep: int = 0,
    ) -> None:
        self.rt, self.built, self.pops, self.weights, self.B, self.mode = rt, built, pops, weights, B, mode
        self.depth: dict[str, int] = {}
        for c in built.connections:
            self.depth[c.source] = max(self.depth.get(c.source, 0), c.delay)
        self.chunk = max(1, int(chunk))
        keep = max(0, int(keep))
        # ring slots
        self.size = {src: d + (self.chunk if src not in pops else 1) + keep for src, d in self.depth.items()}
        self.ring = {src: rt.zeros((self.size[src], B, built.populations[src].n)) for src in self.depth}
        # one view per slot, made once: a step's launches then pass the very objects of earlier
        # steps, whose conversion the launcher keeps (see Kernels.launch)
        self._slots = {src: [ring[k] for k in range(len(ring))] for src, ring in self.ring.items()}
        self.state = {name: _zero_state(rt, p, B) for name, p in pops.items()}
        self.scratch = {name: rt.zeros((B, p.n)) for name, p in pops.items()}
        self.t = 0  # the step the next call computes
        self._recs = [{}, {}]
        # with chunks of inputs, what inputs deliver to a population is computed for the whole
        # chunk at once (one cuBLAS product per connection, see load_inputs): [chunk, B, N]
        self.pre = {}
        if self.chunk > 1:
            for name in pops:
                conns = [c for c in built.incoming(name) if c.source not in pops]
                if conns:
                    self.pre[name] = conns
        self.drive = {name: rt.zeros((self.chunk, B, pops[name].n)) for name in self.pre}
        self._rows = {name: [drive[k] for k in range(self.chunk)] for name, drive in self.drive.items()}
        self._loaded = (0, 0)  # (first step, steps) of the chunk whose drives are computed

    def delivered(self, c: BuiltConnection):
        """``s_source[t - delay]`` ``[B, N_pre]`` for the step just taken."""
        t = self.t - 1
        return self._slots[c.source][(t - c.delay) % self.size[c.source]]

    def recent_spikes(self) -> dict[str, dict]:
        """``{population: {"z": [m, B, N]}}`` for each spiking population with a ring: the spikes of
        the last ``m`` steps it holds (``m`` the fewer of its slots and the steps taken from zero
        state), in slot order."""
        out = {}
        for name, p in self.pops.items():
            if p.spiking and name in self.ring:
                m = min(self.t, self.size[name])
                out[name] = {"z": self.ring[name][:m]}
        return out

    def load_inputs(self, x: dict, t0: int) -> None:
        """Copy host inputs ``{name: [n, B, N]}`` for steps ``t0 .. t0 + n - 1`` (``n`` at most the
        chunk, ``t0`` the next step to take) into the inputs' rings, in at most two copies each."""
        rt = self.rt
        for name, arr in x.items():
            if name not in self.ring:
                continue
            R, n = self.size[name], arr.shape[0]
            if n > self.chunk or t0 != self.t:
                raise ValueError(f"load_inputs: {n} steps from {t0} with a chunk of {self.chunk} at step {self.t}")
            a = t0 % R
            first = min(n, R - a)
            # bool/uint8 spikes go over as bytes; the assignment casts them on the device
            self.ring[name][a : a + first] = rt.spikes_compact(arr[:first])
            if first < n:
                self.ring[name][: n - first] = rt.spikes_compact(arr[first:])
        n = next(iter(x.values())).shape[0] if x else 0
        for name, conns in self.pre.items():
            out, n_post = self.drive[name], self.pops[name].n
            for k, c in enumerate(conns):
                ring, R = self.ring[c.source], self.size[c.source]
                a = (t0 - c.delay) % R  # the slots of steps t0 - delay .. t0 + n - 1 - delay
                first = min(n, R - a)
                pieces = [(a, 0, first)] + ([(0, first, n - first)] if first < n else [])
                for slot, off, m in pieces:
                    deliver_rows(
                        rt,
                        ring[slot : slot + m].reshape(m * self.B, ring.shape[2]),
                        self.weights[c.name],
                        out[off : off + m].reshape(m * self.B, n_post),
                        k > 0,
                        "dense",
                    )
        self._loaded = (t0, n)

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
        self.t = max(self.depth.values(), default=0)
        for src, d in self.depth.items():
            hist = state["history"][src]
            for lag in range(1, d + 1):
                self.ring[src][(self.t - lag) % self.size[src]] = rt.asarray(hist[lag - 1])

    def get_state(self) -> dict:
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
            history[src] = np.stack([ring[(self.t - 1 - lag) % self.size[src]] for lag in range(d)])
        return {"populations": pops, "history": history}

    def _rec(self, name: str, p: PopConst, want: tuple) -> dict:
        """This step's record buffers of a population (two sets, alternating by step)."""
        recs = self._recs[self.t % 2]
        rec = recs.get(name)
        if rec is None or set(rec) != set(want):
            rec = recs[name] = {v: self.rt.empty((self.B, p.n)) for v in want}
        return rec

    def _deliver(self, name: str, conns, t: int, base=None):
        """``h`` = ``base`` plus the sum over ``conns`` of ``s_c[t - delay] W_c`` (None without
        either)."""
        if not conns:
            return base
        h = self.scratch[name]
        if base is not None:
            h[...] = base
        for k, c in enumerate(conns):
            s_c = self._slots[c.source][(t - c.delay) % self.size[c.source]]
            deliver_step(
                self.rt, s_c, self.weights[c.name], h, base is not None or k > 0, self.mode, site=("deliver", c.name)
            )
        return h

    def _incoming(self, name: str, t: int):
        """``(base, conns)``: this step's row of the chunk's input drive (or None) and the
        connections still to deliver."""
        conns = self.built.incoming(name)
        pre = self.pre.get(name)
        if not pre:
            return None, conns
        t0, n = self._loaded
        if not t0 <= t < t0 + n:
            raise RuntimeError(f"Stepper: step {t} is outside the loaded inputs (steps {t0}..{t0 + n - 1})")
        return self._rows[name][t - t0], [c for c in conns if all(c is not q for q in pre)]

    def step(self, x_t: dict | None = None, track_ref: bool = False, psi: dict | None = None) -> dict[str, dict]:
        """Advance by one step; ``x_t`` holds each input's spikes ``[B, N]`` (device arrays), or
        None where :meth:`load_inputs` has put them in place.  ``psi`` ``{population: (kind, p, q,
        out)}`` asks the step's kernel for e-prop's surrogate, written to ``out`` ``[B, N]``.
        Returns ``{population: {variable: [B, N]}}`` (``V`` before the reset; ``refractory``
        where some neuron has a refractory period, or always with ``track_ref``), valid until the
        step after the next."""
        rt, t, B = self.rt, self.t, self.B
        for src, x in (x_t or {}).items():
            if src in self.ring:
                self.ring[src][t % self.size[src]] = x
        out = {}
        for name, p in self.pops.items():
            if p.spiking:
                want = ["V", "I"]
                if p.alif:
                    want.append("a")
                if p.has_ref or track_ref:
                    want.append("refractory")
                if name not in self.ring:
                    want.append("z")
                rec = dict(self._rec(name, p, tuple(want)))
                if name in self.ring:
                    rec["z"] = self._slots[name][t % self.size[name]]
                flags = REC_I | (REC_A if "a" in rec else 0) | (REC_REF if "refractory" in rec else 0)
                surrogate = (0, 0.0, 0.0)
                if psi is not None and name in psi:
                    kind, sp, sq, rec["psi"] = psi[name]
                    surrogate = (kind, sp, sq)
                    flags |= REC_PSI
                h, conns = self._incoming(name, t)
                fused = conns[0] if conns and self.mode == "events" else None
                h2 = self._deliver(name, [c for c in conns if c is not fused], t)
                src = None
                if fused is not None:
                    src = (self.ring[fused.source], self.weights[fused.name], fused.delay, self.size[fused.source])
                args = _step_args(
                    rt, p, self.state[name], t, h, False, src, flags, _rec_args(rt, rec), False, surrogate, h2
                )
                # a site per parity: the record buffers alternate between two sets by step
                rt.launch("spiking_step", *args, site=("step", name, t % 2))
                rec.pop("psi", None)
            else:
                base, conns = self._incoming(name, t)
                fused = conns[0] if conns and self.mode == "events" else None
                h = self._deliver(name, [c for c in conns if c is not fused], t, base)
                st = self.state[name]
                if fused is not None:
                    fsrc = self.ring[fused.source]
                    src = (fsrc, self.weights[fused.name], fsrc.shape[2], fused.delay, self.size[fused.source], 1)
                else:
                    src = (rt.dummy, rt.dummy, 0, 0, 1, 0)
                rt.launch(
                    "li_step",
                    B * p.n,
                    t,
                    B,
                    p.n,
                    h if h is not None else rt.dummy,
                    int(h is not None),
                    *src,
                    st["I"],
                    st["V"],
                    p.am,
                    p.as_,
                    p.g,
                    p.bias,
                    site=("step", name),
                )
                rec = {"V": st["V"], "I": st["I"]}
            out[name] = rec
        self.t += 1
        return out
