"""Delivering spikes through a connection: event-driven kernels, or cuBLAS where activity is high.

A spike array is mostly zeros; the event-driven kernels read the weight rows of presynaptic
neurons that spiked only.  Dense matrix products (cuBLAS through CuPy) win once a sizeable
fraction of the entries is non-zero: :func:`choose_delivery` decides from the measured fraction.
"""

from __future__ import annotations

from .runtime import Runtime

__all__ = ["EVENT_MAX_DENSITY", "choose_delivery", "deliver_rows", "deliver_step"]

#: above this fraction of non-zero presynaptic entries, delivery uses a dense product
EVENT_MAX_DENSITY = 0.1


def choose_delivery(density: float, threshold: float = EVENT_MAX_DENSITY) -> str:
    """``"events"`` or ``"dense"`` for spikes with this fraction of non-zero entries."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"choose_delivery: density must lie in [0, 1], got {density!r}")
    return "events" if density <= threshold else "dense"


def deliver_rows(rt: Runtime, x2d, W, out2d, accumulate: bool, mode: str | None = None) -> str:
    """``out2d (+)= x2d @ W`` for spikes ``x2d`` ``[R, N_pre]`` (all steps of a source at once);
    returns the mode used (chosen from the density of ``x2d`` unless given)."""
    xp = rt.xp
    R, n_pre = x2d.shape
    n_post = W.shape[1]
    if mode is None:
        nnz = int(xp.count_nonzero(x2d))
        mode = choose_delivery(nnz / max(1, x2d.size))
    if mode == "dense":
        rt.gemm(x2d, W, out2d, accumulate=accumulate)
        return mode
    rows, cols = xp.nonzero(x2d)
    rows = xp.ascontiguousarray(rows.astype(xp.int64))
    cols = xp.ascontiguousarray(cols.astype(xp.int64))
    vals = xp.ascontiguousarray(x2d[rows, cols])
    rowptr = xp.ascontiguousarray(xp.searchsorted(rows, xp.arange(R + 1, dtype=xp.int64)).astype(xp.int64))
    if vals.size == 0:
        vals, cols = rt.dummy, rt.dummy_l
    rt.launch("propagate_csr", R * n_post, R, n_post, rowptr, cols, vals, W, out2d, int(accumulate))
    return mode


def deliver_step(rt: Runtime, s, W, out, accumulate: bool, mode: str = "events", site=None) -> None:
    """``out (+)= s @ W`` for one step's spikes ``s`` ``[B, N_pre]`` (``site``: see ``Runtime.launch``)."""
    if mode == "dense":
        rt.gemm(s, W, out, accumulate=accumulate)
        return
    B, n_pre = s.shape
    n_post = W.shape[1]
    rt.launch("propagate_scan", B * n_post, B, n_pre, n_post, s, W, out, int(accumulate), site=site)
