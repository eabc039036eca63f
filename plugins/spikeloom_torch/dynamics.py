"""The SPEC §3 dynamics on torch tensors: per-population constants, the LIF/ALIF and LI updates,
and two ways of running them.

:func:`run` runs a whole sequence group by group (see :mod:`spikeloom.plan`): the input a population
receives from inputs and earlier groups is one matrix product over all steps, and only the
connections inside a group are delivered step by step.  :class:`Stepper` advances every
population together one step at a time, as e-prop needs; it still delivers the inputs' spikes for
all steps at once.  Both compute every value with the reference's formulas, in the same order;
what may round differently is the order of sums of several matrix products, and products and sums
fused into one multiply-add (fewer kernels per step).
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from spikeloom.built import BuiltConnection, BuiltNetwork, BuiltPopulation
from spikeloom.plan import Plan

from . import devices
from .spikes import SPARSE_BELOW, SPARSE_STEP_MIN_WORK, SpikeEvents, SpikeTrain, StreamedInput

__all__ = [
    "PopConst",
    "StaticConsts",
    "SpikingState",
    "pop_consts",
    "spiking_step",
    "li_step",
    "run",
    "Stepper",
    "external_drive",
]

#: the positions of no spikes (what a connection delivers before its delay has passed)
_NO_SPIKES = np.zeros(0, dtype=np.int64)

#: the state variables :func:`run` can keep for every step (``refractory`` is internal: 1 while refractory)
STATE_VARS = ("V", "I", "a", "z", "refractory")

#: ``alloc(key, shape)``: an uninitialised tensor of the run's dtype and device (e.g. a
#: :class:`~.workspace.Workspace` buffer named ``key``); None allocates a new one
Alloc = Callable[[Hashable, tuple[int, ...]], torch.Tensor] | None


@dataclass(frozen=True)
class PopConst:
    """One population's constants as tensors ``[N]`` of the run's dtype and device."""

    name: str
    kind: str
    n: int
    reset: str | None
    delta: bool  # delta synapse: I = h exactly
    unit_gain: bool  # g == 1 (no scale_input): skip the multiplication, which changes no bit
    refractory: bool  # some neuron has a refractory period of at least one step
    alpha_mem: torch.Tensor
    alpha_syn: torch.Tensor
    g: torch.Tensor
    v_thresh: torch.Tensor | None
    rho: torch.Tensor | None
    beta: torch.Tensor | None
    n_ref: torch.Tensor | None  # int64
    bias: torch.Tensor | None

    @property
    def spiking(self) -> bool:
        return self.kind != "LI"


class StaticConsts:
    """The constants of a population that training never changes, moved to the device once.

    Decay factors are kept in float64 so that ``g = 1 - alpha_mem`` is computed in float64 and
    only then cast to the run's dtype, as the reference does.
    """

    def __init__(self, pop: BuiltPopulation, dtype: torch.dtype, device: torch.device) -> None:
        f64 = lambda a: torch.as_tensor(np.array(a, dtype=np.float64), device=device)  # noqa: E731
        cast = lambda a: None if a is None else f64(a).to(dtype)  # noqa: E731
        self.pop = pop
        self.alpha_mem64 = f64(pop.alpha_mem)
        self.alpha_syn64 = f64(pop.alpha_syn)
        self.v_thresh = cast(pop.params.get("v_thresh"))
        self.rho = cast(pop.rho)
        self.beta = cast(pop.params.get("beta"))
        self.has_ref = pop.n_ref is not None and bool(np.any(pop.n_ref > 0))
        self.n_ref = None if pop.n_ref is None else torch.as_tensor(np.array(pop.n_ref, dtype=np.int64), device=device)


def pop_consts(
    static: StaticConsts, params: dict[str, torch.Tensor], dtype: torch.dtype, track_refractory: bool = False
) -> PopConst:
    """Constants of one population; trained decay factors and the bias come from ``params``.

    Refractory counters are tracked only where some neuron has a refractory period (elsewhere they
    stay 0), unless ``track_refractory`` asks for them anyway (a given state may hold any counter).
    """
    pop = static.pop
    am = params.get(f"{pop.name}.alpha_mem")
    am64 = static.alpha_mem64 if am is None else am.to(torch.float64)
    asyn = params.get(f"{pop.name}.alpha_syn")
    as64 = static.alpha_syn64 if asyn is None else asyn.to(torch.float64)
    g = (1.0 - am64).to(dtype) if pop.scale_input else torch.ones(pop.n, dtype=dtype, device=am64.device)
    return PopConst(
        name=pop.name,
        kind=pop.kind,
        n=pop.n,
        reset=pop.reset,
        delta=pop.synapse == "delta",
        unit_gain=not pop.scale_input,
        refractory=static.n_ref is not None and (static.has_ref or track_refractory),
        alpha_mem=am64.to(dtype),
        alpha_syn=as64.to(dtype),
        g=g,
        v_thresh=static.v_thresh,
        rho=static.rho,
        beta=static.beta,
        n_ref=static.n_ref,
        bias=params.get(f"{pop.name}.bias"),
    )


@dataclass
class SpikingState:
    """State of a LIF/ALIF population between steps, each ``[B, N]``: ``V`` after the reset, ``z``
    the last spikes, ``ref`` the remaining refractory steps (int64, only with a refractory period)."""

    I: torch.Tensor
    V: torch.Tensor
    a: torch.Tensor | None
    z: torch.Tensor
    ref: torch.Tensor | None


def zero_spiking_state(p: PopConst, batch: int) -> SpikingState:
    z = torch.zeros((batch, p.n), dtype=p.alpha_mem.dtype, device=p.alpha_mem.device)
    ref = torch.zeros((batch, p.n), dtype=torch.int64, device=z.device) if p.refractory else None
    return SpikingState(I=z, V=z, a=z if p.kind == "ALIF" else None, z=z, ref=ref)


def spiking_step(
    p: PopConst,
    s: SpikingState,
    h: torch.Tensor,
    out: dict[str, torch.Tensor] | None = None,
    into: dict[str, torch.Tensor] | None = None,
) -> tuple[SpikingState, dict[str, torch.Tensor]]:
    """One LIF/ALIF step from summed input ``h`` ``[B, N]``: the new state and this step's values
    (``V`` before the reset; ``refractory`` only with a refractory period).

    ``out`` may give tensors ``[B, N]`` to write some of this step's values into (the slots of a
    recording); they are then the values returned.  ``into`` may give tensors ``[B, N]`` for the
    new state's ``I`` (where ``out`` has none) and ``V`` (after the reset), which may be those of
    ``s``: a caller that keeps nothing of a step but ``out`` reuses them from step to step instead
    of allocating two arrays per step.  Fused multiply-adds keep the kernel count per step small;
    they may round differently from the reference's separate products and sums.
    """
    out = out or {}
    into = into or {}
    I = h if p.delta else torch.addcmul(h, p.alpha_syn, s.I, out=out.get("I", into.get("I")))  # noqa: E741
    V = torch.addcmul(I if p.unit_gain else p.g * I, p.alpha_mem, s.V, out=out.get("V"))
    rec = {"V": V, "I": I}
    if p.kind == "ALIF":
        a = torch.addcmul(s.z, p.rho, s.a, out=out.get("a"))
        theta = torch.addcmul(p.v_thresh, p.beta, a)
        rec["a"] = a
    else:
        a = None
        theta = p.v_thresh
    z = out["z"] if "z" in out else torch.empty_like(V)
    torch.ge(V, theta, out=z)  # 1.0 / 0.0 in the run's dtype
    ref = None
    if p.refractory:
        refractory = s.ref > 0
        z.masked_fill_(refractory, 0)
        rec["refractory"] = refractory
        ref = torch.where(z > 0, p.n_ref, (s.ref - 1).clamp_min_(0))
    rec["z"] = z
    if p.reset == "subtract":
        V_after = torch.addcmul(V, p.v_thresh, z, value=-1, out=into.get("V"))
    else:
        V_after = torch.mul(V, 1 - z, out=into.get("V"))
    for k, buf in out.items():  # values that were not computed in place
        if k in rec and rec[k] is not buf:
            buf.copy_(rec[k])
            rec[k] = buf
    return SpikingState(I=I, V=V_after, a=a, z=z, ref=ref), rec


def li_step(p: PopConst, I_prev: torch.Tensor, V_prev: torch.Tensor, h: torch.Tensor):
    """One LI step: ``(I, V)``."""
    I = h if p.delta else torch.addcmul(h, p.alpha_syn, I_prev)  # noqa: E741
    u = I + p.bias
    return I, torch.addcmul(u if p.unit_gain else p.g * u, p.alpha_mem, V_prev)


def external_drive(
    conns: tuple[BuiltConnection, ...] | list[BuiltConnection],
    spikes: dict[str, torch.Tensor | SpikeTrain],
    weights: dict[str, torch.Tensor],
    n: int,
    alloc: Alloc = None,
    key: Hashable = None,
) -> torch.Tensor | None:
    """``h[t] = sum_c s_c[t - d_c] @ W_c`` for all steps at once, ``[T, B, n]`` (None without
    connections); the result is ``alloc(key, ...)`` when ``alloc`` is given."""
    h, filled = None, 0  # h[:filled] holds values; the rest is not yet written
    for c in sorted(conns, key=lambda c: c.delay):  # the shortest delay first writes the most rows
        s, W = spikes[c.source], weights[c.name]
        T, B, n_pre = s.shape
        if h is None:
            shape = (T, B, n)
            h = torch.empty(shape, dtype=W.dtype, device=W.device) if alloc is None else alloc(key, shape)
        d = min(c.delay, T)
        if filled < d:
            h[filled:d].zero_()
        if d < T:
            rows = h[d:].view(-1, n)
            accumulate = filled == T
            if isinstance(s, (SpikeTrain, SpikeEvents)):
                s.deliver(d, W, rows, accumulate)
            elif accumulate:
                rows.addmm_(s[: T - d].reshape(-1, n_pre), W)
            else:
                torch.mm(s[: T - d].reshape(-1, n_pre), W, out=rows)
        filled = T
    return h


def _run_li(p: PopConst, drive: torch.Tensor | None, T: int, B: int, keep: set[str]) -> dict[str, torch.Tensor]:
    dtype, device = p.alpha_mem.dtype, p.alpha_mem.device
    h = drive if drive is not None else torch.zeros((T, B, p.n), dtype=dtype, device=device)
    if p.delta:
        I_all = h
    else:  # I[t] = alpha_syn I[t-1] + h[t]
        I_all = torch.empty_like(h)
        I = torch.zeros((B, p.n), dtype=dtype, device=device)  # noqa: E741
        for h_t, I_t in zip(h.unbind(0), I_all.unbind(0), strict=True):
            I = torch.addcmul(h_t, p.alpha_syn, I, out=I_t)  # noqa: E741
    u = I_all + p.bias
    if not p.unit_gain:
        u = p.g * u
    V_all = torch.empty_like(u)
    V = torch.zeros((B, p.n), dtype=dtype, device=device)
    for u_t, V_t in zip(u.unbind(0), V_all.unbind(0), strict=True):
        V = torch.addcmul(u_t, p.alpha_mem, V, out=V_t)
    out = {"V": V_all}
    if "I" in keep:
        out["I"] = I_all
    return out


def spike_positions(s: torch.Tensor) -> tuple | None:
    """``(flat indices, columns, where each batch row starts)`` of the non-zero entries of spikes
    ``s`` ``[B, N]`` (CPU), the last two as tensors for ``embedding_bag``; None when at least
    ``SPARSE_BELOW`` of them are non-zero.  With Numba, for at least
    :data:`.chunk_compiled.MIN_WORK` entries of float32/float64, one compiled scan that skips
    all-zero words (:func:`.block_kernels.step_positions`; about a fifth of the numpy path's time)."""
    B, n = s.shape
    limit = math.ceil(SPARSE_BELOW * s.numel())  # this many or more: not sparse
    x = s.numpy()
    if _compiled_scan(x):
        from .block_kernels import step_positions

        flat = np.empty(limit, dtype=np.int64)
        cols = np.empty(limit, dtype=np.int64)
        starts = np.empty(B, dtype=np.int64)
        bits = x.reshape(-1).view(np.uint32 if x.dtype == np.float32 else np.uint64)
        per_word = 8 // x.itemsize
        words = bits[: bits.size // per_word * per_word].view(np.uint64)
        k = step_positions(bits, words, per_word, n, flat, cols, starts)
        if not 0 <= k < limit:
            return None
        return flat[:k], torch.from_numpy(cols[:k]), torch.from_numpy(starts)
    # numpy's vectorised comparison and bool nonzero: under half of torch.nonzero's time here
    flat = np.flatnonzero(x.reshape(-1) != 0)
    if flat.size >= limit:
        return None
    starts = np.searchsorted(flat, np.arange(B) * n)
    return flat, torch.from_numpy(flat % n), torch.from_numpy(starts)


def _compiled_scan(x: np.ndarray) -> bool:
    """Whether :func:`spike_positions` scans ``x`` compiled."""
    from . import chunk_compiled

    return (
        chunk_compiled.AVAILABLE
        and x.size >= chunk_compiled.MIN_WORK
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and sys.byteorder == "little"
    )


def _run_spiking_group(
    members: list[PopConst],
    plan: Plan,
    drives: dict[str, torch.Tensor | None],
    weights: dict[str, torch.Tensor],
    T: int,
    B: int,
    keep: dict[str, set[str]],
    alloc: Alloc = None,
    events: dict[str, SpikeEvents] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Run one group of LIF/ALIF populations step by step.  On the CPU, a connection inside the
    group with enough work (``SPARSE_STEP_MIN_WORK``) is delivered from the positions of the
    spikes while they stay sparse; the positions found are kept, as :class:`SpikeEvents` in
    ``events``, for the products that later use the same spikes."""
    dtype, device = members[0].alpha_mem.dtype, members[0].alpha_mem.device
    if alloc is None:
        alloc = lambda key, shape: torch.empty(shape, dtype=dtype, device=device)  # noqa: E731
    state = {p.name: zero_spiking_state(p, B) for p in members}
    out, slots = {}, {}
    for p in members:
        names = {"z"} | (keep.get(p.name, set()) & {"V", "I", "a", "refractory"})
        if p.kind != "ALIF":
            names.discard("a")
        if not p.refractory:  # never refractory: callers treat a missing entry as all zero
            names.discard("refractory")
        out[p.name] = {v: alloc(("record", p.name, v), (T, B, p.n)) for v in names}
        # per-step views, made once: out[name][v][t] is slots[name][t][v]
        views = {v: buf.unbind(0) for v, buf in out[p.name].items()}
        slots[p.name] = [{v: views[v][t] for v in names} for t in range(T)]
    spikes = {p.name: slots[p.name] for p in members}
    zeros = {p.name: torch.zeros((B, p.n), dtype=dtype, device=device) for p in members}
    # the state's I (where not recorded) and V after the reset, overwritten from step to step
    into = {p.name: {v: torch.empty((B, p.n), dtype=dtype, device=device) for v in ("I", "V")} for p in members}
    drive_t = {name: (None if d is None else d.unbind(0)) for name, d in drives.items()}
    on_cpu = devices.host_paths(device)
    # per source: by step, the flat indices of its spikes [B, N] and, for the products, their columns
    # and where each batch row's spikes start (None once a step is not sparse)
    found: dict[str, dict[int, tuple] | None] = {p.name: ({} if on_cpu else None) for p in members}

    def positions(name: str, ts: int, s: torch.Tensor) -> tuple | None:
        seen = found[name]
        if seen is None:
            return None
        pos = seen.get(ts)
        if pos is None:
            pos = spike_positions(s)
            if pos is None:
                found[name] = None
                return None
            seen[ts] = pos
        return pos

    internal = {
        p.name: [
            (c.delay, c.source, spikes[c.source], weights[c.name], B * c.mask.size >= SPARSE_STEP_MIN_WORK)
            for c in plan.internal[p.name]
        ]
        for p in members
    }
    for t in range(T):
        for p in members:
            drive = drive_t[p.name]
            h = drive[t] if drive is not None else None
            for d, src_name, src, W, sparse in internal[p.name]:
                if t < d:
                    continue
                s = src[t - d]["z"]
                pos = positions(src_name, t - d, s) if sparse else None
                if pos is None:  # the drive is this function's own: add to it in place
                    h = torch.mm(s, W) if h is None else h.addmm_(s, W)
                else:  # row b of the product: the sum of the rows of W that b's spikes select
                    _, cols, starts = pos
                    h_s = torch.nn.functional.embedding_bag(cols, W, starts, mode="sum")
                    h = h_s if h is None else h.add_(h_s)
            if h is None:
                h = zeros[p.name]
            state[p.name], _ = spiking_step(p, state[p.name], h, slots[p.name][t], into[p.name])
    if events is not None:
        for name, seen in found.items():
            if seen:
                covered = 0
                while covered in seen:
                    covered += 1
                events[name] = SpikeEvents(out[name]["z"], [seen[ts][0] for ts in range(covered)], covered)
    return out


def run(
    plan: Plan,
    pops: dict[str, PopConst],
    weights: dict[str, torch.Tensor],
    inputs: dict[str, SpikeTrain],
    keep: dict[str, set[str]],
    alloc: Alloc = None,
    events: dict[str, SpikeEvents] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Simulate all steps of ``inputs`` (``{name: [T, B, N]}``) from zero state.

    ``keep`` names, per population, the variables to return for every step (``V`` before the
    reset); spikes ``z`` of every LIF/ALIF population are always returned.  With ``alloc``, the
    large arrays (recordings of LIF/ALIF populations, feed-forward drives) come from it.
    ``events`` receives the spike positions found on the way (see :func:`_run_spiking_group`).
    """
    T, B = next(iter(inputs.values())).shape[:2]
    spikes = dict(inputs)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for group in plan.groups:
        drives = {
            name: external_drive(plan.external[name], spikes, weights, pops[name].n, alloc, ("drive", name))
            for name in group
        }
        if not pops[group[0]].spiking:  # an LI population never feeds anything: it is a group alone
            name = group[0]
            out[name] = _run_li(pops[name], drives[name], T, B, keep.get(name, set()))
            continue
        found: dict[str, SpikeEvents] = {}
        res = _run_spiking_group([pops[n] for n in group], plan, drives, weights, T, B, keep, alloc, found)
        out.update(res)
        spikes.update({name: found.get(name, res[name]["z"]) for name in group})
        if events is not None:
            events.update(found)
    return out


class _StepOfBlock(Mapping):
    """Step ``i`` of a block's values ``{variable: [L, B, N]}``, each ``[B, N]`` view made only
    when asked for (most steps only their spikes are)."""

    def __init__(self, values: dict[str, torch.Tensor], i: int) -> None:
        self.values, self.i = values, i

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.values[key][self.i]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


class Stepper:
    """All populations advanced together, one step per :meth:`step` (the reference's loop).

    The inputs' contributions are delivered for all steps at once; connections from LIF/ALIF
    populations read a history of their last ``delay`` spike vectors.  Streamed inputs
    (:class:`StreamedInput`) are delivered one step at a time, or with ``block_steps > 0`` that
    many steps at a time (one product per block, from the positions of the spikes on the CPU,
    :class:`SpikeTrain`; device memory still does not grow with ``T``).  After a step,
    :meth:`delivered` gives the presynaptic spikes ``s[t - delay]`` a connection used.

    With ``fuse`` and ``block_steps > 0``, a LIF/ALIF population whose only input from spiking
    populations is one recurrent connection from itself runs a block of steps in one compiled call
    where it can (:mod:`.block_forward`: CPU, Numba); its steps then give ``V``, ``z``, ``a`` and
    ``refractory`` (not ``I``; ``psi`` in place of ``V`` and ``a`` for a population that
    ``surrogates`` gives a surrogate to compute in the call), views that stay valid while a
    consumer is within the longest delay of the network of them (:func:`.block_forward.slots_needed`); :meth:`delivered` views of
    their spikes from further back may have been overwritten, so their positions
    (:meth:`delivered_positions`, always known for them) are what a later reader takes.
    ``buffers(key, shape, dtype)`` gives kept buffers for those blocks (None: new ones).
    """

    def __init__(
        self,
        built: BuiltNetwork,
        pops: dict[str, PopConst],
        weights: dict[str, torch.Tensor],
        inputs: dict[str, SpikeTrain],
        block_steps: int = 0,
        fuse: bool = False,
        buffers: Callable[[Hashable, tuple[int, ...], torch.dtype], torch.Tensor] | None = None,
        surrogates: Mapping[str, object] | None = None,
    ) -> None:
        self.built = built
        self.pops = pops
        self.weights = weights
        self.inputs = inputs
        self.T, self.B = next(iter(inputs.values())).shape[:2]
        # streamed inputs are read one step at a time, like spiking sources (see StreamedInput)
        streamed = {name for name, s in inputs.items() if isinstance(s, StreamedInput)}
        self.streamed = {name: inputs[name] for name in streamed}
        self.drive = {
            name: external_drive(
                [c for c in built.incoming(name) if c.source in inputs and c.source not in streamed],
                inputs,
                weights,
                p.n,
            )
            for name, p in pops.items()
        }
        self.block_steps = int(block_steps) if streamed else 0
        # streamed connections delivered a block of steps at a time, by target population
        self.blocked = {
            name: [c for c in built.incoming(name) if c.source in streamed] if self.block_steps else [] for name in pops
        }
        self._block: dict[str, tuple[int, torch.Tensor]] = {}  # population: (first step, [L, B, N])
        # by blocked connection: the positions of its spikes in its last two blocks (first step: flat
        # indices into [L, B, N_pre] and values, or None where the block was dense)
        self._block_spikes: dict[str, dict[int, tuple | None]] = {}
        self.recurrent = {
            name: [
                c
                for c in built.incoming(name)
                if c.source not in inputs or (c.source in streamed and not self.block_steps)
            ]
            for name in pops
        }
        depth: dict[str, int] = {}
        for c in built.connections:
            if c.source not in inputs or (c.source in streamed and not self.block_steps):
                depth[c.source] = max(depth.get(c.source, 0), c.delay)
        some = next(iter(weights.values()))
        self._zeros = {
            name: torch.zeros((self.B, p.n), dtype=some.dtype, device=some.device)
            for name, p in {**{q.name: q for q in built.inputs}, **pops}.items()
        }
        self.history = {src: deque([self._zeros[src]] * d, maxlen=d) for src, d in depth.items()}
        self._depth = depth
        # on the CPU: the positions of the recent spikes of spiking sources, by source and step
        # (None for a step with too many spikes); the products with those spikes use them, and
        # e-prop's chunks read them (:meth:`delivered_positions`)
        on_cpu = devices.host_paths(some.device)
        self._spike_pos: dict[str, dict[int, tuple | None]] = {
            src: {} for src in depth if on_cpu and src in pops and pops[src].spiking
        }
        self.state = {name: zero_spiking_state(p, self.B) for name, p in pops.items() if p.spiking}
        # populations run a block at a time compiled (the latest of their kept blocks is the current one)
        self.fused: dict[str, object] = {}
        self._fused_kept: dict[str, dict[int, dict[str, torch.Tensor]]] = {}  # valid blocks by first step
        self._fed: dict[str, tuple[int, torch.Tensor]] = {}  # connections from them: (first step, products)
        if fuse and self.block_steps and on_cpu:
            from . import block_forward

            longest = max((c.delay for c in built.connections), default=1)
            slots = block_forward.slots_needed(self.block_steps, longest)
            for name, p in pops.items():
                own = self.recurrent[name]
                if not block_forward.available(p, self.B) or len(own) > 1 or any(c.source != name for c in own):
                    continue
                buf = None
                if buffers is not None:
                    buf = lambda key, shape, dtype, name=name: buffers(("block", name, key), shape, dtype)  # noqa: E731
                c = own[0] if own else None
                # one blocked input of 0/1 spikes: delivered inside the compiled call, from its positions
                inp = self.blocked[name][0] if len(self.blocked[name]) == 1 else None
                self.fused[name] = block_forward.BlockRunner(
                    p,
                    self.B,
                    weights[c.name] if c else None,
                    c.delay if c else 0,
                    self.block_steps,
                    slots,
                    buf,
                    W_in=weights[inp.name] if inp is not None else None,
                    surrogate=(surrogates or {}).get(name),
                )
        self.li_state = {name: (self._zeros[name], self._zeros[name]) for name, p in pops.items() if not p.spiking}
        self._delivered: dict[str, torch.Tensor] = {}
        self.t = -1

    def delivered(self, c: BuiltConnection) -> torch.Tensor:
        """``s_source[t - delay]`` ``[B, N_pre]`` for the step just taken."""
        if c.source in self.inputs and c.source not in self.streamed:
            return self.inputs[c.source].dense[self.t - c.delay] if self.t >= c.delay else self._zeros[c.source]
        if c.source in self.streamed and self.block_steps:
            return self.streamed[c.source].at(self.t - c.delay) if self.t >= c.delay else self._zeros[c.source]
        return self._delivered[c.name]

    def delivered_positions(self, c: BuiltConnection) -> np.ndarray | None:
        """The flat indices (ascending) of the non-zero entries of :meth:`delivered` ``[B, N_pre]``
        for a connection from a spiking population on the CPU; None where they are not known."""
        ts = self.t - c.delay
        if ts < 0:
            return _NO_SPIKES if c.source in self._spike_pos else None
        pos = self._spike_pos.get(c.source, {}).get(ts)
        return None if pos is None else pos[0]

    def _positions(self, src: str, ts: int, s: torch.Tensor) -> tuple | None:
        """``(flat indices, columns, where each batch row starts)`` of the spikes ``s = z_src[ts]``
        while fewer than ``SPARSE_BELOW`` of them are non-zero; None otherwise or off the CPU."""
        seen = self._spike_pos.get(src)
        if seen is None:
            return None
        if ts not in seen:
            seen[ts] = spike_positions(s)
            for old in [k for k in seen if k < ts - self._depth[src]]:
                del seen[old]
        return seen[ts]

    def block_spikes(self, c: BuiltConnection, start: int) -> tuple | None:
        """``(flat indices into [L, B, N_pre], values or None, where each row (k, b) starts or
        None)`` of the spikes a streamed connection delivered in the block that began at step
        ``start`` (one of the last two), where that block was delivered from the spikes' positions;
        None otherwise."""
        return self._block_spikes.get(c.name, {}).get(start)

    def _blocked_drive(self, name: str, t: int) -> torch.Tensor | None:
        """``sum over the blocked connections c of x_c[t - d_c] @ W_c`` ``[B, N]``, computed for
        ``block_steps`` steps at once when ``t`` leaves the current block."""
        if not self.blocked[name]:
            return None
        start, h = self._blocked_block(name, t)
        return h[t - start]

    def _blocked_block(self, name: str, t: int) -> tuple[int, torch.Tensor]:
        """``(first step, drive [L, B, N])`` of the block of blocked connections' drive that holds ``t``."""
        conns = self.blocked[name]
        start, h = self._block.get(name, (None, None))
        if start is None or t >= start + h.shape[0]:
            L = min(self.block_steps, self.T - t)
            n = self.pops[name].n
            W0 = self.weights[conns[0].name]
            h = torch.zeros((L, self.B, n), dtype=W0.dtype, device=W0.device)
            for c in conns:
                lo, hi = max(t - c.delay, 0), t + L - c.delay
                if hi <= lo:
                    continue
                src = self.streamed[c.source]
                part = SpikeTrain(src.host[lo:hi], src.device, src.dtype)
                lead = L - (hi - lo)  # steps before the input's first step reaches the connection
                rows = h[lead:].view(-1, n)
                part.deliver(0, self.weights[c.name], rows, accumulate=True)
                pos = part.positions
                self._keep_block_spikes(
                    c, t, None if pos is None else (pos.flat + lead * self.B * pos.n, pos.vals, None)
                )
            start = t
            self._block[name] = (start, h)
        return start, h

    def _scanned_block(self, c: BuiltConnection, t: int, L: int) -> tuple | None:
        """``(flat, bounds)`` of the spikes the streamed connection ``c`` delivers at steps
        ``t .. t+L-1``, ``[L, B, N_pre]`` (:func:`.block_forward.scan`; ``(None, None)``: none
        reach them), kept for :meth:`block_spikes` while sparse enough for e-prop's compiled
        chunks; None where the input is not a bool array (then it is delivered as a product)."""
        from . import block_forward, chunk_compiled

        src = self.streamed[c.source]
        lo, hi = max(t - c.delay, 0), t + L - c.delay
        if hi <= lo:
            return None, None
        found = block_forward.scan(src.host[lo:hi])
        if found is None:
            return None
        flat, bounds = found
        lead = L - (hi - lo)  # steps before the input's first step reaches the connection
        n = src.shape[2]
        if lead:
            flat = flat + lead * self.B * n
            bounds = np.concatenate([np.zeros(lead * self.B, dtype=np.int64), bounds])
        sparse = flat.size < chunk_compiled.SPARSE_BELOW * L * self.B * n
        self._keep_block_spikes(c, t, (flat, None, bounds) if sparse else None)
        return flat, bounds

    def _keep_block_spikes(self, c: BuiltConnection, t: int, found: tuple | None) -> None:
        """Keep what :meth:`block_spikes` gives for the block of ``c`` that begins at ``t`` (this
        block and the one before it)."""
        kept = self._block_spikes.setdefault(c.name, {})
        kept[t] = found
        for old in [k for k in kept if k < t - self.block_steps]:
            del kept[old]

    def block_values(self, name: str, start: int) -> dict[str, torch.Tensor] | None:
        """``{variable: [L, B, N]}`` of the block that began at step ``start`` of a population run a
        block at a time (:attr:`fused`), while its values are still valid; None otherwise."""
        return self._fused_kept.get(name, {}).get(start)

    def _from_fused(self, c: BuiltConnection, t: int) -> torch.Tensor:
        """``z_src[t - delay] @ W`` ``[B, N]`` for a connection from a population run a block at a
        time into one stepped with torch operations: the products for the steps whose spikes are
        already known are made at once (one matrix product per block of the source's values)."""
        start, prod = self._fed.get(c.name, (None, None))
        if start is None or t >= start + prod.shape[0]:
            src, W = c.source, self.weights[c.name]
            kept = self._fused_kept[src]
            first = max(kept)  # the source's current block
            lo = t - c.delay  # source steps lo .. lo + m - 1
            m = min(self.block_steps, first + kept[first]["z"].shape[0] - lo, self.T - t)
            prod = torch.zeros((m, self.B, W.shape[1]), dtype=W.dtype, device=W.device)
            k = max(lo, 0)  # steps before the first deliver nothing
            while k < lo + m:
                b0 = max(b for b in kept if b <= k)
                z = kept[b0]["z"][k - b0 : min(lo + m, b0 + kept[b0]["z"].shape[0]) - b0]
                rows = prod[k - lo : k - lo + z.shape[0]]
                torch.mm(z.reshape(-1, z.shape[2]), W, out=rows.view(-1, W.shape[1]))
                k += z.shape[0]
            start = t
            self._fed[c.name] = (start, prod)
        return prod[t - start]

    def _fused_step(self, name: str, t: int) -> Mapping[str, torch.Tensor]:
        """Step ``t`` of a population run a block at a time (:attr:`fused`), running the next
        block when ``t`` leaves the current one."""
        for c in self.recurrent[name]:
            self._delivered[c.name] = self.history[c.source][c.delay - 1]
        kept = self._fused_kept.setdefault(name, {})
        start = max(kept) if kept else None
        if start is None or t >= start + kept[start]["z"].shape[0]:
            L = min(self.block_steps, self.T - t)
            drive = self.drive[name]
            hext = None if drive is None else drive[t : t + L]
            runner = self.fused[name]
            inp = self._scanned_block(self.blocked[name][0], t, L) if runner.W_in is not None else None
            if self.blocked[name] and inp is None:
                _, blocked = self._blocked_block(name, t)
                hext = blocked if hext is None else hext + blocked
            elif inp is not None and inp[0] is None:  # no input spike reaches the block
                inp = None
            past = list(self.history[name])[: runner.delay] if name in self.history else []
            start = t
            kept[start] = runner.run(L, hext, past, inp)
            for old in sorted(kept)[: -runner.slots]:  # the last `slots` blocks are valid
                del kept[old]
            seen = self._spike_pos.get(name)
            if seen is not None:
                for old in [k for k in seen if k < t - self._depth[name]]:
                    del seen[old]
                seen.update((t + k, pos) for k, pos in enumerate(runner.positions))
        return _StepOfBlock(kept[start], t - start)

    def step(self) -> dict[str, dict[str, torch.Tensor]]:
        """Advance by one step; returns ``{population: {variable: [B, N]}}`` (``V`` before the reset)."""
        self.t += 1
        t = self.t
        out = {}
        for name, p in self.pops.items():
            if name in self.fused:
                out[name] = self._fused_step(name, t)
                continue
            drive = self.drive[name]
            h = drive[t] if drive is not None else None
            blocked = self._blocked_drive(name, t)
            if blocked is not None:
                h = blocked if h is None else h + blocked
            for c in self.recurrent[name]:
                s = self._delivered[c.name] = self.history[c.source][c.delay - 1]
                if t < c.delay and c.source not in self.streamed:
                    continue  # nothing delivered yet
                if c.source in self.fused:  # its block is known ahead: one product per block
                    h_s = self._from_fused(c, t)
                    h = h_s if h is None else h + h_s
                    continue
                W = self.weights[c.name]
                pos = self._positions(c.source, t - c.delay, s) if c.source in self._spike_pos else None
                if pos is not None and self.B * W.numel() >= SPARSE_STEP_MIN_WORK:
                    # row b of the product: the sum of the rows of W that b's spikes select
                    h_s = torch.nn.functional.embedding_bag(pos[1], W, pos[2], mode="sum")
                    h = h_s if h is None else h + h_s
                else:
                    h = s @ W if h is None else torch.addmm(h, s, W)
            if h is None:
                h = self._zeros[name]
            if p.spiking:
                self.state[name], out[name] = spiking_step(p, self.state[name], h)
            else:
                I, V = li_step(p, *self.li_state[name], h)  # noqa: E741
                self.li_state[name] = (I, V)
                out[name] = {"V": V, "I": I}
        for src, buf in self.history.items():
            buf.appendleft(self.streamed[src].at(t) if src in self.streamed else out[src]["z"])
        return out
