"""e-prop on the device (SPEC §6): the reference's online algorithm, with the per-synapse work in
fused kernels (``eprop_synapse_chunk`` and ``eprop_synapse_step``, see ``eprop.cu``).

Per step: the network advances (:class:`~.forward.Stepper`, ring-buffered spike history), the
per-step loss and its ``delta = dloss/dY[t]`` are formed on the device (``eprop_loss_step``), and
the readout's weights and bias get their exact gradient from filtered spikes
(``eprop_out_grad``).  For every trainable connection into a trained population a kernel updates
the eligibility traces, filters ``e`` with the readout's impulse response and accumulates the
gradient: where the population has one readout connection of delay 1 and the readout shares its
time constants, for ``EPROP_STEPS`` steps at once (the forward pass does not depend on the traces,
so the steps' surrogates, learning signals and presynaptic spikes are stacked first); otherwise
every step.  Traces that every target neuron shares stay one per presynaptic neuron (in chunks,
advanced for the chunk's steps by ``eprop_pre_chunk`` before the synapses).  Inputs are
moved to the device ``INPUT_CHUNK`` steps at a time: memory does not grow with ``T``.
"""

from __future__ import annotations

import math

import numpy as np

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, feedback_matrices, trained_populations

from .bptt import surrogate_args
from .consts import PopConst
from .forward import Stepper
from .kernel_specs import EP_FLAGS, SYNAPSE_TILES, synapse_chunk_name
from .runtime import Runtime

__all__ = [
    "eprop_loss_and_grads",
    "RATE_TAU",
    "INPUT_CHUNK",
    "EPROP_STEPS",
    "EPROP_PRE_TILE",
    "EPROP_TILE_GROUP",
    "SHARED_PRE_TRACES",
    "SPECIALISED_SYNAPSES",
    "batch_chunk",
    "pre_tile",
    "synapse_chunk_threads",
    "tile_group",
]

#: time constant of the online rate estimate of the regulariser, ms (GeNN's value)
RATE_TAU = 500.0

#: steps of input copied to the device at once (memory: this many ``[B, N_in]`` slices)
INPUT_CHUNK = 32

#: steps per launch of ``eprop_synapse_chunk`` (where it applies: one readout connection of delay
#: 1, readout time constants shared); its per-step inputs are kept for this many steps.  The
#: per-synapse arrays are read and written once per launch: more steps, less of that traffic, for
#: ``[EPROP_STEPS, B, N]`` buffers per population and as many more slots in the spike rings
EPROP_STEPS = 64

#: presynaptic neurons per thread of ``eprop_synapse_chunk`` (one of ``kernel_specs.SYNAPSE_TILES``):
#: what a step reads per postsynaptic neuron (``psi``, the learning signal, ...) is loaded once for
#: that many synapses; the results do not depend on it (each synapse's sums run in the same order)
EPROP_PRE_TILE = 4

#: warps of ``eprop_synapse_chunk`` (32 postsynaptic neurons each) that take the same 32 neurons
#: for consecutive tiles: with as many warps per block (``launch.BLOCK`` = 256 threads: 8), the
#: block's warps read the same per-neuron values (``psi``, the learning signal) at each step, from
#: the L1 cache after the first; the results do not depend on it
EPROP_TILE_GROUP = 8

#: where every target neuron shares the presynaptic traces eps_I and eps_v, advance them once per
#: presynaptic neuron for a chunk of steps (``eprop_pre_chunk``) instead of in every synapse's
#: thread of ``eprop_synapse_chunk``; the results do not depend on it (the same operations)
SHARED_PRE_TRACES = True

#: launch the instantiation of ``eprop_synapse_chunk`` that knows the flags of
#: ``kernel_specs.SYNAPSE_FIXED_FLAGS`` (regulariser, delta-synapse readout, readout gain 1) when
#: compiling, so that its loop over the synapses tests none of them; the results do not depend on
#: it (the same operations)
SPECIALISED_SYNAPSES = True

#: the per-synapse kernels split the batch into at most this many chunks (one thread per synapse
#: and chunk, one partial gradient per chunk), of at least BATCH_CHUNK_MIN examples each
BATCH_CHUNKS_MAX = 32
BATCH_CHUNK_MIN = 8


def batch_chunk(B: int) -> tuple[int, int]:
    """``(examples per chunk, chunks)`` for a batch of ``B``."""
    bc = max(BATCH_CHUNK_MIN, -(-B // BATCH_CHUNKS_MAX))
    bc = min(bc, B)
    return bc, -(-B // bc)


def tile_group() -> int:
    """``EPROP_TILE_GROUP``, checked: a positive int."""
    group = EPROP_TILE_GROUP
    if not (isinstance(group, int) and not isinstance(group, bool) and group >= 1):
        raise ValueError(f"EPROP_TILE_GROUP: must be an int >= 1, got {group!r}")
    return group


def synapse_chunk_threads(chunks: int, n_pre: int, n_post: int, tile: int, group: int) -> int:
    """Threads ``eprop_synapse_chunk`` covers: per batch chunk, warps of 32 postsynaptic neurons
    times ``tile``-wide tiles of the presynaptic ones, both rounded up to whole groups."""
    tiles = -(-n_pre // tile)
    return chunks * -(-tiles // group) * group * -(-n_post // 32) * 32


def pre_tile() -> int:
    """``EPROP_PRE_TILE``, checked: one of the tiles the kernel is instantiated for."""
    tile = EPROP_PRE_TILE
    if not (isinstance(tile, int) and tile in SYNAPSE_TILES):
        raise ValueError(f"EPROP_PRE_TILE: must be one of {', '.join(map(str, SYNAPSE_TILES))}, got {tile!r}")
    return tile


def _padded_zeros(rt, shape: tuple) -> object:
    """Zeros of ``shape``, a view of one allocation with ``max(SYNAPSE_TILES) - 1`` more: the
    threads of ``eprop_synapse_chunk`` that take a last, partial tile of presynaptic neurons read
    that far past the end of the array (values they do not use)."""
    n = int(np.prod(shape))
    return rt.zeros((n + max(SYNAPSE_TILES) - 1,))[:n].reshape(shape)


def _shared(host: np.ndarray) -> bool:
    return bool(np.all(host == host[0]))


def _chunk_step(rt, st, t, T, r, sim, feedback, deltas, rule, rate_decay, rate_target) -> None:
    """Step ``t`` of a population whose synapses run in chunks: stack the step's inputs of
    ``eprop_synapse_chunk`` (its ``psi`` is already in place; the readout's ``delta`` of the step
    is in ``deltas[t % K]``, 0 outside the loss window; the delivered presynaptic spikes stay in
    the stepper's rings, which keep ``K - 1`` more steps) and, after the last step of a chunk,
    form the chunk's learning signals in one product and launch the kernel."""
    xp, K, p = rt.xp, st["K"], st["p"]
    q = t % K
    if st["z_buf"] is not rt.dummy:
        st["z_buf"][q + 1][...] = r["z"]
    if rule.c_reg:
        st["rate"] = rate_decay * st["rate"] + (1 - rate_decay) * r["z"]
        xp.subtract(st["rate"], rate_target, out=st["R_buf"][q])
    if q < K - 1 and t < T - 1:
        return
    (rc,) = st["to_out"]
    steps, B = q + 1, deltas.shape[1]
    # the learning signals L[k] = delta[k] B^T of the chunk's steps, one product
    rt.gemm(
        deltas[:steps].reshape(steps * B, -1),
        feedback[rc.name],
        st["sig_buf"][:steps].reshape(steps * B, p.n),
        trans_w=True,
        accumulate=False,
    )
    flags = st["flags"] | (EP_FLAGS["has_R"] if rule.c_reg else 0)
    bc, n_chunks = batch_chunk(B)
    tile, group = pre_tile(), tile_group()
    for tr in st["traces"].values():
        eb_I, eb_V = tr["ebar"][rc.name]
        c = tr["c"]
        slots = sim.size[c.source]  # the chunk's step t - q delivered the spikes of step t - q - delay
        ring = ((t - q - c.delay) % slots, slots, sim.ring[c.source])  # (base slot, slots, ring)
        # the presynaptic traces (old and new) and the constants that advance them
        pre_traces = (*tr["epsI"], *tr["epsv"], p.am, p.as_, p.g)
        shared = st["shared"]
        kernel = synapse_chunk_name(tile, shared, flags if SPECIALISED_SYNAPSES else None)
        if shared:  # the presynaptic traces of the chunk's steps, once per presynaptic neuron
            rt.launch("eprop_pre_chunk", B * tr["n_pre"], B, tr["n_pre"], q + 1, *ring, *pre_traces, tr["ev_hist"])
            ring = (0, q + 2, tr["ev_hist"])
        rt.launch(
            kernel,
            synapse_chunk_threads(n_chunks, tr["n_pre"], p.n, tile, group),
            B,
            bc,
            tr["n_pre"],
            p.n,
            q + 1,
            flags,
            *ring[:2],  # base slot, slots
            group,
            ring[2],
            *pre_traces,
            p.rho,
            p.beta,
            st["psi_buf"],
            st["z_buf"],
            tr["eps_I"],
            tr["eps_v"],
            tr["eps_a"],
            st["k_as"],
            st["k_am"],
            st["k_g"],
            eb_I,
            eb_V,
            st["sig_buf"],
            st["R_buf"],
            rule.c_reg / B,
            tr["grad"],
        )
        tr["epsI"].reverse()
        tr["epsv"].reverse()
    st["psi_buf"][0][...] = st["psi_buf"][q + 1]
    if st["z_buf"] is not rt.dummy:
        st["z_buf"][0][...] = st["z_buf"][q + 1]


def eprop_loss_and_grads(
    rt: Runtime,
    built: BuiltNetwork,
    pops: dict[str, PopConst],
    weights: dict,
    params: dict,
    masks: dict,
    rule: EProp,
    readout: Readout,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    mode: str = "events",
    chunk: int | None = None,
    observe=None,
):
    """``(loss, grads by trainable name as device arrays, predictions)``; ``inputs`` stay on the host
    and are copied to the device ``chunk`` steps at a time (default ``INPUT_CHUNK``).  ``observe`` (if given) is called at
    the end with the spikes of the last steps that the stepper's rings still hold
    (:meth:`~.forward.Stepper.recent_spikes`)."""
    xp, dt = rt.xp, rt.dtype
    T, B = next(iter(inputs.values())).shape[:2]
    chunk = max(1, min(int(INPUT_CHUNK if chunk is None else chunk), T))
    bc, n_chunks = batch_chunk(B)
    # the rings keep EPROP_STEPS - 1 more steps: the synapse chunks read their presynaptic spikes there
    sim = Stepper(rt, built, pops, weights, B, mode, chunk=chunk, keep=max(EPROP_STEPS - 1, 0))
    out_name = readout.population
    out = pops[out_name]
    n_out = out.n
    window = np.zeros(T, dtype=bool)
    window[readout.steps(T)] = True
    n_window = int(window.sum())
    hot = rt.asarray(np.eye(n_out, dtype=np.float64)[np.asarray(labels, dtype=np.int64)])

    o_am_h, o_as_h, o_g_h = rt.host(out.am), rt.host(out.as_), rt.host(out.g)
    hetero = not (_shared(o_am_h) and _shared(o_as_h) and _shared(o_g_h))
    r_delta, r_unit = bool(np.all(o_as_h == 0)), bool(np.all(o_g_h == 1))
    # the filter constants as the kernels read them: [K] with a readout axis, else [1]
    k_am, k_as, k_g = (out.am, out.as_, out.g) if hetero else (out.am[:1].copy(), out.as_[:1].copy(), out.g[:1].copy())
    Kf = n_out if hetero else 1

    trainable = set(built.trainable_names())
    grads = {name: xp.zeros_like(params[name]) for name in trainable}
    feedback = {
        k: rt.asarray(rt.host(v) if not isinstance(v, np.ndarray) else v)
        for k, v in feedback_matrices(built, rule, readout, params).items()
    }

    # the readout's exact gradients: filtered spikes per connection (double-buffered, see
    # eprop_out_grad), the bias's filtered input (double-buffered) and per-example sums
    readout_conns = [c for c in built.incoming(out_name) if f"{c.name}.weight" in trainable]
    zbar = {}
    # partial gradients of the readout's weights, one per batch chunk (see eprop_out_grad)
    out_part = {c.name: rt.zeros((n_chunks, c.mask.shape[0], n_out)) for c in readout_conns}
    for c in readout_conns:
        shape = (B, c.mask.shape[0], n_out) if hetero else (B, c.mask.shape[0])
        zbar[c.name] = [rt.zeros(shape) for _ in range(4)]  # f0 old, f0 new, f1 old, f1 new
    bbar = [rt.zeros(n_out), rt.zeros(n_out)]
    gbias = rt.zeros((B, n_out))
    loss_acc = rt.zeros(B)
    prob_sum = rt.zeros((B, n_out))
    denom = float(B * n_window)

    kind, sp, sq = surrogate_args(rule.surrogate)
    state = {}
    for name in trained_populations(built):
        p = pops[name]
        am_h, as_h, g_h = rt.host(p.am), rt.host(p.as_), rt.host(p.g)
        syn_I = not _shared(as_h)
        syn_v = syn_I or p.zero_reset or not _shared(am_h) or not _shared(g_h)
        to_out = [c for c in built.outgoing(name) if c.target == out_name]
        depth = max(c.delay for c in to_out)
        # delay 1 to a single readout connection: e[t-1] is recomputed from the traces of t-1
        recompute = len(to_out) == 1 and depth == 1
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in trainable]
        traces = {}
        for c in conns:
            n_pre = c.mask.shape[0]
            per_syn = (B, n_pre, p.n)
            traces[c.name] = {
                "c": c,
                "n_pre": n_pre,
                # one per presynaptic neuron, double-buffered: [old, new] (see eprop_synapse_step)
                "epsI": [rt.zeros((B, n_pre)), rt.zeros((B, n_pre))],
                "epsv": [rt.zeros((B, n_pre)), rt.zeros((B, n_pre))],
                "eps_I": rt.zeros(per_syn) if syn_I else rt.dummy,
                "eps_v": rt.zeros(per_syn) if syn_v else rt.dummy,
                "eps_a": rt.zeros(per_syn) if p.alif else rt.dummy,
                "e_hist": rt.dummy if recompute else rt.zeros((depth, *per_syn)),
                "ebar": {
                    rc.name: (rt.dummy if r_delta else rt.zeros((*per_syn, Kf)), rt.zeros((*per_syn, Kf)))
                    for rc in to_out
                },
                "grad": rt.zeros((n_chunks, n_pre, p.n)),  # one partial sum per batch chunk
            }
        flags = 0
        flags |= EP_FLAGS["alif"] if p.alif else 0
        flags |= EP_FLAGS["syn_I"] if syn_I else 0
        flags |= EP_FLAGS["syn_v"] if syn_v else 0
        flags |= EP_FLAGS["zero_reset"] if p.zero_reset else 0
        flags |= EP_FLAGS["hetero"] if hetero else 0
        flags |= EP_FLAGS["r_delta"] if r_delta else 0
        flags |= EP_FLAGS["r_unit"] if r_unit else 0
        # the synapses' steps in chunks (eprop_synapse_chunk): per-step inputs stacked over K steps
        K = EPROP_STEPS if recompute and not hetero and EPROP_STEPS > 1 else 0
        # traces shared by every target neuron are advanced once per presynaptic neuron in a chunk
        # (eprop_pre_chunk), into eps_v before and after each of its steps
        shared = bool(K) and not syn_v and SHARED_PRE_TRACES
        for tr in traces.values():
            tr["ev_hist"] = _padded_zeros(rt, (K + 1, B, tr["n_pre"])) if shared else rt.dummy
        state[name] = {
            "p": p,
            "K": K,
            "shared": shared,
            "psi_buf": rt.zeros((K + 1, B, p.n)) if K else None,
            "z_buf": rt.zeros((K + 1, B, p.n)) if K and p.zero_reset and syn_v else rt.dummy,
            "sig_buf": rt.zeros((K, B, p.n)) if K else None,
            "R_buf": rt.zeros((K, B, p.n)) if K and rule.c_reg else rt.dummy,
            "k_as": k_as,
            "k_am": k_am,
            "k_g": k_g,
            "depth": depth,
            "recompute": recompute,
            "to_out": to_out,
            "flags": flags,
            "psi": [rt.zeros((B, p.n)), rt.zeros((B, p.n))],  # [previous step, this step]
            "z_prev": rt.zeros((B, p.n)),
            "rate": rt.zeros((B, p.n)),
            "traces": traces,
            # learning signals L = delta B^T per readout connection (without a readout axis)
            "signal": {rc.name: rt.zeros((B, p.n)) for rc in to_out} if not hetero else {},
        }
        if K:  # one view per slot of psi_buf, made once (the step kernel's launches keep their conversion)
            state[name]["psi_at"] = [state[name]["psi_buf"][k] for k in range(K + 1)]

    # the readout's delta of the last EPROP_STEPS steps where some population's synapses run in
    # chunks (they form the chunk's learning signals, and the readout's gradients, at its end),
    # else of the step
    n_deltas = max([st["K"] for st in state.values()] + [1])
    deltas = rt.zeros((n_deltas, B, n_out))
    delta_at = [deltas[k] for k in range(n_deltas)]  # the same view objects at every chunk
    rate_decay = math.exp(-built.dt / RATE_TAU)
    rate_target = rule.target_rate * built.dt / 1000.0

    def out_grad(c, kernel: str, head: tuple, spikes, delta_arg, site=None) -> None:
        """Launch ``kernel`` (``eprop_out_grad`` for one step, ``eprop_out_grad_chunk`` for a
        chunk's steps; ``head``: its arguments between the sizes and the spikes) for readout
        connection ``c``, then swap the connection's double-buffered filters."""
        f0o, f0n, f1o, f1n = zbar[c.name]
        n_pre = c.mask.shape[0]
        args = (B, bc, n_pre, n_out, *head, spikes, k_as, k_am, k_g, f0o, f0n, f1o, f1n, delta_arg, out_part[c.name])
        rt.launch(kernel, n_chunks * n_pre * n_out, *args, site=site)
        zbar[c.name] = [f0n, f0o, f1n, f1o]

    readout_flags = (int(hetero), int(r_delta), int(r_unit))  # eprop_out_grad's, but has_delta
    for t in range(T):
        if t % chunk == 0:
            sim.load_inputs({name: np.ascontiguousarray(x[t : t + chunk]) for name, x in inputs.items()}, t)
        psi_out = {
            name: (kind, sp, sq, st["psi_at"][t % st["K"] + 1] if st["K"] else st["psi"][1])
            for name, st in state.items()
        }
        rec = sim.step(None, psi=psi_out)
        Y = rec[out_name]["V"]
        has_delta = bool(window[t])
        delta = delta_at[t % n_deltas]
        if not has_delta and n_deltas > 1:
            delta.fill(0)  # no learning signal this step (the loss kernel leaves delta alone)
        rt.launch(
            "eprop_loss_step",
            B,
            B,
            n_out,
            int(hetero),
            int(has_delta),
            Y,
            hot,
            denom,
            loss_acc,
            prob_sum,
            delta,
            k_am,
            k_g,
            bbar[0],
            bbar[1],
            gbias,
            site="loss",
        )
        bbar.reverse()
        q = t % n_deltas
        if n_deltas > 1:
            if q == n_deltas - 1 or t == T - 1:  # the readout's gradients of the chunk's steps
                for c in readout_conns:
                    slots = sim.size[c.source]
                    ring_at = (int(r_delta), int(r_unit), q + 1, (t - q - c.delay) % slots, slots)
                    out_grad(c, "eprop_out_grad_chunk", ring_at, sim.ring[c.source], deltas)
        else:
            for c in readout_conns:
                out_grad(c, "eprop_out_grad", (*readout_flags, int(has_delta)), sim.delivered(c), delta, site=c.name)

        for name, st in state.items():
            if st["K"]:
                _chunk_step(rt, st, t, T, rec[name], sim, feedback, deltas, rule, rate_decay, rate_target)
                continue
            p, r = st["p"], rec[name]
            psi, psi_prev = st["psi"][1], st["psi"][0]
            R = rt.dummy
            if rule.c_reg:
                st["rate"] = rate_decay * st["rate"] + (1 - rate_decay) * r["z"]
                R = xp.ascontiguousarray((st["rate"] - rate_target).astype(dt, copy=False))
            signals = {}
            if has_delta:
                for rc in st["to_out"]:
                    fb = feedback[rc.name]
                    if hetero:
                        signals[rc.name] = (delta, fb)
                    else:
                        rt.gemm(delta, fb, st["signal"][rc.name], trans_w=True, accumulate=False)
                        signals[rc.name] = (st["signal"][rc.name], rt.dummy)
            slot = t % st["depth"]
            for tr in st["traces"].values():
                c = tr["c"]
                pre = sim.delivered(c)
                for k, rc in enumerate(st["to_out"]):
                    flags = st["flags"]
                    if k == 0:
                        flags |= EP_FLAGS["update"] | (EP_FLAGS["has_R"] if rule.c_reg else 0)
                    if st["recompute"]:
                        flags |= EP_FLAGS["recompute"]
                    elif k == len(st["to_out"]) - 1:
                        flags |= EP_FLAGS["write_e"]
                    sig, fb = signals.get(rc.name, (rt.dummy, rt.dummy))
                    if rc.name in signals:
                        flags |= EP_FLAGS["has_L"]
                    eb_I, eb_V = tr["ebar"][rc.name]
                    rt.launch(
                        "eprop_synapse_step",
                        n_chunks * tr["n_pre"] * p.n,
                        B,
                        bc,
                        tr["n_pre"],
                        p.n,
                        n_out,
                        flags,
                        slot,
                        (t - rc.delay) % st["depth"],
                        pre,
                        tr["epsI"][0],
                        tr["epsI"][1],
                        tr["epsv"][0],
                        tr["epsv"][1],
                        p.am,
                        p.as_,
                        p.g,
                        p.rho,
                        p.beta,
                        psi,
                        psi_prev,
                        st["z_prev"],
                        tr["eps_I"],
                        tr["eps_v"],
                        tr["eps_a"],
                        tr["e_hist"],
                        k_as,
                        k_am,
                        k_g,
                        eb_I,
                        eb_V,
                        sig,
                        fb,
                        R,
                        rule.c_reg / B,
                        tr["grad"],
                        site=(c.name, rc.name),
                    )
                tr["epsI"].reverse()
                tr["epsv"].reverse()
            st["psi"].reverse()
            st["z_prev"] = r["z"]

    rt.release()
    if observe is not None:
        observe(sim.recent_spikes())
    loss = -rt.scalar(loss_acc.sum()) / (B * n_window)
    grads[f"{out_name}.bias"] += gbias.sum(axis=0)
    for cname, part in out_part.items():
        grads[f"{cname}.weight"] += part.sum(axis=0)
    for st in state.values():
        for cname, tr in st["traces"].items():
            grads[f"{cname}.weight"] += tr["grad"].sum(axis=0)
    for c in built.connections:
        key = f"{c.name}.weight"
        if key in grads and c.name in masks:
            grads[key] = grads[key] * masks[c.name]
    pred = rt.host(xp.argmax(prob_sum, axis=1))
    return loss, {k: grads[k] for k in built.trainable_names()}, pred
