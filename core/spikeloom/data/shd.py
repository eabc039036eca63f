"""The Spiking Heidelberg Digits (SHD, Cramer et al.) from the HDF5 files the user has (SPEC §9).

A file (``shd_train.h5``: 8156 examples, ``shd_test.h5``: 2264) holds

- ``spikes/times``: one variable-length float array per example, spike times in **seconds**;
- ``spikes/units``: one variable-length integer array per example, the channel (0..699) of each spike;
- ``labels``: the class of each example (0..19: ten English and ten German digits);
- ``extra/speaker`` (speaker id per example) and ``extra/keys`` (class names), both optional here.

The reader keeps the events ragged (4 bytes per event) and bins them onto the ``dt`` grid only in
``batch(indices)``: a dense copy of the training file at 1 ms would take 8156 x 1400 x 700 bytes
(8 GB).  ``h5py`` is imported only when a file is read (``pip install 'spikeloom[data]'``).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from .ragged import RaggedDataset, RaggedEvents, n_steps_for, time_to_step

__all__ = [
    "load_shd",
    "read_shd",
    "SHD_CHANNELS",
    "SHD_CLASSES",
    "SHD_FILES",
    "SHD_URL",
    "SHD_DT",
    "SHD_DURATION",
]

SHD_CHANNELS = 700
SHD_CLASSES = 20
SHD_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
SHD_URL = "https://zenkelab.org/datasets/"
SHD_DT = 1.0  # ms: the grid of Knight & Nowotny's e-prop runs (SPEC §10: 1370 steps)
SHD_DURATION = 1400.0  # ms: covers the 1370 steps of 1 ms of the e-prop SHD runs (SPEC §10)
_CHUNK = 256  # examples converted at a time


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading SHD files needs h5py: pip install 'spikeloom[data]'") from None
    return h5py


def _check_options(dt, duration, pool, limit, seed, where: str) -> tuple[int, int]:
    n_steps = n_steps_for(duration, dt, where)
    if isinstance(pool, bool) or not isinstance(pool, numbers.Integral) or pool < 1:
        raise ValueError(f"{where}: pool must be an integer >= 1 (channels merged per input), got {pool!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise ValueError(f"{where}: limit must be None or an integer >= 1, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return n_steps, -(-SHD_CHANNELS // int(pool))


def _dataset(f, key: str, path: Path):
    if key not in f:
        raise ValueError(
            f"{path}: missing key {key!r}; an SHD file holds 'spikes/times', 'spikes/units' and 'labels' "
            f"(get the files from {SHD_URL})"
        )
    return f[key]


def read_shd(
    path,
    *,
    dt: float = SHD_DT,
    duration: float = SHD_DURATION,
    counts: bool = False,
    pool: int = 1,
    limit: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> RaggedDataset:
    """One SHD HDF5 file as a :class:`~spikeloom.data.ragged.RaggedDataset`.

    - ``dt`` (ms, default 1): step width; a spike at ``t`` seconds falls in step ``floor(1000 t / dt)``.
    - ``duration`` (ms, default 1400): ``n_steps = ceil(duration / dt)``; later spikes are dropped
      (their number is kept in ``dropped_events``).
    - ``counts``: ``x`` holds uint8 spike counts per bin instead of bool (at most one spike per
      channel per bin).
    - ``pool``: channels ``pool k .. pool k + pool - 1`` merge into input ``k``
      (``ceil(700 / pool)`` inputs), a cheap way to shrink the input layer.
    - ``limit``: read only ``limit`` examples, chosen at random by ``seed`` (in file order).

    Everything is validated while reading; ``ValueError`` names the file and the key.
    """
    path = Path(path)
    where = f"read_shd({path.name})"
    n_steps, n_inputs = _check_options(dt, duration, pool, limit, seed, where)
    if not path.is_file():
        raise FileNotFoundError(f"SHD file {path.name!r} not found at {path} (get the SHD files from {SHD_URL})")
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        times_ds = _dataset(f, "spikes/times", path)
        units_ds = _dataset(f, "spikes/units", path)
        labels_ds = _dataset(f, "labels", path)
        n = len(times_ds)
        if len(units_ds) != n:
            raise ValueError(
                f"{path}: 'spikes/units' has {len(units_ds)} examples but 'spikes/times' has {n}; "
                "they must hold one array per example each"
            )
        if len(labels_ds) != n:
            raise ValueError(f"{path}: 'labels' has {len(labels_ds)} entries but 'spikes/times' has {n} examples")
        if n == 0:
            raise ValueError(f"{path}: 'spikes/times' holds no examples")
        if limit is not None and limit < n:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5D0]))
            rows = np.sort(rng.choice(n, size=int(limit), replace=False))
        else:
            rows = np.arange(n)
        whole = len(rows) == n
        labels = np.asarray(labels_ds[:] if whole else labels_ds[rows])
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"{path}: 'labels' must be a 1-d array of integers, got dtype {labels.dtype}, shape {labels.shape}"
            )
        if labels.min() < 0 or labels.max() >= SHD_CLASSES:
            raise ValueError(f"{path}: 'labels' must lie in [0, {SHD_CLASSES - 1}], got {labels.min()}..{labels.max()}")
        extra = {}
        if "extra/speaker" in f:
            speaker = f["extra/speaker"]
            if len(speaker) != n:
                raise ValueError(f"{path}: 'extra/speaker' has {len(speaker)} entries but there are {n} examples")
            extra["speaker"] = np.asarray(speaker[:] if whole else speaker[rows])
        class_names = None
        if "extra/keys" in f:
            class_names = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][:])
        # a chunk of examples at a time, so that the float64 temporaries stay small next to the result
        kept, steps, channels, dropped = [], [], [], 0
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            if whole:
                times, units = times_ds[chunk[0] : chunk[-1] + 1], units_ds[chunk[0] : chunk[-1] + 1]
            else:
                times, units = times_ds[chunk], units_ds[chunk]
            k, s, c, d = _bin_chunk(times, units, chunk, path, dt=dt, n_steps=n_steps, pool=int(pool))
            kept.append(k)
            steps.append(s)
            channels.append(c)
            dropped += d

    offsets = np.concatenate([[0], np.cumsum(np.concatenate(kept))])
    events = RaggedEvents(
        offsets, np.concatenate(steps), np.concatenate(channels), n_steps=n_steps, n_channels=n_inputs
    )
    return RaggedDataset(
        events,
        labels.astype(np.int64),
        SHD_CLASSES,
        dt=float(dt),
        counts=counts,
        name=name or path.stem,
        class_names=class_names,
        extra=extra,
        dropped_events=dropped,
    )


def _bin_chunk(times, units, rows, path: Path, *, dt: float, n_steps: int, pool: int):
    """``(kept per example, steps uint16, channels uint16, dropped)`` of the ragged ``times``
    (seconds) and ``units`` of the examples ``rows``, checked."""
    lengths_t = np.fromiter((len(t) for t in times), dtype=np.int64, count=len(times))
    lengths_u = np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))
    bad = np.flatnonzero(lengths_t != lengths_u)
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{path}: example {rows[i]} has {lengths_t[i]} entries in 'spikes/times' but {lengths_u[i]} in "
            "'spikes/units'; each spike needs a time and a unit"
        )
    if not lengths_t.sum():
        return np.zeros(len(rows), np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint16), 0
    all_t = np.concatenate([np.asarray(t, dtype=np.float64) for t in times])
    all_u = np.concatenate([np.asarray(u) for u in units])
    if all_u.dtype.kind not in "iu":
        raise ValueError(f"{path}: 'spikes/units' must hold integers, got dtype {all_u.dtype}")
    if not np.all(np.isfinite(all_t)) or all_t.min() < 0:
        raise ValueError(f"{path}: 'spikes/times' must hold finite times >= 0 (seconds), got min {all_t.min()}")
    if all_u.min() < 0 or all_u.max() >= SHD_CHANNELS:
        raise ValueError(
            f"{path}: 'spikes/units' must lie in [0, {SHD_CHANNELS - 1}], got {all_u.min()}..{all_u.max()}"
        )
    steps = time_to_step(all_t * 1000.0, dt)
    keep = steps < n_steps
    example = np.repeat(np.arange(len(rows)), lengths_t)
    kept = np.bincount(example[keep], minlength=len(rows))
    small = np.uint16 if n_steps <= 65536 else np.int64
    return (
        kept,
        steps[keep].astype(small),
        (all_u[keep].astype(np.int64) // pool).astype(np.uint16),
        int((~keep).sum()),
    )


def shd_file(data_dir, part: str) -> Path:
    """The path of ``part`` (``"train"`` or ``"test"``) in ``data_dir``; ``FileNotFoundError`` saying
    what is missing, where it looked and where to get it."""
    if part not in SHD_FILES:
        raise ValueError(f"shd_file: part must be one of {list(SHD_FILES)}, got {part!r}")
    if data_dir is None:
        raise FileNotFoundError(
            f"the SHD data set needs data_dir: a directory holding {SHD_FILES['train']} and "
            f"{SHD_FILES['test']} (get them from {SHD_URL} and gunzip them)"
        )
    directory = Path(data_dir).expanduser()
    path = directory / SHD_FILES[part]
    if path.is_file():
        return path
    hint = ""
    if (directory / (SHD_FILES[part] + ".gz")).is_file():
        hint = f"; found {SHD_FILES[part]}.gz there: decompress it first (gunzip {SHD_FILES[part]}.gz)"
    elif not directory.is_dir():
        hint = " (the directory does not exist)"
    raise FileNotFoundError(
        f"SHD file {SHD_FILES[part]!r} not found in {directory}{hint}; get {SHD_FILES['train']}.gz and "
        f"{SHD_FILES['test']}.gz from {SHD_URL}"
    )


def load_shd(
    data_dir,
    *,
    dt: float = SHD_DT,
    duration: float = SHD_DURATION,
    counts: bool = False,
    pool: int = 1,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[RaggedDataset, RaggedDataset]:
    """``(train, test)`` from ``shd_train.h5`` and ``shd_test.h5`` in ``data_dir``.

    Options as for :func:`read_shd` (``limit`` applies to each part).  Shapes: ``batch`` gives
    ``x [T, B, N]`` with ``T = ceil(duration / dt)`` (1400 by default) and ``N = ceil(700 / pool)``.
    """
    train_path = shd_file(data_dir, "train")
    test_path = shd_file(data_dir, "test")
    common = {"dt": dt, "duration": duration, "counts": counts, "pool": pool, "limit": limit, "seed": seed}
    return read_shd(train_path, name="shd-train", **common), read_shd(test_path, name="shd-test", **common)
