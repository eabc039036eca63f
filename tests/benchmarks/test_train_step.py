"""The training-step benchmark's paired mode (``benchmarks/train_step.py --paired``)."""

from __future__ import annotations

import os
import statistics
import sys

import pytest

pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import train_step  # noqa: E402


def test_paired_ratios_divide_the_steps_of_each_pair(monkeypatch):
    clock = iter(range(1000))  # perf_counter: 0, 1, 2, ...
    monkeypatch.setattr(train_step.time, "perf_counter", lambda: float(next(clock)))
    # ticks each step spans, in the order each rule's steps run (the first: the warm-up)
    spans = {"bptt": iter([1, 1, 2, 1, 3]), "eprop": iter([1, 2, 6, 5, 3])}

    class Net:
        def __init__(self, rule):
            self.rule = rule

        def train_step(self, x, labels, opt):
            for _ in range(next(spans[self.rule]) - 1):
                train_step.time.perf_counter()  # let the clock run

    monkeypatch.setattr(train_step, "setup", lambda backend, device, rule, T, B, scales: (Net(rule), None, None, None))
    r = train_step.measure_paired("torch", "cpu", 10, 2, repeats=4)
    assert r["times_s"] == {"bptt": [1.0, 2.0, 1.0, 3.0], "eprop": [2.0, 6.0, 5.0, 3.0]}
    assert r["ratios"] == [2.0, 3.0, 5.0, 1.0] and r["median_ratio"] == 2.5
    assert r["us_per_step"] == {"bptt": 1.5e5, "eprop": 4e5}


def test_paired_on_the_torch_backend():
    r = train_step.measure_paired("torch", "cpu", 8, 2, repeats=3)
    assert len(r["ratios"]) == 3 and all(q > 0 for q in r["ratios"])
    assert r["median_ratio"] == statistics.median(r["ratios"])
    assert set(r["us_per_step"]) == {"bptt", "eprop"}
