"""The CuPy-against-torch benchmark's backend variants (``benchmarks/cupy_vs_torch.py``): each name
sets the CuPy backend's switches it stands for, and the plain ``cupy`` puts back the defaults."""

from __future__ import annotations

import os
import sys

import pytest

import spikeloom_cupy.bptt as bp
import spikeloom_cupy.eprop as ep
import spikeloom_cupy.forward as fw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import cupy_vs_torch  # noqa: E402

#: (module, switch) pairs the variants set
SWITCHES = [
    (fw, "BLOCK_LOOP"),
    (fw, "BLOCK_FORWARD_DENSE_MAX_N"),
    (bp, "BLOCK_BACKWARD_MAX_N"),
    (ep, "EPROP_STEPS"),
    (ep, "EPROP_PRE_TILE"),
    (ep, "SHARED_PRE_TRACES"),
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
        ("cupy-k32", {"EPROP_STEPS": 32}),
        ("cupy-inthread", {"SHARED_PRE_TRACES": False}),
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
        ("cupy-fwd-block", {"bptt"}),
        ("cupy-bwd-gemm", {"bptt"}),
        ("cupy-tile4", {"eprop"}),
        ("cupy-k32", {"eprop"}),
        ("cupy-inthread", {"eprop"}),
    ],
)
def test_variants_of_one_rule_are_timed_with_that_rule_only(name, rules):
    assert {r for r in ("bptt", "eprop") if cupy_vs_torch.timed_with(name, r)} == rules
