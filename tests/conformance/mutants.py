"""Deliberately broken backends: the NumPy reference with one subtle bug each.

Two ways to break it:

- :func:`source_mutant` copies the reference's modules into a fresh package under a temporary
  folder, applies text replacements (each must match exactly once, so a change in the reference
  shows up here as an error, not as a mutant that silently stopped being one), imports it and
  returns its backend under a new name.  Every path of that backend (simulate, step, BPTT, e-prop)
  then carries the bug.
- subclasses of ``NumpyBackend``/``NumpyCompiled`` that override one method.

:data:`MUTANTS` maps each mutant's name to ``(factory, checks that must fail, checks to run)``.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import spikeloom as sl
import spikeloom_numpy
from spikeloom_numpy import NumpyBackend, NumpyCompiled
from spikeloom_numpy.bptt import bptt_loss_and_grads
from spikeloom_numpy.simulate import Simulator

_ROOT = Path(tempfile.mkdtemp(prefix="spikeloom_mutants_"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
_counter = itertools.count()


def source_mutant(name: str, patches: dict[str, list[tuple[str, str]]]) -> sl.Backend:
    """The reference with ``patches`` (``{module file: [(old, new), ...]}``) applied, as backend ``name``."""
    pkg = f"spikeloom_mutant_{name}_{next(_counter)}"
    dest = _ROOT / pkg
    shutil.copytree(Path(spikeloom_numpy.__file__).parent, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for file, reps in patches.items():
        path = dest / file
        text = path.read_text()
        for old, new in reps:
            count = text.count(old)
            if count != 1:
                raise AssertionError(f"mutant {name}: {old!r} occurs {count} times in {file}, expected once")
            text = text.replace(old, new)
        path.write_text(text)
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    importlib.invalidate_caches()
    module = importlib.import_module(pkg)
    cls = type(f"Mutant_{name}", (module.NumpyBackend,), {"name": name, "description": f"mutant: {name}"})
    return cls()


def subclass_mutant(name: str, compiled_cls: type, backend_attrs: dict | None = None) -> sl.Backend:
    """A ``NumpyBackend`` named ``name`` whose compiled networks are ``compiled_cls``."""

    def _compile(self, request):
        return compiled_cls(request)

    ns = {"name": name, "description": f"mutant: {name}", "_compile": _compile, **(backend_attrs or {})}
    return type(f"Mutant_{name}", (NumpyBackend,), ns)()


# -- the dynamics ----------------------------------------------------------------------------------


def zero_reset_subtracts():
    return source_mutant(
        "zero_reset_subtracts", {"dynamics.py": [("V_after = V * (1 - z)", "V_after = V - p.v_thresh * z")]}
    )


def reset_by_one():
    return source_mutant("reset_by_one", {"dynamics.py": [("V_after = V - p.v_thresh * z", "V_after = V - z")]})


def delay_off_by_one():
    return source_mutant(
        "delay_off_by_one",
        {
            "simulate.py": [
                ("spikes = self.history[c.source][c.delay - 1]", "spikes = self.history[c.source][max(c.delay - 2, 0)]")
            ]
        },
    )


def refractory_ignored():
    return source_mutant("refractory_ignored", {"dynamics.py": [("refractory = s.ref > 0", "refractory = s.ref < 0")]})


def refractory_one_short():
    return source_mutant(
        "refractory_one_short",
        {"dynamics.py": [("ref = np.where(z > 0, p.n_ref, ", "ref = np.where(z > 0, np.maximum(p.n_ref - 1, 0), ")]},
    )


def spikes_strictly_above():
    return source_mutant(
        "spikes_strictly_above",
        {"dynamics.py": [("z = ((V >= theta) & ~refractory)", "z = ((V > theta) & ~refractory)")]},
    )


def adaptation_lags():
    return source_mutant(
        "adaptation_lags",
        {"dynamics.py": [("theta = p.v_thresh + p.beta * a\n", "theta = p.v_thresh + p.beta * s.a\n")]},
    )


def scale_input_ignored():
    return source_mutant(
        "scale_input_ignored",
        {"dynamics.py": [("g = 1.0 - alpha_mem if pop.scale_input else np.ones(pop.n)", "g = np.ones(pop.n)")]},
    )


def bias_unscaled():
    return source_mutant(
        "bias_unscaled",
        {"dynamics.py": [("V = p.alpha_mem * s.V + p.g * (I + p.bias)", "V = p.alpha_mem * s.V + p.g * I + p.bias")]},
    )


def heterogeneity_averaged():
    return source_mutant(
        "heterogeneity_averaged",
        {
            "dynamics.py": [
                (
                    'alpha_mem = np.asarray(params.get(f"{pop.name}.alpha_mem", pop.alpha_mem), dtype=np.float64)',
                    'alpha_mem = np.asarray(params.get(f"{pop.name}.alpha_mem", pop.alpha_mem), dtype=np.float64)\n'
                    "    alpha_mem = np.full_like(alpha_mem, alpha_mem.mean())",
                )
            ]
        },
    )


def batch_mixed():
    """Recurrent and hidden spikes reach the next step one batch element off."""
    return source_mutant(
        "batch_mixed",
        {
            "simulate.py": [
                (
                    "            self.delivered[c.name] = spikes\n",
                    "            if c.source not in x_t:\n"
                    "                spikes = np.roll(spikes, 1, axis=0)\n"
                    "            self.delivered[c.name] = spikes\n",
                )
            ]
        },
    )


def step_ignores_refractory_state():
    return source_mutant(
        "step_ignores_refractory_state",
        {"simulate.py": [('ref=v.get("ref"))', 'ref=None if v.get("ref") is None else np.zeros_like(v.get("ref")))')]},
    )


# -- gradients -------------------------------------------------------------------------------------


def surrogate_ignores_v_thresh():
    """BPTT calls the surrogate with v_thresh = 1 (Triangle loses its 1/v_thresh scale)."""
    return source_mutant(
        "surrogate_ignores_v_thresh",
        {"bptt.py": [("psi = rule.surrogate(V - theta, p.v_thresh)", "psi = rule.surrogate(V - theta, 1.0)")]},
    )


def surrogate_scaled():
    return source_mutant(
        "surrogate_scaled",
        {
            "bptt.py": [
                ("psi = rule.surrogate(V - theta, p.v_thresh)", "psi = 1.1 * rule.surrogate(V - theta, p.v_thresh)")
            ]
        },
    )


def surrogate_argument_scaled():
    return source_mutant(
        "surrogate_argument_scaled",
        {
            "bptt.py": [
                ("psi = rule.surrogate(V - theta, p.v_thresh)", "psi = rule.surrogate(2.0 * (V - theta), p.v_thresh)")
            ]
        },
    )


def surrogate_not_masked_when_refractory():
    return source_mutant(
        "surrogate_not_masked_when_refractory",
        {
            "bptt.py": [
                (
                    'psi = rule.surrogate(V - theta, p.v_thresh) * (1 - r["refractory"][t])',
                    "psi = rule.surrogate(V - theta, p.v_thresh)",
                )
            ]
        },
    )


def detach_reset_ignored():
    return source_mutant("detach_reset_ignored", {"bptt.py": [("if not rule.detach_reset:", "if False:")]})


def grads_outside_mask():
    return source_mutant(
        "grads_outside_mask", {"bptt.py": [("grads[key] = (g * c.mask).astype(dt)", "grads[key] = g.astype(dt)")]}
    )


def grads_batch_mixed():
    return source_mutant(
        "grads_batch_mixed",
        {
            "bptt.py": [
                (
                    "np.tensordot(src[: T - c.delay], tgt[c.delay :], axes=([0, 1], [0, 1]))",
                    "np.tensordot(src[: T - c.delay], np.roll(tgt[c.delay :], 1, axis=1), axes=([0, 1], [0, 1]))",
                )
            ]
        },
    )


def eprop_trace_wrong_decay():
    """The eligibility trace eps_v decays with the synapse's factor instead of the membrane's."""
    return source_mutant(
        "eprop_trace_wrong_decay",
        {
            "eprop.py": [
                (
                    'decay = st["am"] * keep if st["zero_reset"] else st["am"]',
                    'decay = st["as"] * keep if st["zero_reset"] else st["as"]',
                )
            ]
        },
    )


def eprop_filter_wrong_decay():
    """e_bar is filtered with the hidden population's membrane decay instead of the readout's."""
    return source_mutant(
        "eprop_filter_wrong_decay",
        {
            "eprop.py": [
                (
                    "    trainable = set(built.trainable_names())\n",
                    "    def hidden_filter(f, x, am):\n"
                    "        f[0] = x if out_delta else o_as * f[0] + x\n"
                    "        f[1] = am * f[1] + (f[0] if out_unit_gain else o_g * f[0])\n\n"
                    "    trainable = set(built.trainable_names())\n",
                ),
                (
                    "readout_filter(eb, e_d[..., None] if hetero_out else e_d)",
                    "hidden_filter(eb, e_d[..., None] if hetero_out else e_d, p.alpha_mem[0])",
                ),
            ]
        },
    )


def eprop_zero_reset_factor_missing():
    return source_mutant(
        "eprop_zero_reset_factor_missing",
        {"eprop.py": [('decay = st["am"] * keep if st["zero_reset"] else st["am"]', 'decay = st["am"]')]},
    )


def eprop_regularizer_ignored():
    return source_mutant(
        "eprop_regularizer_ignored",
        {
            "eprop.py": [
                (
                    "                if rule.c_reg:\n                    grads",
                    "                if False:\n                    grads",
                )
            ]
        },
    )


def eprop_surrogate_ignores_v_thresh():
    return source_mutant(
        "eprop_surrogate_ignores_v_thresh",
        {
            "eprop.py": [
                ('psi = rule.surrogate(r["V"] - theta, p.v_thresh)', 'psi = rule.surrogate(r["V"] - theta, 1.0)')
            ]
        },
    )


# -- precision, dtypes, state, API -------------------------------------------------------------------


class _Float32Inside(NumpyCompiled):
    """Declares float64 but computes in float32 and casts back (an accumulation in float32)."""

    def _simulate(self, inputs, record):
        rec = Simulator(self.built, self._params, np.float32).run(
            {k: v.astype(np.float32) for k, v in inputs.items()}, record
        )
        return {p: {v: a.astype(self.dtype) for v, a in d.items()} for p, d in rec.items()}

    def _loss_and_grads(self, inputs, labels):
        if self.dtype == np.float32 or self.request.rule.kind != "bptt":
            return super()._loss_and_grads(inputs, labels)
        loss, grads, pred = bptt_loss_and_grads(
            self.built,
            self._params,
            np.float32,
            self.request.rule,
            self.request.readout,
            {k: v.astype(np.float32) for k, v in inputs.items()},
            labels,
        )
        return loss, {k: v.astype(self.dtype) for k, v in grads.items()}, pred


def float32_accumulation():
    return subclass_mutant("float32_accumulation", _Float32Inside)


class _Float16Membrane(NumpyCompiled):
    """In float32, the whole run is computed in float16."""

    def _simulate(self, inputs, record):
        if self.dtype != np.float32:
            return super()._simulate(inputs, record)
        rec = Simulator(self.built, self._params, np.float16).run(
            {k: v.astype(np.float16) for k, v in inputs.items()}, record
        )
        return {p: {v: a.astype(self.dtype) for v, a in d.items()} for p, d in rec.items()}


def float16_accumulation():
    return subclass_mutant("float16_accumulation", _Float16Membrane)


class _CarryOver(NumpyCompiled):
    """Each simulate continues from where the previous one ended."""

    def _simulate(self, inputs, record):
        sim = Simulator(self.built, self._params, self.dtype)
        T, B = next(iter(inputs.values())).shape[:2]
        sim.start(B)
        prev = getattr(self, "_last", None)
        if prev is not None and prev[0] == B:
            sim.state, sim.history = prev[1], prev[2]
        out = {
            n: {v: np.empty((T, B, self.built.populations[n].n), self.dtype) for v in vs} for n, vs in record.items()
        }
        for t in range(T):
            rec = sim.step({k: x[t] for k, x in inputs.items()})
            for n, vs in record.items():
                for v in vs:
                    out[n][v][t] = rec[n][v]
        self._last = (B, sim.state, sim.history)
        return out


def state_carried_over():
    return subclass_mutant("state_carried_over", _CarryOver)


class _Noisy(NumpyCompiled):
    _rng = np.random.default_rng()

    def _simulate(self, inputs, record):
        rec = super()._simulate(inputs, record)
        for d in rec.values():
            if "V" in d:
                d["V"] = d["V"] * (1 + 1e-15 * self._rng.standard_normal(d["V"].shape))
        return rec


def nondeterministic():
    return subclass_mutant("nondeterministic", _Noisy)


class _SetIgnored(NumpyCompiled):
    def _set_params(self, params):
        pass


def set_params_ignored():
    return subclass_mutant("set_params_ignored", _SetIgnored)


class _GetView(NumpyCompiled):
    def _get_params(self):
        return self._params


def get_params_view():
    return subclass_mutant("get_params_view", _GetView)


class _NoClip(NumpyCompiled):
    def _clip(self, arr, low, high):
        return arr


def alpha_not_clipped():
    return subclass_mutant("alpha_not_clipped", _NoClip)


class _LostUpdates(NumpyCompiled):
    def _native_params(self):
        return dict(self._params)


def train_step_loses_updates():
    return subclass_mutant("train_step_loses_updates", _LostUpdates)


class _Lenient(NumpyCompiled):
    def simulate(self, x, record=None):
        if not isinstance(x, dict):
            x = np.abs(np.nan_to_num(np.asarray(x, dtype=np.float64)))
        return super().simulate(x, record)


def bad_inputs_accepted():
    return subclass_mutant("bad_inputs_accepted", _Lenient)


class _Fallback(NumpyBackend):
    """Declares LIF only and no e-prop, but silently runs anything on the reference."""

    name = "silent_fallback"

    def capabilities(self):
        return sl.Capabilities(
            models={"LIF", "LI"},
            dtypes={"float32", "float64"},
            rules={"bptt"},
            surrogates={"superspike"},
            readouts={"per_step"},
            stepping=True,
        )

    def compile(self, network, **kw):
        try:
            return super().compile(network, **kw)
        except sl.UnsupportedFeature:
            return NumpyBackend().compile(network, **kw)


def silent_fallback():
    return _Fallback()


#: name -> (factory, checks of which at least the first must fail (all listed should), checks to run)
MUTANTS = {
    "zero_reset_subtracts": (zero_reset_subtracts, ["forward_run", "step_trajectory"], None),
    "reset_by_one": (reset_by_one, ["forward_run", "step_trajectory"], None),
    "delay_off_by_one": (delay_off_by_one, ["forward_run", "step_trajectory"], None),
    "refractory_ignored": (refractory_ignored, ["forward_run", "step_trajectory", "step_random_states"], None),
    "refractory_one_short": (refractory_one_short, ["forward_run", "step_trajectory", "step_random_states"], None),
    "spikes_strictly_above": (spikes_strictly_above, ["forward_run", "step_trajectory"], None),
    "adaptation_lags": (adaptation_lags, ["forward_run", "step_trajectory"], None),
    "scale_input_ignored": (scale_input_ignored, ["forward_run", "step_trajectory"], None),
    "bias_unscaled": (bias_unscaled, ["forward_run", "step_trajectory"], None),
    "heterogeneity_averaged": (heterogeneity_averaged, ["forward_run", "step_trajectory"], None),
    "batch_mixed": (batch_mixed, ["batch_independence", "forward_run"], None),
    "step_ignores_refractory_state": (step_ignores_refractory_state, ["step_trajectory", "step_random_states"], None),
    "surrogate_ignores_v_thresh": (surrogate_ignores_v_thresh, ["bptt_grads"], None),
    "surrogate_scaled": (surrogate_scaled, ["bptt_grads", "train_steps"], None),
    "surrogate_argument_scaled": (surrogate_argument_scaled, ["bptt_grads"], None),
    "surrogate_not_masked_when_refractory": (surrogate_not_masked_when_refractory, ["bptt_grads"], None),
    "detach_reset_ignored": (detach_reset_ignored, ["bptt_grads"], None),
    "grads_outside_mask": (grads_outside_mask, ["bptt_grads"], None),
    "grads_batch_mixed": (grads_batch_mixed, ["bptt_grads", "batch_independence_grads"], None),
    "eprop_trace_wrong_decay": (eprop_trace_wrong_decay, ["eprop_grads", "eprop_equals_bptt"], None),
    "eprop_filter_wrong_decay": (eprop_filter_wrong_decay, ["eprop_grads", "eprop_equals_bptt"], None),
    "eprop_zero_reset_factor_missing": (eprop_zero_reset_factor_missing, ["eprop_grads", "eprop_equals_bptt"], None),
    "eprop_regularizer_ignored": (eprop_regularizer_ignored, ["eprop_grads"], None),
    "eprop_surrogate_ignores_v_thresh": (eprop_surrogate_ignores_v_thresh, ["eprop_grads", "eprop_equals_bptt"], None),
    "float32_accumulation": (float32_accumulation, ["forward_run", "dtype_handling", "bptt_grads"], None),
    "float16_accumulation": (float16_accumulation, ["forward_run"], None),
    "state_carried_over": (state_carried_over, ["determinism"], None),
    "nondeterministic": (nondeterministic, ["determinism"], None),
    "set_params_ignored": (set_params_ignored, ["params_roundtrip"], None),
    "get_params_view": (get_params_view, ["params_roundtrip"], None),
    "alpha_not_clipped": (alpha_not_clipped, ["train_steps"], None),
    "train_step_loses_updates": (train_step_loses_updates, ["train_steps"], None),
    "bad_inputs_accepted": (bad_inputs_accepted, ["bad_inputs"], None),
    "silent_fallback": (silent_fallback, ["undeclared_raise"], None),
}
