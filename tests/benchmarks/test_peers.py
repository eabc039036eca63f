"""The peers benchmark's paired mode (``benchmarks/peers.py --paired``)."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import peers  # noqa: E402


def test_paired_rounds_rotate_and_divide_by_spikeloom(monkeypatch):
    clock = iter(range(1000))  # perf_counter: 0, 1, 2, ...
    monkeypatch.setattr(peers.time, "perf_counter", lambda: float(next(clock)))
    order = []
    # ticks each step spans, in the order each library's steps run (the first: the warm-up)
    spans = {"spikeloom": iter([1, 1, 2, 1]), "snntorch": iter([1, 4, 4, 6]), "norse": iter([1, 5, 3, 9])}

    def library(name):
        def make(T, B, scales):
            def step():
                order.append(name)
                for _ in range(next(spans[name]) - 1):
                    peers.time.perf_counter()  # let the clock run

            return step

        return make

    monkeypatch.setattr(peers, "LIBRARIES", {name: library(name) for name in spans})
    r = peers.measure_paired(["spikeloom", "snntorch", "norse"], 10, 2, repeats=3, threads=1, scales=(0.4, 0.2))
    assert order[3:] == [
        "spikeloom",
        "snntorch",
        "norse",
        "snntorch",
        "norse",
        "spikeloom",
        "norse",
        "spikeloom",
        "snntorch",
    ]
    assert r["times_s"] == {"spikeloom": [1.0, 2.0, 1.0], "snntorch": [4.0, 4.0, 6.0], "norse": [5.0, 3.0, 9.0]}
    assert r["ratios"] == [4.0, 1.5, 6.0] and r["median_ratio"] == 4.0
