"""e-prop evaluated ``K`` steps at a time: the same gradients as the per-step algorithm of
:mod:`.eprop`, with the per-synapse trace updates turned into (sparse) matrix products.

Within a population j, the per-synapse quantities (eps_a, the readout-filtered eligibility e_bar,
and with per-neuron time constants eps_I and eps_v) follow *linear* recursions whose coefficients
depend on the postsynaptic neuron only (psi_j, rho_j - psi_j beta_j, the decay factors) and whose
inputs depend on the presynaptic neuron only (the delivered spikes p_i, filtered).  The
readout's delay only shifts time: with ``t = tau + d`` the filtered trace reads
``w[tau] = am w[tau-1] + g u[tau]``, ``u[tau] = as u[tau-1] + e[tau]`` and contributes
``L[tau + d] w[tau]``, so a chunk of eligibility steps ``tau0 .. tau1-1`` is processed once the
forward run has reached ``tau1 - 1 + max delay``.

For a chunk, a backward recursion over its steps (per batch entry b and neuron j, O(K) work each)
gives the derivative of the chunk's gradient term ``sum_tau sum_b (L w + r elig)``, and of each
per-synapse state at the chunk's end, with respect to each step's delivered spikes ``p[tau]``
(back through eps_v and eps_I), to the presynaptic traces at the chunk's start and to each
per-synapse state at its start (adjoints ``lambda``; products of decay factors are built by these
recurrences, never by division).  Spikes are sparse, so on the CPU both products with them are
sparse (:mod:`.chunk_spikes`): the gradient adds up rows of a ``[K B, N_post]`` coefficient matrix,
and the states ``[B, N_pre, states, N_post]``, once scaled in place by their own coefficients,
receive the chunk in one CSR x dense product.  With Numba, on the CPU and for large enough
populations (:func:`.chunk_compiled.use`), the recursion is one compiled call per chunk and the
states' share of the gradient, their scaling and the chunk's additions are one compiled pass over
them (:mod:`.chunk_compiled`).  The surrogate and the readout's side (loss, learning signals,
readout gradients) are evaluated for a chunk's steps at once.  Memory is O((K + delay) B N) for
the per-neuron quantities, plus the per-synapse states: independent of T.

Used for every e-prop setup.  The zero reset's factor ``(1 - z_j[t-1])`` on eps_v is one more
post-only coefficient: eps_v then becomes a per-synapse state, as with per-neuron time constants.
``CHUNK = 0`` runs the per-step algorithm of :mod:`.eprop` instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spikeloom.built import BuiltNetwork
from spikeloom.readout import Readout
from spikeloom.rules import EProp, trained_populations

from . import chunk_compiled, chunk_spikes
from .chunk_spikes import ChunkSpikes
from .dynamics import PopConst, Stepper
from .eprop_readout import RATE_TAU, ReadoutSide, all_equal
from .spikes import StreamedInput
from .surrogate_ops import surrogate_
from .workspace import Workspace

__all__ = ["CHUNK", "eprop_chunked"]

#: steps per chunk (0 turns the chunked evaluation off: the per-step path runs)
CHUNK = 64


def eprop_chunked(
    built: BuiltNetwork,
    pops: dict[str, PopConst],
    weights: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    rule: EProp,
    readout: Readout,
    inputs: dict[str, StreamedInput],
    labels: torch.Tensor,
    chunk: int = CHUNK,
    workspace: Workspace | None = None,
):
    """``(loss, grads by trainable name, predictions)`` for one batch, ``chunk`` steps at a time;
    the per-synapse states and per-chunk buffers come from ``workspace`` (kept between calls)."""
    some = next(iter(weights.values()))
    dtype, device = some.dtype, some.device
    ws = Workspace() if workspace is None else workspace
    # a trained population run a chunk at a time computes its surrogate in the same call
    sg = rule.surrogate if chunk_compiled.has_surrogate(rule.surrogate) else None
    sim = Stepper(
        built,
        pops,
        weights,
        inputs,
        block_steps=chunk,
        fuse=True,
        buffers=lambda key, shape, dt: ws.get(("forward", key), shape, dt, device),
        surrogates=dict.fromkeys(trained_populations(built), sg) if sg is not None else None,
    )
    T, B = sim.T, sim.B
    # the readout's steps recorded before a flush: a chunk's, and as many as the longest delay into it
    reach = max((c.delay for c in built.incoming(readout.population)), default=0)
    ro = ReadoutSide(built, pops, params, rule, readout, labels, T, B, ws, rows=min(chunk + reach, T))
    out, out_name, hetero_out, grads, feedback = pops[ro.name], ro.name, ro.hetero, ro.grads, ro.feedback

    state = {}
    for name in trained_populations(built):
        p = pops[name]
        conns = [c for c in built.incoming(name) if f"{c.name}.weight" in grads]
        to_out = [c for c in built.outgoing(name) if c.target == out_name]
        alloc = lambda key, shape, name=name: ws.get(("eprop", name, key), shape, dtype, device)  # noqa: E731
        state[name] = _ChunkedPop(p, conns, to_out, feedback, hetero_out, out, inputs, sim, chunk, alloc, rule)

    rate_decay = math.exp(-built.dt / RATE_TAU)
    for t in range(T):
        rec = sim.step()
        ro.record(t, rec, sim)
        for name, st in state.items():
            r = rec[name]
            rate = None
            if rule.c_reg:
                rate = st.rate = rate_decay * st.rate + (1 - rate_decay) * r["z"]
            delivered = {
                c.name: (sim.delivered(c), sim.delivered_positions(c)) for c in st.conns if c.name not in st.host
            }
            st.record(t, r, rate, delivered)
        if any(st.due(t + 1) for st in state.values()):  # a chunk needs the learning signals so far
            deltas = ro.flush()
            for st in state.values():
                st.delta.update(deltas)
                st.process(done=t + 1)

    deltas = ro.flush()
    for st in state.values():
        st.delta.update(deltas)
        st.process(done=T, final=True)

    for st in state.values():
        for c in st.conns:
            grads[f"{c.name}.weight"] += st.grad[c.name]
    return ro.result(built, masks)


class _ChunkedPop:
    """One trained population: its per-step buffers, per-synapse states and accumulated gradients.

    Per-synapse states are stacked per connection, ``[B, N_pre, len(names), N_post]``, and named
    ``("a",)`` (eps_a, ALIF), ``("u", ch)`` and ``("w", ch)`` (the two stages of e_bar per readout
    channel: one per readout connection, or one per readout connection and readout neuron with
    per-neuron readout time constants), ``("x",)`` and ``("I",)`` (eps_v and eps_I, only where the
    population's time constants differ per neuron or the reset is "zero"; otherwise they are one
    trace per presynaptic neuron, ``traces0``, brought forward once per chunk).
    """

    def __init__(self, p, conns, to_out, feedback, hetero_out, out, inputs, sim, chunk, alloc, rule):
        B, T = sim.B, sim.T
        self.rule = rule
        self.compiled = chunk_compiled.use(B, p.n, p.alpha_mem.device)  # Numba kernels (CPU)
        self.rate_target = rule.target_rate * sim.built.dt / 1000.0
        self.p, self.conns, self.B, self.T, self.K = p, conns, B, T, max(1, min(int(chunk), T))
        self.alloc = alloc  # (key, shape) -> an uninitialised buffer kept between calls
        self.block_spikes = sim.block_spikes  # the input positions the Stepper's drive already found
        self.block_values = sim.block_values  # a chunk's values where the Stepper ran them as one block
        self.fused = set(sim.fused)  # populations run a block at a time: their spikes' views do not last
        dtype, device = p.alpha_mem.dtype, p.alpha_mem.device
        self.dtype, self.device = dtype, device
        self.kw = dict(dtype=dtype, device=device)
        self.n_out = out.n
        self.out_unit_gain = bool(torch.all(out.g == 1))
        J = p.n
        self.depth = max(c.delay for c in to_out)
        self.to_out = to_out
        self.fb = {rc.name: feedback[rc.name] for rc in to_out}  # [J, n_out]
        self.hetero_out = hetero_out
        self.out_delta = bool(torch.all(out.alpha_syn == 0))
        # readout channels: (connection, readout neuron or None) with that channel's filter constants
        if hetero_out:
            self.channels = [(rc, k) for rc in to_out for k in range(out.n)]
            am = torch.stack([out.alpha_mem[k] for _, k in self.channels])
            asy = torch.stack([out.alpha_syn[k] for _, k in self.channels])
            g = torch.stack([out.g[k] for _, k in self.channels])
        else:
            self.channels = [(rc, None) for rc in to_out]
            C = len(self.channels)
            am, asy, g = (v[0].expand(C).clone() for v in (out.alpha_mem, out.alpha_syn, out.g))
        self.c_am, self.c_as, self.c_g = (v[None, :, None, None] for v in (am, asy, g))  # [1, C, 1, 1]
        # the population's own trace constants
        # the zero reset's factor (1 - z_j[t-1]) on eps_v makes eps_v per synapse, like per-neuron constants
        self.zero_reset = p.reset == "zero"
        self.per_syn = self.zero_reset or not (all_equal(p.alpha_mem) and all_equal(p.alpha_syn) and all_equal(p.g))
        self.pop_delta = bool(torch.all(p.alpha_syn == 0))
        self.alif = p.kind == "ALIF"
        if self.per_syn:
            self.p_am, self.p_as, self.p_g = (v[None, None, :] for v in (p.alpha_mem, p.alpha_syn, p.g))  # [1,1,J]
        else:
            self.p_am, self.p_as, self.p_g = p.alpha_mem[0], p.alpha_syn[0], p.g[0]
        self.beta = p.beta[None, None, :] if self.alif else None  # [1, 1, J]
        self.rho = p.rho[None, :] if self.alif else None  # [1, J]

        names = []
        if self.alif:
            names.append(("a",))
        for ch in range(len(self.channels)):
            if not self.out_delta:
                names.append(("u", ch))
            names.append(("w", ch))
        if self.per_syn:
            names.append(("x",))
            if not self.pop_delta:
                names.append(("I",))
        self.names = names
        # what each state's end value depends on besides itself (the chain runs I -> x -> a -> u -> w),
        # and an order that updates every state before those it depends on
        up = [n for n in (("I",), ("x",), ("a",)) if n in names]
        self.upstream = {}
        for k, n in enumerate(up):
            self.upstream[n] = up[:k]
        for ch in range(len(self.channels)):
            if not self.out_delta:
                self.upstream[("u", ch)] = list(up)
            self.upstream[("w", ch)] = ([] if self.out_delta else [("u", ch)]) + up
        self.order = [n for n in names if n[0] in ("u", "w")]
        self.order.sort(key=lambda n: (n[1], n[0] != "w"))  # per channel: w before u
        self.order += up[::-1]
        self.row = {n: i + 1 for i, n in enumerate(names)}  # row 0: the gradient
        self.index = {n: k for k, n in enumerate(names)}  # position in the stacked states
        self.states = {c.name: None for c in conns}  # {name: [B, N_pre, len(names), J]} once non-zero
        self.grad = {c.name: torch.zeros((c.mask.shape[0], J), dtype=dtype, device=device) for c in conns}
        self.rate = torch.zeros((B, J), dtype=dtype, device=device)
        # input populations' spikes are read from the host a chunk at a time
        self.host = {c.name: inputs[c.source].host for c in conns if isinstance(inputs.get(c.source), StreamedInput)}
        # shared time constants: the presynaptic traces (eps_v, eps_I) at the step before the chunk
        self.traces0 = {c.name: None for c in conns}
        # per-step buffers by step
        self.rec, self.rates, self.delta, self.inp, self.keep = {}, {}, {}, {}, {}
        self.tau0 = 0  # first eligibility step not yet processed
        self.constants = self._compiled_constants() if self.compiled else None
        # the Stepper's compiled call computes this population's surrogate (its chunks are the
        # Stepper's blocks), so V, a and refractory are not kept step by step
        self.reads_blocks = p.name in self.fused and chunk_compiled.has_surrogate(rule.surrogate)
        # compiled: chunks whose pass over the states waits for the rest of their group (:meth:`_flush`)
        self.pending: list[dict] = []

    def record(self, t, r, rate, delivered):
        """Keep step ``t``'s membrane potential, adaptation and refractoriness (``r``, for the
        surrogate), online rate (the regulariser; None without it), the delivered spikes of
        connections from spiking populations, and for the zero reset ``1 - z`` (the learning
        signals arrive in :attr:`delta` by step, None outside the window, before :meth:`process`
        needs them)."""
        if not self.reads_blocks:
            self.rec[t] = {v: r[v] for v in ("V", "a", "refractory") if v in r}  # not I and z: less kept
        self.rates[t] = rate
        if self.zero_reset:
            self.keep[t] = 1 - r["z"]  # eps_v[t + 1] = alpha_mem keep[t] eps_v[t] + g eps_I[t + 1]
        self.inp[t] = delivered

    def due(self, done: int) -> bool:
        """Whether :meth:`process` would process a chunk after ``done`` steps."""
        tau1 = min(self.tau0 + self.K, self.T)
        return self.tau0 < self.T and done >= min(tau1 + self.depth, self.T)

    def process(self, done: int, final: bool = False) -> None:
        """Process every complete chunk whose learning signals are known after ``done`` steps."""
        while self.tau0 < self.T:
            tau1 = min(self.tau0 + self.K, self.T)
            if not final and done < min(tau1 + self.depth, self.T):
                return
            self._chunk(self.tau0, tau1, last=tau1 == self.T)
            for t in range(self.tau0, tau1):
                self.rec.pop(t, None)
                del self.rates[t], self.inp[t]
            for t in [t for t in self.keep if t < tau1 - 1]:  # the next chunk reads keep[tau1 - 1]
                del self.keep[t]
            for t in list(self.delta):
                if t < tau1 + 1:  # the next chunk reads learning signals from tau1 + 1 on (delay >= 1)
                    del self.delta[t]
            self.tau0 = tau1

    def _surrogates(self, tau0: int, tau1: int) -> torch.Tensor:
        """``psi`` ``[K, B, J]`` of steps ``tau0 .. tau1-1``, 0 where refractory."""
        p, K, steps = self.p, tau1 - tau0, range(tau0, tau1)
        if self.reads_blocks:  # computed by the forward pass's call, 0 while refractory (read in place)
            block = self.block_values(p.name, tau0)
            if block is None or block["psi"].shape[0] != K:
                raise RuntimeError(f"{p.name}: the surrogate of steps {tau0}..{tau1 - 1} is no longer kept")
            return block["psi"]
        out = self.alloc("psi", (self.K, self.B, p.n))[:K]
        x = torch.stack([self.rec[t]["V"] for t in steps], out=out)
        a = None
        if self.alif:
            a = torch.stack([self.rec[t]["a"] for t in steps], out=self.alloc("psi_a", (self.K, self.B, p.n))[:K])
        refractory = None
        if "refractory" in self.rec[tau0]:
            refractory = torch.stack([self.rec[t]["refractory"] for t in steps])
        if self.compiled and chunk_compiled.has_surrogate(self.rule.surrogate):
            psi = chunk_compiled.surrogate_(self.rule.surrogate, x, a, p.beta, p.v_thresh, out)
        else:
            x.sub_(p.v_thresh if a is None else a.mul_(p.beta).add_(p.v_thresh))  # V - (v_thresh + beta a)
            psi = surrogate_(self.rule.surrogate, x, p.v_thresh)  # in place
        if refractory is not None:
            psi.masked_fill_(refractory, 0)
        return psi

    def _signals(self, tau0: int, tau1: int) -> torch.Tensor | None:
        """Learning signals reaching the eligibility of steps ``tau0 .. tau1-1`` per channel,
        ``[K, C, B, J]`` (channel ``(rc, k)`` reads step ``tau + rc.delay``); None: all zero."""
        K, B = tau1 - tau0, self.B
        out = None
        for rc in self.to_out:
            rows = [self.delta.get(t + rc.delay) if t + rc.delay < self.T else None for t in range(tau0, tau1)]
            if all(r is None for r in rows):
                continue
            zero = torch.zeros((B, rows[0].shape[1] if rows[0] is not None else self.n_out), **self.kw)
            D = torch.stack([zero if r is None else r for r in rows])  # [K, B, n_out]
            fb = self.fb[rc.name]  # [J, n_out]
            C = len(self.channels)
            if out is None:
                out = self.alloc("signals", (self.K, C, B, self.p.n))[:K]
                if C == 1 and self.channels[0][1] is None:  # one product writes all of it
                    torch.mm(D.reshape(K * B, -1), fb.T, out=out.view(K * B, self.p.n))
                    continue
                out.zero_()
            for ch, (rc2, k) in enumerate(self.channels):
                if rc2 is rc:
                    out[:, ch] = D @ fb.T if k is None else D[:, :, k : k + 1] * fb[:, k]
        return out

    def _chunk(self, tau0: int, tau1: int, last: bool) -> None:
        B, J, K = self.B, self.p.n, tau1 - tau0
        S = 1 if last else 1 + len(self.names)  # rows: the gradient, then one per carried state
        kw = self.kw
        spikes = {c.name: self._spikes(c, tau0, tau1) for c in self.conns}
        # compiled, with every connection's spikes sparse, the pass over the states waits until
        # chunk_compiled.GROUP chunks (or the last) have been through here; the first group too,
        # whose pass writes the states without reading them, unless it is also the last
        # (:meth:`_fresh_group`)
        defer = (
            self.compiled
            and chunk_compiled.GROUP > 1
            and all(p.flat is not None for p in spikes.values())
            and (all(self.states[c.name] is not None for c in self.conns) or self._fresh_group(tau0))
        )
        if not defer:
            self._flush()
        Psi = self._surrogates(tau0, tau1)
        Reg = None
        if self.rule.c_reg:
            Rate = torch.stack([self.rates[t] for t in range(tau0, tau1)]).sub_(self.rate_target)
            Reg = Rate.mul_(Psi).mul_(self.rule.c_reg / B)
        Sig = self._signals(tau0, tau1)
        # a group's last chunk: the group's pass runs at the end of this call and computes this
        # chunk's coefficients again, per example (chunk_compiled.chunk_pass), so they are not kept
        closes = defer and (last or len(self.pending) + 1 == chunk_compiled.GROUP)
        coef_all = None if closes else self._coef_slots()[len(self.pending), :K]
        coef = None if closes else coef_all[:, :S]  # d(row) / d(p[tau])
        redo = None
        if self.compiled:
            lw, lu, la, lx, lI, redo = self._backward_compiled(tau0, tau1, Psi, Sig, Reg, coef_all, S, last)
        else:
            lw, lu, la, lx, lI = self._backward(tau0, tau1, Psi, Sig, Reg, coef, S, last)
        # derivatives with respect to eps_v and eps_I at step tau0 - 1 (per synapse, or per
        # presynaptic neuron with shared time constants)
        before = self.keep.get(tau0 - 1)  # keep[tau0 - 1]: 1 - z before the chunk
        bx = (self.p_am[0] if before is None else self.p_am[0] * before) * lx if self.per_syn else self.p_am * lx
        bI = None if self.pop_delta else (self.p_as[0] if self.per_syn else self.p_as) * lI
        # derivatives with respect to the states at the chunk's start, [S, B, J] each
        mu = {}
        for n in self.names:
            if n[0] == "a":
                mu[n] = la
            elif n[0] == "w":
                mu[n] = self.c_am[0, n[1]] * lw[:, n[1]]
            elif n[0] == "u":
                mu[n] = self.c_as[0, n[1]] * lu[:, n[1]]
            elif n[0] == "x":
                mu[n] = bx
            else:
                mu[n] = bI

        nS = len(self.names)
        # with shared time constants: the derivatives with respect to the presynaptic traces
        # (eps_v, eps_I) at tau0 - 1, which multiply the traces kept per presynaptic neuron
        boundary = [] if self.per_syn else [m for m in (bx, bI) if m is not None]
        Mu = torch.stack([mu[n] for n in self.names]) if self.names else None  # [nS, S, B, J]
        ends = not last and not self.per_syn  # the presynaptic traces at the chunk's end are kept
        end_weights = self._end_weights(K) if ends else None
        products = None
        pass_coefs = None  # the compiled pass's coefficients, the same for every connection
        kept = {}  # deferred: the presynaptic traces before the chunk, by connection
        for c in self.conns:
            p = spikes[c.name]
            acc = self.grad[c.name]  # [N_pre, J]
            traces = (self.traces0[c.name] or ())[: len(boundary)]  # eps_I is not kept for delta synapses
            for e, m in zip(traces, boundary, strict=False):  # no traces before the first chunk
                acc.addmm_(e.T, m[0])
            old = self.states[c.name]
            if ends:
                if self.compiled and p.flat is not None:
                    filtered = chunk_compiled.filter_ends(p, np.stack(end_weights), self.dtype)
                else:
                    filtered = [p.filter_end(w) for w in end_weights]
                self.traces0[c.name] = self._traces_end(c, K, *filtered)
            if self.compiled and p.flat is not None:
                if pass_coefs is None:
                    pass_coefs = self._pass_coefs(Mu, boundary, last)
                if defer:
                    kept[c.name] = torch.stack(list(traces)) if traces else None
                else:
                    self._one_pass(c, p, pass_coefs, traces, last)
                continue
            if products is None:
                products = self._products(coef, boundary, K, last)
            G, Cs = products
            acc += p.weight_grad(G)
            if old is not None:  # sum over b of mu[b, j] state[b, i, j], per state
                M0 = Mu[:, 0].permute(1, 0, 2)  # [B, nS, J]
                part = torch.zeros(old.shape[1:], **kw)
                for b in range(B):  # one example at a time: no temporary as large as the states
                    part.addcmul_(old[b], M0[b])
                acc += part.sum(dim=1)
            if last:
                continue
            if old is None:
                old = self.states[c.name] = self.alloc(("states", c.name), (B, p.I, nS, J)).zero_()
            else:
                # in place, each state before the states it reads (which are upstream of it)
                for n in self.order:
                    i = self.row[n]
                    st = old[:, :, self.index[n]]
                    st.mul_(mu[n][i][:, None, :])
                    for m in self.upstream[n]:
                        st.addcmul_(mu[m][i][:, None, :], old[:, :, self.index[m]])
            p.add_to_states(old.view(B, p.I, nS * J), Cs[: (K + len(traces)) * B], list(traces))
        if defer:
            M0, Mix, Eb = pass_coefs
            X = len(boundary)
            self.pending.append(
                dict(
                    coef=coef_all,
                    redo=redo if closes else None,
                    M0=M0,
                    Mix=Mix,
                    Eb=Eb,
                    last=last,
                    spikes=spikes,
                    E=kept,
                    w=np.stack(end_weights)[:X] if ends else np.zeros((0, K)),
                    A=self._trace_map(K)[:X, :X] if X else np.zeros((0, 0)),
                )
            )
            if last or len(self.pending) == chunk_compiled.GROUP:
                self._flush()

    def _chunks(self) -> int:
        return -(-self.T // self.K)

    def _fresh_group(self, tau0: int) -> bool:
        """Whether the chunk at ``tau0`` belongs to the run's first group, whose pass writes the
        states without reading them: where the run has more than ``GROUP`` chunks, so that the
        group is not also the last.  A run of at most ``GROUP`` chunks could skip the per-synapse
        states altogether (no pass would write them); it keeps them instead (its first chunk runs
        alone), so that e-prop's memory is the same whatever the length of the sequence."""
        return tau0 < chunk_compiled.GROUP * self.K and self._chunks() > chunk_compiled.GROUP

    def _coef_slots(self) -> torch.Tensor:
        """The chunks' spike coefficients ``[slots, K, 1 + states, B, J]``: one slot, or (compiled)
        one per chunk of a group whose pass waits for the group's end, except its last (whose
        coefficients the pass computes again): ``GROUP - 1`` slots, fewer when the run has at
        most ``GROUP`` chunks (the first runs alone, the others are the last group)."""
        chunks = self._chunks()
        slots = 1
        if self.compiled:
            slots = max(1, (chunk_compiled.GROUP if chunks > chunk_compiled.GROUP else chunks - 1) - 1)
        return self.alloc("coef", (slots, self.K, 1 + len(self.names), self.B, self.p.n))

    def _flush(self) -> None:
        """The pass over the states for the chunks in :attr:`pending` (compiled), in one go.

        Going back from the group's last chunk, per example and postsynaptic neuron: ``R`` the
        gradient's coefficients of the states after chunk ``h`` (through the later chunks' ``M0``),
        ``Q`` the group-end states' coefficients of them (products of the later chunks' ``Mix``) and
        ``W`` those of the presynaptic traces at the start of chunk ``h + 1`` (through the later
        chunks' ``Eb`` and the traces' own decay ``A``).  Each earlier chunk's spike coefficients
        are referred to the group's end with them (:func:`.chunk_compiled.fold_coefs`); the traces
        of later chunks reach the gradient through their states as ``E_h^T (R Eb_h)`` products.
        The states are then read and written once, with the group's ``M0 = R``, ``Mix = Q`` and
        ``Eb = W`` of its first chunk.  Same terms as one pass per chunk, summed in another order.
        """
        pend, self.pending = self.pending, []
        if not pend:
            return
        B, J, nS, kw = self.B, self.p.n, len(self.names), self.kw
        final = pend[-1]["last"]
        redo = pend[-1]["redo"]  # the last chunk's coefficients are computed again by the pass
        X = pend[0]["A"].shape[0]
        R = Q = W = None  # zero, identity, zero after the group's last chunk
        for h in range(len(pend) - 1, -1, -1):
            r = pend[h]
            if R is not None:
                none = torch.empty((0, 0, 0, 0), **kw)  # not read in a final group
                chunk_compiled.fold_coefs(r["coef"], R, none if final else Q, none if final else W, r["w"], not final)
                for x in range(X):  # the traces before chunk h, through its states, on the later chunks
                    Rb = torch.einsum("bnj,nbj->bj", R, r["Eb"][x])
                    for c in self.conns:
                        if r["E"][c.name] is not None:  # None before the run's first chunk
                            self.grad[c.name].addmm_(r["E"][c.name][x].T, Rb)
            if not final:
                Eb = r["Eb"]  # [X, nS, B, J], X = 0 without shared traces
                Wh = Eb if Q is None else torch.einsum("bnmj,xmbj->xnbj", Q, Eb)
                if W is not None:
                    A = torch.as_tensor(r["A"], **kw)
                    Wh = Wh + torch.einsum("yx,ynbj->xnbj", A, W)
                W = Wh.contiguous()
                Q = (r["Mix"] if Q is None else torch.einsum("bnlj,blmj->bnmj", Q, r["Mix"])).contiguous()
            M0 = r["M0"]
            R = M0 if R is None else (torch.einsum("bnj,bnmj->bmj", R, r["Mix"]) + M0).contiguous()
        first = pend[0]
        for c in self.conns:
            E = first["E"][c.name]
            p0 = first["spikes"][c.name]
            fresh = self.states[c.name] is None  # the run's first group: the pass writes the states
            if fresh:
                self.states[c.name] = self.alloc(("states", c.name), (B, p0.I, nS, J))
            chunk_compiled.chunk_pass(
                self.states[c.name],
                (B, p0.I, nS, J),
                fresh,
                not final,
                self.grad[c.name],
                R,
                Q if not final else torch.empty((0, 0, 0, 0), **kw),
                self._coef_slots()[: len(pend) - (redo is not None)],
                [r["spikes"][c.name] for r in pend],
                E if E is not None and not final else torch.empty((0, B, p0.I), **kw),
                W if E is not None and not final else torch.empty((0, nS, B, J), **kw),
                redo,
            )

    def _backward(self, tau0, tau1, Psi, Sig, Reg, coef, S: int, last: bool):
        """The chunk's backward recursion over its steps in torch operations: writes ``coef``
        ``[K, S, B, J]`` and returns the adjoints ``(lw, lu, la, lx, lI)`` before the chunk."""
        B, J, K, C, kw = self.B, self.p.n, tau1 - tau0, len(self.channels), self.kw
        lI = None
        lw = torch.zeros((S, C, B, J), **kw)
        lu = torch.zeros((S, C, B, J), **kw)
        la = torch.zeros((S, B, J), **kw)
        lx = torch.zeros((S, B, J), **kw)
        if not last and self.alif:
            la[self.row[("a",)]] = 1.0  # seed: a[tau1]
        Cf = None
        if self.alif:  # rho - psi beta
            Cf = torch.mul(Psi, self.beta[0], out=self.alloc("cf", (self.K, B, J))[:K]).neg_().add_(self.rho)
        seed = not last
        for k in range(K - 1, -1, -1):
            tau, psi = tau0 + k, Psi[k]
            lw.mul_(self.c_am)
            if Sig is not None:
                lw[0] += Sig[k]
            if seed and k == K - 1:
                for ch in range(C):
                    lw[self.row[("w", ch)], ch] += 1.0
            lu_in = lw if self.out_unit_gain else self.c_g * lw
            lu = lu_in if self.out_delta else torch.addcmul(lu_in, self.c_as, lu)
            if seed and k == K - 1 and not self.out_delta:
                for ch in range(C):
                    lu[self.row[("u", ch)], ch] += 1.0
            le = psi * (lu[:, 0] if C == 1 else lu.sum(dim=1))
            if Reg is not None:
                le[0] += Reg[k]
            if self.alif:
                ax = torch.addcmul(le, psi, la)  # la holds lambda_a[tau + 1]
                la.mul_(Cf[k]).addcmul_(self.beta, le, value=-1)
            else:
                ax = le
            # back through eps_v and eps_I to the delivered spikes p[tau]
            torch.addcmul(ax, self.p_am * self.keep[tau] if self.zero_reset else self.p_am, lx, out=lx)
            if seed and k == K - 1 and self.per_syn:
                lx[self.row[("x",)]] += 1.0
            gx = lx if self.p.unit_gain else self.p_g * lx
            if self.pop_delta:
                coef[k].copy_(gx)
            else:  # coef[k] is lambda_I[tau]; coef[k + 1] held lambda_I[tau + 1]
                lI = torch.addcmul(gx, self.p_as, coef[k + 1], out=coef[k]) if k + 1 < K else coef[k].copy_(gx)
                if seed and k == K - 1 and self.per_syn:
                    lI[self.row[("I",)]] += 1.0
        return lw, lu, la, lx, lI

    def _compiled_constants(self) -> dict:
        """The compiled recursion's arguments that stay the same from chunk to chunk."""
        J, C = self.p.n, len(self.channels)
        row = lambda n: self.row.get(n, -1)  # noqa: E731
        seeds = [row(("a",)), row(("x",)), row(("I",))]
        seeds += [row(("w", ch)) for ch in range(C)] + [row(("u", ch)) for ch in range(C)]
        return dict(
            out_c=torch.stack([v.reshape(-1) for v in (self.c_am, self.c_as, self.c_g)]).contiguous(),  # [3, C]
            pop_c=torch.stack(
                [torch.as_tensor(v, **self.kw).reshape(-1).expand(J) for v in (self.p_am, self.p_as, self.p_g)]
            ).contiguous(),  # [3, J]
            beta=self.beta.reshape(-1) if self.alif else None,
            rho=self.rho.reshape(-1) if self.alif else None,
            flags=dict(
                zero_reset=self.zero_reset,
                alif=self.alif,
                out_delta=self.out_delta,
                out_unit_gain=self.out_unit_gain,
                pop_delta=self.pop_delta,
                unit_gain=self.p.unit_gain,
                per_syn=self.per_syn,
            ),
            seeds=seeds,
        )

    def _backward_compiled(self, tau0, tau1, Psi, Sig, Reg, coef_all, S: int, last: bool):
        """The same recursion compiled (:func:`.chunk_compiled.chunk_backward`, CPU); ``coef_all``
        None: the coefficients are not kept.  Returns the adjoints ``(lw, lu, la, lx, lI)`` and the
        recursion's arguments (by name, for :func:`.chunk_compiled.chunk_pass` to compute the
        coefficients again)."""
        k = self.constants
        Keep = torch.stack([self.keep[t] for t in range(tau0, tau1)]) if self.zero_reset else None
        recursion = dict(
            Psi=Psi,
            Sig=Sig,
            Reg=Reg,
            Keep=Keep,
            out_c=k["out_c"],
            pop_c=k["pop_c"],
            beta=k["beta"],
            rho=k["rho"],
            flags=dict(k["flags"], has_sig=Sig is not None, has_reg=Reg is not None, seed=not last),
            seeds=[-1] * len(k["seeds"]) if last else k["seeds"],  # the last chunk carries no states
        )
        adjoints = chunk_compiled.chunk_backward(**recursion, coef=coef_all, S=S, C=len(self.channels))
        return (*adjoints, recursion)

    def _products(self, coef, boundary, K: int, last: bool):
        """``(G, Cs)``: the spikes' coefficients as the torch path's products take them, ``G``
        ``[K B, J]`` for the gradient and ``Cs`` ``[(K + 2) B, nS J]`` for the states (None in the last chunk):
        rows ``k B + b``, then rows for the presynaptic traces before the chunk."""
        B, J, nS = self.B, self.p.n, len(self.names)
        G = self.alloc("G", (self.K * B, J))[: K * B]
        G.view(K, B, J).copy_(coef[:, 0])
        if last:
            return G, None
        Cs = self.alloc("Cs", ((self.K + 2) * B, nS * J))
        Cs[: K * B].view(K, B, nS, J).copy_(coef[:, 1:].permute(0, 2, 1, 3))
        for x, m in enumerate(boundary):
            Cs[(K + x) * B : (K + x + 1) * B].view(B, nS, J).copy_(m[1:].permute(1, 0, 2))
        return G, Cs

    def _pass_coefs(self, Mu, boundary, last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(M0, Mix, Eb)`` of :func:`.chunk_compiled.chunk_pass` for this chunk (``M0`` and ``Mix``
        read only where states are carried in, ``Mix`` and ``Eb`` only where they are carried on)."""
        B, J, nS, kw = self.B, self.p.n, len(self.names), self.kw
        M0 = Mu[:, 0].permute(1, 0, 2).contiguous() if Mu is not None else torch.empty((0, 0, 0), **kw)  # [B, nS, J]
        Mix = torch.empty((0, 0, 0, 0), **kw)
        Eb = torch.empty((0, nS, B, J), **kw)
        if not last:
            if Mu is not None:
                Mix = Mu[:, 1:].permute(2, 1, 0, 3).contiguous()  # [B, nS, nS, J]
            if boundary:
                Eb = torch.stack([m[1:] for m in boundary])  # [X, nS, B, J]
        return M0, Mix, Eb

    def _one_pass(self, c, p: ChunkSpikes, pass_coefs, traces, last: bool) -> None:
        """The chunk's gradient and state update for connection ``c`` in one compiled pass over its
        states (:mod:`.chunk_compiled`; CPU, sparse spikes), with the chunk's :meth:`_pass_coefs`."""
        B, J, nS, kw = self.B, self.p.n, len(self.names), self.kw
        M0, Mix, Eb = pass_coefs
        old = self.states[c.name]
        fresh = old is None
        if fresh and not last:
            old = self.states[c.name] = self.alloc(("states", c.name), (B, p.I, nS, J))  # zeroed by the pass
        if traces and not last:
            E, Eb = torch.stack(list(traces)), Eb[: len(traces)]  # [X, B, I], [X, nS, B, J]
        else:
            E, Eb = torch.empty((0, B, p.I), **kw), torch.empty((0, nS, B, J), **kw)
        coef = self._coef_slots()[:1]  # the chunk wrote its coefficients into slot 0
        chunk_compiled.chunk_pass(old, (B, p.I, nS, J), fresh, not last, self.grad[c.name], M0, Mix, coef, [p], E, Eb)

    def _spikes(self, c, tau0: int, tau1: int) -> ChunkSpikes:
        """The spikes ``c`` delivers at steps ``tau0 .. tau1-1`` (compiled: as positions up to
        :data:`.chunk_compiled.SPARSE_BELOW` non-zero)."""
        below = max(chunk_spikes.SPARSE_BELOW, chunk_compiled.SPARSE_BELOW) if self.compiled else None
        if c.name in self.host:
            found = self.block_spikes(c, tau0)  # the Stepper's blocks start where the chunks do
            if found is not None:
                flat, vals, starts = found
                vals = None if vals is None else vals.astype(np.float64)
                shape = (tau1 - tau0, self.B, self.host[c.name].shape[2])
                return ChunkSpikes(shape, self.dtype, self.device, flat=flat, vals=vals, starts=starts)
            return ChunkSpikes.from_host(self.host[c.name], tau0, tau1, c.delay, self.dtype, self.device, below)
        steps = [self.inp[t][c.name] for t in range(tau0, tau1)]
        if c.source in self.fused:  # the views of its earliest steps may be overwritten by now
            below = math.inf
        return ChunkSpikes.from_steps([s for s, _ in steps], [f for _, f in steps], below)

    def _end_weights(self, K: int) -> tuple[np.ndarray, np.ndarray]:
        """``(wv, wI)`` ``[K]``: eps_v and eps_I at the chunk's last step per spike delivered at
        step k of the chunk (shared time constants)."""
        am, as_, g = float(self.p_am), float(self.p_as), float(self.p_g)
        m = np.arange(K)
        to_v = am ** (K - 1 - m)  # eps_v at the end per unit of g eps_I[m]
        hold = np.triu(as_ ** np.maximum(m[None, :] - m[:, None], 0))  # [k, m]: eps_I[m] per unit of p[k]
        return g * hold @ to_v, as_ ** (K - 1 - m)

    def _trace_map(self, K: int) -> np.ndarray:
        """``A`` ``[2, 2]``: the presynaptic traces ``(eps_v, eps_I)`` at a chunk's last step per unit
        of those before it, for a chunk of ``K`` steps (shared time constants)."""
        am, as_, g = float(self.p_am), float(self.p_as), float(self.p_g)
        m = np.arange(K)
        return np.array([[am**K, g * float(np.sum(am ** (K - 1 - m) * as_ ** (m + 1)))], [0.0, as_**K]])

    def _traces_end(self, c, K: int, v: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The presynaptic traces ``(eps_v, eps_I)`` at the chunk's last step, from those before it
        (:meth:`_trace_map`) and the chunk's spikes filtered with :meth:`_end_weights` (``v``, ``i`` ``[B, I]``)."""
        if self.traces0[c.name] is not None:
            A = self._trace_map(K)
            v0, i0 = self.traces0[c.name]
            v = v + float(A[0, 0]) * v0 + float(A[0, 1]) * i0
            i = i + float(A[1, 1]) * i0
        return v, i
