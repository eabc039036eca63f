"""CPU time taken by other guests of a virtual machine's host while a benchmark runs.

On a shared virtual machine the hypervisor may run other guests on "our" cores; Linux counts that
time as *steal* in ``/proc/stat``.  Wall-clock times taken while a large fraction is stolen are
slower than the code is, so the benchmarks record the fraction next to each time.
"""

from __future__ import annotations

__all__ = ["StealMeter"]


def _read() -> tuple[int, int] | None:
    """``(steal, busy + steal)`` clock ticks summed over all CPUs; None where not available."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, steal = (int(fields[i]) for i in (1, 2, 3, 8))
    return steal, user + nice + system + steal


class StealMeter:
    """``with StealMeter() as m: ...``; then ``m.fraction``: the stolen share of the CPU time that
    was busy or stolen meanwhile (0 to 1), or None where ``/proc/stat`` is missing."""

    def __enter__(self) -> StealMeter:
        self._start = _read()
        self.fraction: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        end = _read()
        if self._start is None or end is None:
            return
        steal, total = end[0] - self._start[0], end[1] - self._start[1]
        self.fraction = steal / total if total > 0 else 0.0
