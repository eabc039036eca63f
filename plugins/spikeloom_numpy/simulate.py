"""The reference time loop: lock-step update of all populations from delayed spikes (SPEC §2–§3)."""

from __future__ import annotations

from collections import deque

import numpy as np

from spikeloom.built import BuiltNetwork

from .dynamics import PopParams, PopState, neuron_step, pop_params, zero_state

__all__ = ["Simulator"]


class Simulator:
    """Runs a built network on given parameters (``{name: array}``, cast to the run's dtype).

    Use :meth:`run` for whole sequences, or :meth:`start` then :meth:`step` once per step (the
    learning rules do); after a step, :attr:`delivered` holds, per connection, the presynaptic
    spikes ``s[t - delay]`` ``[B, N_pre]`` that step used.
    """

    def __init__(self, built: BuiltNetwork, params: dict[str, np.ndarray], dtype, spike_fn=None) -> None:
        self.built = built
        self.spike_fn = spike_fn
        self.dtype = np.dtype(dtype)
        self.pops: dict[str, PopParams] = {p.name: pop_params(p, params, self.dtype) for p in built.neuron_populations}
        self.weights = {c.name: np.asarray(params[f"{c.name}.weight"], dtype=self.dtype) for c in built.connections}
        # how many past steps of each source's spikes some connection still needs
        self.depth: dict[str, int] = {}
        for c in built.connections:
            self.depth[c.source] = max(self.depth.get(c.source, 0), c.delay)

    def start(self, batch: int) -> None:
        """Reset to zero state (V, I, a, refractory counters and spike history) for ``batch`` examples."""
        self.state: dict[str, PopState] = {name: zero_state(p, batch, self.dtype) for name, p in self.pops.items()}
        # history[src][d - 1] holds the spikes src emitted d steps ago (zero before t = 0)
        self.history = {
            src: deque([np.zeros((batch, self.built.populations[src].n), self.dtype)] * depth, maxlen=depth)
            for src, depth in self.depth.items()
        }
        self.delivered: dict[str, np.ndarray] = {}

    def set_state(self, state: dict) -> None:
        """Continue from a host state laid out as ``Compiled.step`` documents."""
        self.state = {}
        for name in self.pops:
            v = state["populations"][name]
            self.state[name] = PopState(I=v["I"], V=v["V"], a=v.get("a"), z=v.get("z"), ref=v.get("ref"))
        self.history = {src: deque(list(state["history"][src]), maxlen=d) for src, d in self.depth.items()}
        self.delivered = {}

    def get_state(self) -> dict:
        """The current state as host arrays (the layout ``Compiled.step`` documents)."""
        pops = {}
        for name in self.pops:
            s = self.state[name]
            entry = {"V": s.V, "I": s.I}
            if s.a is not None:
                entry["a"] = s.a
            if s.z is not None:
                entry.update(z=s.z, ref=s.ref)
            pops[name] = {k: np.array(v) for k, v in entry.items()}
        return {"populations": pops, "history": {src: np.stack(list(buf)) for src, buf in self.history.items()}}

    def step(self, x_t: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Advance every population by one step; ``x_t`` holds each input's spikes ``[B, N]``.

        Returns ``{population: {variable: [B, N]}}`` for this step (``V`` before the reset).
        """
        B = next(iter(self.state.values())).V.shape[0] if self.state else next(iter(x_t.values())).shape[0]
        h = {name: np.zeros((B, self.built.populations[name].n), dtype=self.dtype) for name in self.pops}
        for c in self.built.connections:
            spikes = self.history[c.source][c.delay - 1]
            self.delivered[c.name] = spikes
            h[c.target] += spikes @ self.weights[c.name]
        out = {}
        for name, p in self.pops.items():
            self.state[name], out[name] = neuron_step(p, self.state[name], h[name], self.spike_fn)
        for src, buf in self.history.items():
            buf.appendleft(x_t[src] if src in x_t else self.state[src].z)
        return out

    def run(
        self, inputs: dict[str, np.ndarray], record: dict[str, tuple[str, ...]]
    ) -> dict[str, dict[str, np.ndarray]]:
        """Simulate all steps of ``inputs`` (``{name: [T, B, N]}``) from zero state and return the
        recorded variables ``{population: {variable: [T, B, N]}}``."""
        T, B = next(iter(inputs.values())).shape[:2]
        self.start(B)
        out = {
            name: {v: np.empty((T, B, self.built.populations[name].n), dtype=self.dtype) for v in vars_}
            for name, vars_ in record.items()
        }
        for t in range(T):
            rec = self.step({name: x[t] for name, x in inputs.items()})
            for name, vars_ in record.items():
                for v in vars_:
                    out[name][v][t] = rec[name][v]
        return out
