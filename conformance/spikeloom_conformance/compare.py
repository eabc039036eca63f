"""Comparisons that fail with a precise message: the first mismatching step, population, variable,
batch element and neuron (or parameter and index), the two values and what was allowed."""

from __future__ import annotations

import numpy as np

from .reference import theta_of
from .tolerances import Tolerance

__all__ = ["compare_arrays", "compare_recordings", "compare_state", "scale_of", "VAR_ORDER"]

#: the order in which the variables of one step are compared (inputs of a step before its outputs)
VAR_ORDER = ("I", "V", "a", "z")


def scale_of(arr, floor: float = 1.0) -> float:
    """The magnitude atol is relative to: the largest ``|value|``, at least ``floor``."""
    arr = np.asarray(arr, dtype=np.float64)
    m = float(np.max(np.abs(arr))) if arr.size else 0.0
    return max(m, floor) if np.isfinite(m) else floor


def _fmt(v) -> str:
    return f"{float(v):.9g}"


def _close(got, want, rtol, atol_abs):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = np.abs(got - want)
    allowed = atol_abs + rtol * np.abs(want)
    ok = diff <= allowed
    ok &= np.isfinite(got) | (got == want)
    return ok, diff, allowed


def compare_arrays(label: str, got, want, *, rtol: float, atol: float, scale: float | None = None) -> None:
    """``|got - want| <= atol * scale + rtol * |want|`` everywhere, else AssertionError naming the
    first index (C order) that differs.  ``scale`` defaults to :func:`scale_of` ``(want)``."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{label}: shape {list(got.shape)}, expected {list(want.shape)}")
    if scale is None:
        scale = scale_of(want, floor=0.0) or 1.0
    ok, diff, allowed = _close(got, want, rtol, atol * scale)
    if ok.all():
        return
    bad = np.argwhere(~ok)
    idx = tuple(int(i) for i in bad[0])
    where = f" at index {list(idx)}" if idx else ""
    raise AssertionError(
        f"{label}: first mismatch{where}: got {_fmt(got[idx])}, expected {_fmt(want[idx])} "
        f"(|diff| {diff[idx]:.3g}, allowed {allowed[idx]:.3g}); {len(bad)} of {want.size} entries differ, "
        f"largest |diff| {np.nanmax(np.where(np.isfinite(diff), diff, np.inf)):.3g} (scale {scale:.3g})"
    )


def _excusable(built, pop, got_pop, want_V, want_theta, refractory, tol: Tolerance):
    """Where a spike mismatch is a legitimate float flip: the reference membrane lies within
    ``spike_margin * v_thresh`` of its threshold, the neuron is not refractory in the reference,
    and the backend's own membrane is on the side of its own threshold that its spike says."""
    v_thresh = built.populations[pop].params["v_thresh"]
    near = np.abs(want_V - want_theta) <= tol.spike_margin * v_thresh
    V_g = np.asarray(got_pop["V"], dtype=np.float64)
    a_g = got_pop.get("a")
    theta_g = theta_of(built, pop, None if a_g is None else np.asarray(a_g, dtype=np.float64))
    consistent = (np.asarray(got_pop["z"]) > 0) == (V_g >= theta_g)
    return near & consistent & ~refractory


def compare_recordings(
    label: str,
    built,
    got: dict,
    want: dict,
    tol: Tolerance,
    *,
    rtol: float,
    atol: float,
    refractory: dict,
    theta: dict,
    scales: dict | None = None,
    t0: int = 0,
    allow_flips: bool = True,
) -> str:
    """Compare recordings ``{pop: {var: [T, B, N]}}`` step by step.

    Returns "" when everything agrees, or a note when a float spike flipped legitimately (the runs
    agree up to and including that step and are not compared after it; see
    :mod:`~spikeloom_conformance.tolerances`).  Raises AssertionError at the first real mismatch.
    ``refractory``/``theta``: the reference's, per spiking population ``[T, B, N]``; ``scales``:
    ``{(pop, var): scale}`` (default: from ``want``); ``t0``: the step number of index 0.
    """
    order = [p.name for p in built.neuron_populations]
    first_bad = None  # (t, pop index, var index, b, n, message)
    first_flip = None  # (t, text)
    for pi, pop in enumerate(order):
        if pop not in want:
            continue
        if pop not in got:
            raise AssertionError(f"{label}: population {pop!r} missing from the backend's recording")
        for vi, var in enumerate(VAR_ORDER):
            if var not in want[pop]:
                continue
            w = np.asarray(want[pop][var])
            if var not in got[pop]:
                raise AssertionError(f"{label}: variable {pop}.{var} missing from the backend's recording")
            g = np.asarray(got[pop][var])
            if g.shape != w.shape:
                raise AssertionError(f"{label}: {pop}.{var} has shape {list(g.shape)}, expected {list(w.shape)}")
            if var == "z":
                bad = g != w
                if allow_flips and bad.any() and "V" in got[pop]:
                    exc = _excusable(built, pop, got[pop], want[pop]["V"], theta[pop], refractory[pop], tol)
                    flips = bad & exc
                    if flips.any():
                        ft = int(np.argwhere(flips)[0][0])
                        if first_flip is None or ft < first_flip[0]:
                            _, b, n = (int(i) for i in np.argwhere(flips)[0])
                            gap = float(want[pop]["V"][ft, b, n] - theta[pop][ft, b, n])
                            first_flip = (
                                ft,
                                f"spike of {pop}[{b}, {n}] flipped at step {ft + t0} within float round-off of the "
                                f"threshold (reference V - theta = {gap:.3g})",
                            )
                    bad = bad & ~exc
                diff = allowed = None
            else:
                scale = (scales or {}).get((pop, var)) or scale_of(w)
                ok, diff, allowed = _close(g, w, rtol, atol * scale)
                bad = ~ok
            if not bad.any():
                continue
            where = np.argwhere(bad)
            t, b, n = (int(i) for i in where[0])
            key = (t, pi, vi)
            if first_bad is not None and key >= first_bad[:3]:
                continue
            count = int(bad.sum())
            if var == "z":
                gap = float(want[pop]["V"][t, b, n] - theta[pop][t, b, n]) if "V" in want[pop] else float("nan")
                extra = f"reference V - theta = {gap:.3g}"
                if refractory[pop][t, b, n]:
                    extra += ", the reference neuron is refractory"
                msg = f"got spike {_fmt(g[t, b, n])}, expected {_fmt(w[t, b, n])} ({extra})"
            else:
                msg = (
                    f"got {_fmt(g[t, b, n])}, expected {_fmt(w[t, b, n])} "
                    f"(|diff| {diff[t, b, n]:.3g}, allowed {allowed[t, b, n]:.3g})"
                )
            first_bad = (
                t,
                pi,
                vi,
                f"{label}: first mismatch at step {t + t0}, population {pop!r}, variable {var!r}, batch element {b}, "
                f"neuron {n}: {msg}; {count} of {w.size} values of {pop}.{var} differ over the compared steps",
            )
    if first_bad is not None and (first_flip is None or first_bad[0] <= first_flip[0]):
        raise AssertionError(first_bad[3])
    if first_flip is not None:
        return first_flip[1] + f"; steps after {first_flip[0] + t0} were not compared"
    return ""


def compare_state(label: str, built, got: dict, want: dict, tol: Tolerance, *, skip: dict | None = None) -> None:
    """Compare two host states (layout of ``Compiled.step``): floats to the step tolerance,
    spikes, refractory counters and spike history exactly.  ``skip``: ``{pop: [B, N] bool}``
    neurons whose spike flipped legitimately in this step (their post-step state is not compared)."""
    skip = skip or {}
    if set(got) != {"populations", "history"}:
        raise AssertionError(f"{label}: the state must have keys 'populations' and 'history', got {sorted(got)}")
    for p in built.neuron_populations:
        pop = p.name
        if pop not in got["populations"]:
            raise AssertionError(f"{label}: population {pop!r} missing from the state")
        wp, gp = want["populations"][pop], got["populations"][pop]
        if set(gp) != set(wp):
            raise AssertionError(f"{label}: state of {pop!r} holds {sorted(gp)}, expected {sorted(wp)}")
        mask = skip.get(pop)
        for var in ("I", "V", "a", "z", "ref"):
            if var not in wp:
                continue
            w, g = np.asarray(wp[var]), np.asarray(gp[var])
            if g.shape != w.shape:
                raise AssertionError(f"{label}: state {pop}.{var} has shape {list(g.shape)}, expected {list(w.shape)}")
            if mask is not None and var in ("V", "z", "ref"):
                g = np.where(mask, w, g)
            what = f"{label}: state {pop}.{var} (after the step)"
            if var in ("z", "ref"):
                if not np.array_equal(g, w):
                    b, n = (int(i) for i in np.argwhere(g != w)[0])
                    raise AssertionError(
                        f"{what}: first mismatch at batch element {b}, neuron {n}: got {_fmt(g[b, n])}, "
                        f"expected {_fmt(w[b, n])}"
                    )
            else:
                ok, diff, allowed = _close(g, w, tol.step_rtol, tol.step_atol * scale_of(w))
                if not ok.all():
                    b, n = (int(i) for i in np.argwhere(~ok)[0])
                    raise AssertionError(
                        f"{what}: first mismatch at batch element {b}, neuron {n}: got {_fmt(g[b, n])}, "
                        f"expected {_fmt(w[b, n])} (|diff| {diff[b, n]:.3g}, allowed {allowed[b, n]:.3g})"
                    )
    if set(got["history"]) != set(want["history"]):
        raise AssertionError(
            f"{label}: state history names {sorted(got['history'])}, expected {sorted(want['history'])}"
        )
    for src, w in want["history"].items():
        g = np.asarray(got["history"][src])
        if g.shape != w.shape:
            raise AssertionError(f"{label}: history of {src!r} has shape {list(g.shape)}, expected {list(w.shape)}")
        if src in skip:
            g = g.copy()
            g[0] = np.where(skip[src], w[0], g[0])
        if not np.array_equal(g, w):
            d, b, n = (int(i) for i in np.argwhere(g != w)[0])
            raise AssertionError(
                f"{label}: history of {src!r}: the spikes emitted {d + 1} step(s) ago differ first at batch element "
                f"{b}, neuron {n}: got {_fmt(g[d, b, n])}, expected {_fmt(w[d, b, n])}"
            )
