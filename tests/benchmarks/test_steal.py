"""The benchmarks' record of CPU time stolen by other guests (``benchmarks/steal.py``)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import steal  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")
def test_fraction_is_a_share_of_the_time_spent():
    with steal.StealMeter() as m:
        sum(i * i for i in range(200_000))  # some CPU time to share out
    assert m.fraction is not None and 0.0 <= m.fraction <= 1.0


def test_no_proc_stat_gives_none(monkeypatch):
    monkeypatch.setattr(steal, "_read", lambda: None)
    with steal.StealMeter() as m:
        pass
    assert m.fraction is None


def test_fraction_from_the_counters(monkeypatch):
    readings = iter([(100, 1000), (130, 1100)])  # 30 of 100 busy-or-stolen ticks stolen
    monkeypatch.setattr(steal, "_read", lambda: next(readings))
    with steal.StealMeter() as m:
        pass
    assert m.fraction == pytest.approx(0.3)
