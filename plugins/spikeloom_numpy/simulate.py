"""The reference time loop: lock-step update of all populations from delayed spikes (SPEC §2–§3)."""

from __future__ import annotations

from collections import deque

import numpy as np

from spikeloom.built import BuiltNetwork

from .dynamics import PopParams, neuron_step, pop_params, zero_state

__all__ = ["Simulator"]


class Simulator:
    """Runs a built network on given parameters (``{name: array}`` in the run's dtype)."""

    def __init__(self, built: BuiltNetwork, params: dict[str, np.ndarray], dtype) -> None:
        self.built = built
        self.dtype = np.dtype(dtype)
        self.pops: dict[str, PopParams] = {p.name: pop_params(p, params, self.dtype) for p in built.neuron_populations}
        self.weights = {c.name: np.asarray(params[f"{c.name}.weight"], dtype=self.dtype) for c in built.connections}
        # how many past steps of each source's spikes some connection still needs
        self.depth = {name: 0 for name in built.populations}
        for c in built.connections:
            self.depth[c.source] = max(self.depth[c.source], c.delay)

    def run(self, inputs: dict[str, np.ndarray], record: dict[str, tuple[str, ...]]) -> dict[str, dict[str, np.ndarray]]:
        """Simulate all steps of ``inputs`` (``{name: [T, B, N]}``) from zero state."""
        T, B = next(iter(inputs.values())).shape[:2]
        dt = self.dtype
        state = {name: zero_state(p, B, dt) for name, p in self.pops.items()}
        # history[src][d - 1] holds the spikes src emitted d steps ago (zero before t = 0)
        history = {
            name: deque([np.zeros((B, pop.n), dtype=dt) for _ in range(depth)], maxlen=depth)
            for name, depth in self.depth.items()
            if depth > 0
            for pop in [self.built.populations[name]]
        }
        out = {
            name: {v: np.empty((T, B, self.built.populations[name].n), dtype=dt) for v in vars_}
            for name, vars_ in record.items()
        }
        for t in range(T):
            h = {name: np.zeros((B, self.built.populations[name].n), dtype=dt) for name in self.pops}
            for c in self.built.connections:
                h[c.target] += history[c.source][c.delay - 1] @ self.weights[c.name]
            for name, p in self.pops.items():
                state[name], rec = neuron_step(p, state[name], h[name])
                for v in record.get(name, ()):
                    out[name][v][t] = rec[v]
            for name, buf in history.items():
                spikes = inputs[name][t] if name in inputs else state[name].z
                buf.appendleft(spikes)
        return out
