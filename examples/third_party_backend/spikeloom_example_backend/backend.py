"""The example backend: SPEC §3's forward dynamics written from scratch in NumPy.

It uses only spikeloom's public API (``Backend``, ``Compiled``, ``Capabilities`` and the built
network the core hands over) and declares exactly what it implements: every model, synapse,
reset, connectivity kind and readout, float32 and float64, refractoriness, per-neuron parameters,
``scale_input`` and state-forced stepping, but no learning rule, so the conformance kit skips the
gradient checks and names the capability ("rules").
"""

from __future__ import annotations

import numpy as np

import spikeloom as sl
from spikeloom.capabilities import ALL_READOUTS

__all__ = ["ExampleBackend", "ExampleCompiled"]


class _Constants:
    """One population's per-neuron constants ``[N]`` in the run's dtype."""

    def __init__(self, pop, params: dict, dtype) -> None:
        # decay factors in float64, rounded once to the run's dtype (trained ones come from params)
        alpha_mem = np.asarray(params.get(f"{pop.name}.alpha_mem", pop.alpha_mem), dtype=np.float64)
        alpha_syn = np.asarray(params.get(f"{pop.name}.alpha_syn", pop.alpha_syn), dtype=np.float64)
        self.kind, self.reset = pop.kind, pop.reset
        self.alpha_mem = alpha_mem.astype(dtype)
        self.alpha_syn = alpha_syn.astype(dtype)
        self.g = (1.0 - alpha_mem if pop.scale_input else np.ones(pop.n)).astype(dtype)
        self.bias = params.get(f"{pop.name}.bias")
        if pop.kind != "LI":
            self.v_thresh = pop.params["v_thresh"].astype(dtype)
            self.n_ref = pop.n_ref
        if pop.kind == "ALIF":
            self.rho = pop.rho.astype(dtype)
            self.beta = pop.params["beta"].astype(dtype)


class ExampleCompiled(sl.Compiled):
    def __init__(self, request: sl.CompileRequest) -> None:
        super().__init__(request)
        self._params = {k: v.astype(self.dtype) for k, v in self.built.initial_params().items()}

    # -- parameters ------------------------------------------------------------------------------
    def _get_params(self):
        return {k: v.copy() for k, v in self._params.items()}

    def _set_params(self, params):  # already validated by Compiled.set_params
        for k, v in params.items():
            self._params[k] = v.astype(self.dtype)

    # -- dynamics --------------------------------------------------------------------------------
    def _constants(self) -> dict[str, _Constants]:
        return {p.name: _Constants(p, self._params, self.dtype) for p in self.built.neuron_populations}

    def _advance(self, consts, state, x_t):
        """One step of every population from ``state`` (the layout ``Compiled.step`` documents):
        all populations update in lock-step from spikes emitted ``delay`` steps ago."""
        pops, history = state["populations"], state["history"]
        batch = next(iter(pops.values()))["V"].shape[0]
        h = {p.name: np.zeros((batch, p.n), self.dtype) for p in self.built.neuron_populations}
        for c in self.built.connections:
            h[c.target] = h[c.target] + history[c.source][c.delay - 1] @ self._params[f"{c.name}.weight"]
        new, rec = {}, {}
        for name, k in consts.items():
            s = pops[name]
            current = k.alpha_syn * s["I"] + h[name]
            if k.kind == "LI":
                volt = k.alpha_mem * s["V"] + k.g * (current + k.bias)
                new[name] = {"V": volt, "I": current}
                rec[name] = {"V": volt, "I": current}
                continue
            volt = k.alpha_mem * s["V"] + k.g * current
            theta = k.v_thresh
            entry = {}
            if k.kind == "ALIF":
                entry["a"] = k.rho * s["a"] + s["z"]  # adaptation from the previous step's spikes
                theta = k.v_thresh + k.beta * entry["a"]
            spikes = ((volt >= theta) & (s["ref"] == 0)).astype(self.dtype)
            rec[name] = {"V": volt, "I": current, "z": spikes, **entry}  # V before the reset
            after = volt - k.v_thresh * spikes if k.reset == "subtract" else volt * (1 - spikes)
            refractory = np.where(spikes > 0, k.n_ref, np.maximum(s["ref"] - 1, 0))
            new[name] = {"V": after, "I": current, "z": spikes, "ref": refractory, **entry}
        emitted = {**{n: v["z"] for n, v in new.items() if "z" in v}, **x_t}
        new_history = {
            src: np.concatenate([emitted[src][None].astype(self.dtype), buf[:-1]]) for src, buf in history.items()
        }
        return {"populations": new, "history": new_history}, rec

    def _step(self, state, x_t):
        return self._advance(self._constants(), state, x_t)

    def _simulate(self, inputs, record):
        T, B = next(iter(inputs.values())).shape[:2]
        consts = self._constants()
        state = self.zero_state(B)
        out = {
            n: {v: np.empty((T, B, self.built.populations[n].n), self.dtype) for v in vs} for n, vs in record.items()
        }
        for t in range(T):
            state, rec = self._advance(consts, state, {name: x[t] for name, x in inputs.items()})
            for n, vs in record.items():
                for v in vs:
                    out[n][v][t] = rec[n][v]
        return out


class ExampleBackend(sl.Backend):
    name = "example"
    version = "0.1.0"
    description = "example third-party backend (forward only, NumPy)"

    def capabilities(self) -> sl.Capabilities:
        return sl.Capabilities(
            dtypes={"float32", "float64"},
            devices={"cpu"},
            readouts=ALL_READOUTS,
            trainable_time_constants=True,
            stepping=True,
        )

    def _compile(self, request: sl.CompileRequest) -> ExampleCompiled:
        return ExampleCompiled(request)
