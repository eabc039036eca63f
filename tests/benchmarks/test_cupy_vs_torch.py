"""The CuPy-against-torch benchmark's backend variants (``benchmarks/cupy_vs_torch.py``): each name
sets the CuPy backend's switches it stands for, and the plain ``cupy`` puts back the defaults."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

import spikeloom_cupy.bptt as bp
import spikeloom_cupy.eprop as ep
import spikeloom_cupy.forward as fw
import spikeloom_cupy.gemm as gm

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import cupy_vs_torch  # noqa: E402

#: (module, switch) pairs the variants set
SWITCHES = [
    (fw, "BLOCK_LOOP"),
    (fw, "BLOCK_FORWARD_DENSE_MAX_N"),
    (bp, "BLOCK_BACKWARD_MAX_N"),
    (ep, "EPROP_STEPS"),
    (ep, "EPROP_PRE_TILE"),
    (ep, "EPROP_TILE_GROUP"),
    (ep, "SHARED_PRE_TRACES"),
    (ep, "SPECIALISED_SYNAPSES"),
    (gm, "BLAS_GEMM"),
]


@pytest.fixture
def switches(monkeypatch):
    """The switches as a dict after each call; restored at the end of the test."""
    for module, name in SWITCHES:
        monkeypatch.setattr(module, name, getattr(module, name))
    return lambda: {name: getattr(module, name) for module, name in SWITCHES}


def test_plain_cupy_is_the_defaults(switches):
    defaults = switches()
    cupy_vs_torch.backend_for("cupy-k16")
    assert switches() != defaults
    cupy_vs_torch.backend_for("cupy")
    assert switches() == defaults


@pytest.mark.parametrize(
    "name, changed",
    [
        ("cupy-steps", {"BLOCK_LOOP": False, "EPROP_STEPS": 0}),
        ("cupy-fwd-block", {"BLOCK_FORWARD_DENSE_MAX_N": 1 << 30}),
        ("cupy-bwd-block", {"BLOCK_BACKWARD_MAX_N": 1 << 30}),
        ("cupy-bwd-gemm", {"BLOCK_BACKWARD_MAX_N": 0}),
        ("cupy-tile8", {"EPROP_PRE_TILE": 8}),
        ("cupy-group1", {"EPROP_TILE_GROUP": 1}),
        ("cupy-k32", {"EPROP_STEPS": 32}),
        ("cupy-inthread", {"SHARED_PRE_TRACES": False}),
        ("cupy-generic", {"SPECIALISED_SYNAPSES": False}),
        ("cupy-matmul", {"BLAS_GEMM": False}),
    ],
)
def test_each_variant_changes_only_its_switches(switches, name, changed):
    defaults = switches()
    assert all(defaults[k] != v for k, v in changed.items())
    cupy_vs_torch.backend_for(name)
    assert switches() == {**defaults, **changed}


@pytest.mark.parametrize(
    "name, rules",
    [
        ("torch", {"bptt", "eprop"}),
        ("cupy", {"bptt", "eprop"}),
        ("cupy-steps", {"bptt", "eprop"}),
        ("cupy-events", {"bptt", "eprop"}),
        ("cupy-matmul", {"bptt", "eprop"}),
        ("cupy-fwd-block", {"bptt"}),
        ("cupy-bwd-gemm", {"bptt"}),
        ("cupy-tile4", {"eprop"}),
        ("cupy-group1", {"eprop"}),
        ("cupy-k32", {"eprop"}),
        ("cupy-inthread", {"eprop"}),
        ("cupy-generic", {"eprop"}),
    ],
)
def test_variants_of_one_rule_are_timed_with_that_rule_only(name, rules):
    assert {r for r in ("bptt", "eprop") if cupy_vs_torch.timed_with(name, r)} == rules


class _FakeCompiled:
    """Records the recurrent delivery mode each training step starts in; each step leaves "dense"
    behind, as a step with high activity does."""

    def __init__(self):
        self.recurrent_mode = "events"
        self.seen = []

    def train_step(self, x, labels, opt):
        self.seen.append(self.recurrent_mode)
        self.recurrent_mode = "dense"
        return types.SimpleNamespace(loss=0.0)

    def simulate(self, x, record):
        return {"hidden": {"z": np.zeros((len(x), x.shape[1], 4))}}


@pytest.mark.parametrize("name, expected", [("cupy", ["events", "dense", "dense"]), ("cupy-events", ["events"] * 3)])
def test_cupy_events_starts_every_step_event_driven(monkeypatch, name, expected):
    made = []

    class Backend:
        def compile(self, *args, **kwargs):
            made.append(_FakeCompiled())
            return made[-1]

    monkeypatch.setattr(cupy_vs_torch, "backend_for", lambda n: Backend())
    monkeypatch.setattr(cupy_vs_torch, "DEVICE", "cpu")
    cupy_vs_torch.measure(name, "eprop", T=3, B=2, N=4, repeats=2)
    assert made[0].seen == expected
