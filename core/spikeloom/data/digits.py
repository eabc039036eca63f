"""scikit-learn's bundled 8x8 handwritten digits as spike trains (SPEC §9): 1797 images, no download.

Grey values 0..16 are scaled to ``[0, 1]`` by ``/16``.  Three encodings, chosen by name:

- ``"sequential"`` (default): like spiking sequential MNIST, one pixel per step in raster order
  through :func:`~spikeloom.data.encoding.threshold_crossing` — 64 steps, 79 input neurons.
- ``"rows"``: one image row per bin of ``steps_per_row`` steps (default 8, so 64 steps), 8 columns
  x ``levels`` (default 4) thermometer neurons = 32 input neurons; see
  :func:`~spikeloom.data.encoding.row_levels`.  Much easier to learn than the sequential code,
  which carries the image only as changes between consecutive pixels.
- ``"pixels"``: every pixel at once, ``levels`` (default 4) thermometer neurons per pixel = 256
  input neurons, repeated every ``every`` (2) of ``steps`` (16) steps; see
  :func:`~spikeloom.data.encoding.pixel_levels`.  The easiest and fastest: the default of
  ``spikeloom train`` (docs/training.md has the measured comparison).
"""

from __future__ import annotations

import numbers

import numpy as np

from .dataset import ArrayDataset
from .encoding import pixel_levels, row_levels, threshold_crossing

__all__ = ["load_digits", "digits_images", "encode_digits", "ENCODINGS", "N_CLASSES"]

N_CLASSES = 10
ENCODINGS = ("sequential", "rows", "pixels")


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 8, 8] float64 in [0, 1], labels int64 [1797])`` from scikit-learn."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data set needs scikit-learn: pip install 'spikeloom[train]'") from None
    bunch = _sk_load_digits()
    return np.asarray(bunch.images, dtype=np.float64) / 16.0, np.asarray(bunch.target, dtype=np.int64)


def encode_digits(images, encoding: str = "sequential", **options) -> np.ndarray:
    """Spikes ``[S, T, N]`` for ``images`` ``[S, 8, 8]`` in ``[0, 1]`` with the named encoding.

    ``options`` go to the encoder: ``n_thresholds``, ``cue_steps`` for ``"sequential"``;
    ``levels``, ``steps_per_row`` for ``"rows"``; ``levels``, ``steps``, ``every`` for ``"pixels"``.
    """
    img = np.asarray(images, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"encode_digits: images must be [S, H, W], got shape {img.shape}")
    try:
        if encoding == "sequential":
            return threshold_crossing(img.reshape(img.shape[0], -1), **options)
        if encoding == "rows":
            return row_levels(img, **options)
        if encoding == "pixels":
            return pixel_levels(img, **options)
    except TypeError as exc:
        raise ValueError(f"encode_digits: bad option for encoding {encoding!r}: {exc}") from None
    raise ValueError(f"encode_digits: unknown encoding {encoding!r}; choose one of {list(ENCODINGS)}")


def _stratified_test_indices(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD1617]))
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = round(test_fraction * len(members))
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen))


def load_digits(
    encoding: str = "sequential", *, test_fraction: float = 0.25, seed: int = 0, limit: int | None = None, **options
) -> tuple[ArrayDataset, ArrayDataset]:
    """``(train, test)`` :class:`ArrayDataset` of the encoded digits.

    The split is stratified by class and fixed by ``seed`` (``test_fraction`` of each class goes to
    the test set: 450 test / 1347 train images by default).  ``limit`` keeps only the first
    ``limit`` examples of each part (for quick runs).  ``options`` go to the encoder
    (:func:`encode_digits`).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"load_digits: unknown encoding {encoding!r}; choose one of {list(ENCODINGS)}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ValueError(f"load_digits: test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"load_digits: seed must be an integer >= 0, got {seed!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise ValueError(f"load_digits: limit must be None or an integer >= 1, got {limit!r}")
    images, labels = digits_images()
    spikes = encode_digits(images, encoding, **options)
    test_idx = _stratified_test_indices(labels, float(test_fraction), int(seed))
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_idx] = True
    train_idx = np.flatnonzero(~mask)
    # a seeded order, so that a ``limit`` keeps a class-mixed sample rather than the file's first rows
    order_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD1618]))
    train_idx = order_rng.permutation(train_idx)
    test_idx = order_rng.permutation(test_idx)
    if limit is not None:
        train_idx, test_idx = train_idx[:limit], test_idx[:limit]
    train = ArrayDataset(spikes[train_idx], labels[train_idx], N_CLASSES, name=f"digits-{encoding}-train")
    test = ArrayDataset(spikes[test_idx], labels[test_idx], N_CLASSES, name=f"digits-{encoding}-test")
    return train, test
