"""Writers of small data files in the real formats, for the reader tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_shd(
    path,
    times,
    units,
    labels,
    *,
    speaker=None,
    keys=None,
    skip=(),
    time_dtype=np.float16,
    unit_dtype=np.uint16,
):
    """An SHD-layout HDF5 file: ``spikes/times`` and ``spikes/units`` as variable-length datasets
    (one array per example), ``labels``, ``extra/speaker`` and ``extra/keys``; ``skip`` leaves keys out."""
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        if "spikes/times" not in skip:
            t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
            for i, row in enumerate(times):
                t[i] = np.asarray(row, dtype=time_dtype)
        if "spikes/units" not in skip:
            u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.dtype(unit_dtype)))
            for i, row in enumerate(units):
                u[i] = np.asarray(row, dtype=unit_dtype)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        if "extra/speaker" not in skip:
            spk = np.arange(len(labels)) % 3 if speaker is None else speaker
            f.create_dataset("extra/speaker", data=np.asarray(spk, dtype=np.uint16))
        if "extra/keys" not in skip:
            names = [f"digit-{i}" for i in range(20)] if keys is None else keys
            f.create_dataset("extra/keys", data=np.array([n.encode() for n in names]))
    return path


def random_shd(path, n, *, seed=0, mean_spikes=200, informative=True):
    """``n`` random examples; with ``informative`` each class fires mostly in its own channel band
    early in the trial, so that a network can learn the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 20, size=n)
    times, units = [], []
    for label in labels:
        k = rng.poisson(mean_spikes)
        t = rng.uniform(0.0, 1.3, size=k)
        u = rng.integers(0, 700, size=k)
        if informative:
            band = rng.integers(label * 35, label * 35 + 35, size=k // 2)
            u[: k // 2] = band
            t[: k // 2] = rng.uniform(0.0, 0.05, size=k // 2)
        order = np.argsort(t)
        times.append(t[order])
        units.append(u[order])
    return write_shd(path, times, units, labels)


def idx_bytes(magic: int, shape, data: np.ndarray) -> bytes:
    """An IDX file's bytes: big-endian int32 magic, one int32 per dimension, then the uint8 data."""
    out = bytearray(magic.to_bytes(4, "big"))
    for size in shape:
        out += int(size).to_bytes(4, "big")
    out += np.asarray(data, dtype=np.uint8).tobytes()
    return bytes(out)


def write_idx(path, magic: int, shape, data, *, gz: bool = False):
    raw = idx_bytes(magic, shape, data)
    path = Path(path)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def write_mnist(directory, images_train, labels_train, images_test, labels_test, *, gz: bool = False):
    """The four MNIST files (``train-images-idx3-ubyte`` ...) in ``directory``, plain or ``.gz``."""
    directory = Path(directory)
    suffix = ".gz" if gz else ""
    for stem, images, labels in (("train", images_train, labels_train), ("t10k", images_test, labels_test)):
        images = np.asarray(images, dtype=np.uint8)
        write_idx(directory / f"{stem}-images-idx3-ubyte{suffix}", 0x803, images.shape, images, gz=gz)
        write_idx(directory / f"{stem}-labels-idx1-ubyte{suffix}", 0x801, (len(labels),), labels, gz=gz)
    return directory
