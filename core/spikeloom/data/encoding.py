"""Spike encodings of grey-level images (values in ``[0, 1]``).

``threshold_crossing`` is Bellec et al.'s code for sequential images (SPEC §9): one pixel per step
in raster order, and input neurons that fire when the grey value crosses a threshold between the
previous pixel and the current one.  ``row_levels`` is a shorter, denser alternative that shows one
image row per time bin.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["threshold_crossing", "threshold_crossing_size", "row_levels", "pixel_levels"]


def _images(values, ndim: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cannot be read as an array of numbers ({exc})") from None
    if arr.ndim != ndim:
        raise ValueError(f"{where}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{where}: empty input (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: contains NaN or inf")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{where}: grey values must lie in [0, 1], got min {arr.min()}, max {arr.max()}")
    return arr


def _positive_int(value, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def threshold_crossing_size(n_thresholds: int = 40, cue: bool = False) -> int:
    """Number of input neurons of :func:`threshold_crossing`: ``2 (n_thresholds - 1) + 1 (+ 1 cue)``."""
    return 2 * (n_thresholds - 1) + 1 + int(cue)


def threshold_crossing(sequences, *, n_thresholds: int = 40, cue_steps: int = 0) -> np.ndarray:
    """Bellec's threshold-crossing code for ``sequences`` ``[S, L]`` of grey values in ``[0, 1]``.

    Returns bool spikes ``[S, T, N]`` with ``T = L + cue_steps`` steps (one pixel per step) and
    ``N = 2 (n_thresholds - 1) + 1`` neurons (79 by default), plus one recall-cue neuron when
    ``cue_steps > 0``.  With thresholds ``th = linspace(0, 1, n_thresholds)``, a value is *above*
    threshold ``k`` when ``value >= th[k]`` (as in Bellec's code and tonic's SMNIST), and the
    pixel before step 0 is taken as 0:

    - neuron ``k`` (``0 <= k < n_thresholds - 1``), onset: fires at step ``t`` when pixel
      ``t - 1`` is below ``th[k]`` and pixel ``t`` is above it (an upward crossing);
    - neuron ``n_thresholds - 1 + k``, offset: fires at ``t`` on the downward crossing;
    - neuron ``2 (n_thresholds - 1)``: fires at every step whose pixel equals 1;
    - neuron ``2 (n_thresholds - 1) + 1`` (only with ``cue_steps > 0``): fires at each of the
      ``cue_steps`` steps appended after the image, during which nothing else fires.

    Threshold 0 is never crossed under this convention (no value is below 0), so its onset and
    offset neurons stay silent; they are kept so the layout matches the 79-neuron code.
    """
    seq = _images(sequences, 2, "threshold_crossing: sequences [S, L]")
    n_thresholds = _positive_int(n_thresholds, "threshold_crossing: n_thresholds", 2)
    cue_steps = _positive_int(cue_steps, "threshold_crossing: cue_steps", 0)
    S, L = seq.shape
    th = np.linspace(0.0, 1.0, n_thresholds)[:-1]  # the thresholds below 1
    prev = np.concatenate([np.zeros((S, 1)), seq[:, :-1]], axis=1)
    above_now = seq[:, :, None] >= th
    above_before = prev[:, :, None] >= th
    onset = above_now & ~above_before
    offset = above_before & ~above_now
    full = (seq >= 1.0)[:, :, None]
    parts = [onset, offset, full]
    if cue_steps:
        parts.append(np.zeros((S, L, 1), dtype=bool))
    out = np.concatenate(parts, axis=2)
    if cue_steps:
        cue = np.zeros((S, cue_steps, out.shape[2]), dtype=bool)
        cue[:, :, -1] = True
        out = np.concatenate([out, cue], axis=1)
    return out


def row_levels(images, *, levels: int = 4, steps_per_row: int = 8) -> np.ndarray:
    """A row-by-row level code for ``images`` ``[S, H, W]`` of grey values in ``[0, 1]``.

    Row ``r`` is shown during steps ``r * steps_per_row ... (r + 1) * steps_per_row - 1``, so
    ``T = H * steps_per_row``.  Each column ``c`` has ``levels`` neurons ``c * levels + l``; neuron
    ``(c, l)`` fires at every step of the row's bin when the pixel is at least ``(l + 0.5) / levels``
    (a thermometer code: brighter pixels drive more neurons).  Returns bool ``[S, T, W * levels]``.
    """
    img = _images(images, 3, "row_levels: images [S, H, W]")
    levels = _positive_int(levels, "row_levels: levels")
    steps_per_row = _positive_int(steps_per_row, "row_levels: steps_per_row")
    S, H, W = img.shape
    th = (np.arange(levels) + 0.5) / levels
    code = (img[:, :, :, None] >= th).reshape(S, H, W * levels)
    return np.repeat(code, steps_per_row, axis=1)


def pixel_levels(images, *, levels: int = 4, steps: int = 16, every: int = 2) -> np.ndarray:
    """All pixels at once, as a thermometer code repeated over time, for ``images`` ``[S, H, W]``
    of grey values in ``[0, 1]``.

    Pixel ``k`` (raster order) has ``levels`` neurons ``k * levels + l``; neuron ``(k, l)`` fires at
    steps ``0, every, 2 every, ...`` below ``steps`` when the pixel is at least ``(l + 0.5) / levels``.
    Returns bool ``[S, steps, H * W * levels]``.
    """
    img = _images(images, 3, "pixel_levels: images [S, H, W]")
    levels = _positive_int(levels, "pixel_levels: levels")
    steps = _positive_int(steps, "pixel_levels: steps")
    every = _positive_int(every, "pixel_levels: every")
    S = img.shape[0]
    th = (np.arange(levels) + 0.5) / levels
    code = (img.reshape(S, -1, 1) >= th).reshape(S, -1)
    out = np.zeros((S, steps, code.shape[1]), dtype=bool)
    out[:, ::every] = code[:, None, :]
    return out
