"""Spiking sequential MNIST (SPEC §9) from the standard IDX files the user has.

The four files (plain or gzipped: ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``) are read with their headers
checked: magic number (``0x00000803`` images, ``0x00000801`` labels), dimensions and data length.
Plain files are memory-mapped; gzipped ones are decompressed into memory once (47 MB of uint8
pixels for the training images).  Only the raw pixels are held: ``batch(indices)`` encodes those
examples alone with Bellec's threshold-crossing code
(:func:`~spikeloom.data.encoding.threshold_crossing`): one pixel per step in raster order, 79
input neurons, plus a recall-cue neuron (the 80th) over ``cue_steps`` extra steps when asked for.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from .dataset import _as_indices
from .encoding import threshold_crossing, threshold_crossing_size

__all__ = [
    "read_idx",
    "SMNISTDataset",
    "load_smnist",
    "MNIST_FILES",
    "MNIST_URL",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
]

MNIST_URL = "https://yann.lecun.com/exdb/mnist/"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
N_CLASSES = 10


def read_idx(path, expected_magic: int) -> np.ndarray:
    """The uint8 array stored in an IDX file (plain, or gzipped when the name ends in ``.gz``).

    The header is a big-endian int32 magic number ``0x0000TTDD`` (type ``TT`` = 0x08 for unsigned
    bytes, ``DD`` dimensions) followed by one big-endian int32 size per dimension.  ``ValueError``
    naming the file on a wrong magic number (found vs expected), a short header or a data length
    that does not match the sizes.  Plain files come back memory-mapped (read-only).
    """
    path = Path(path)
    ndim = expected_magic & 0xFF
    header_len = 4 + 4 * ndim
    gz = path.suffix == ".gz"
    if gz:
        import gzip

        with gzip.open(path, "rb") as f:
            try:
                raw = f.read()
            except (OSError, EOFError) as exc:
                raise ValueError(f"{path}: not a readable gzip file ({exc})") from None
        header = raw[:header_len]
    else:
        with open(path, "rb") as f:
            header = f.read(header_len)
        raw = None
    if len(header) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(header)} bytes)")
    magic = int.from_bytes(header[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path}: wrong IDX magic number 0x{magic:08X} (expected 0x{expected_magic:08X}: unsigned bytes, "
            f"{ndim} dimension{'s' if ndim > 1 else ''}); is this the right file?"
        )
    if len(header) < header_len:
        raise ValueError(f"{path}: IDX header cut short ({len(header)} of {header_len} bytes)")
    shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    found = (len(raw) if gz else path.stat().st_size) - header_len
    if found != expected:
        raise ValueError(f"{path}: IDX data holds {found} bytes but the header's sizes {list(shape)} need {expected}")
    if gz:
        arr = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)
    elif expected == 0:
        arr = np.zeros(shape, dtype=np.uint8)
    else:
        arr = np.memmap(path, dtype=np.uint8, mode="r", offset=header_len, shape=shape)
    return arr


def _find(directory: Path, stem: str) -> Path:
    # the MNIST site's names, their .gz downloads, and the dotted variant some mirrors use
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    missing = " (the directory does not exist)" if not directory.is_dir() else ""
    raise FileNotFoundError(
        f"MNIST file {stem!r} (or {stem}.gz) not found in {directory}{missing}; the S-MNIST data set reads the "
        f"four IDX files from the MNIST site ({MNIST_URL}): "
        + ", ".join(f"{a}.gz, {b}.gz" for a, b in MNIST_FILES.values())
    )


class SMNISTDataset:
    """Spiking sequential MNIST over raw IDX pixels (see the module doc); a
    :class:`~spikeloom.data.dataset.Dataset`.

    ``batch(indices)`` returns bool ``x [T, B, N]`` with ``T = H W + cue_steps`` (784 by default)
    and ``N = 2 (n_thresholds - 1) + 1`` (79), plus 1 with ``cue_steps > 0``; labels int64 ``[B]``.
    One step is one pixel; ``dt`` (1 ms) is only the nominal step width the network should use.
    """

    def __init__(
        self,
        images_path,
        labels_path,
        *,
        n_thresholds: int = 40,
        cue_steps: int = 0,
        limit: int | None = None,
        seed: int = 0,
        name: str = "",
    ) -> None:
        where = f"SMNISTDataset({Path(images_path).name})"
        if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, numbers.Integral) or n_thresholds < 2:
            raise ValueError(f"{where}: n_thresholds must be an integer >= 2, got {n_thresholds!r}")
        if isinstance(cue_steps, bool) or not isinstance(cue_steps, numbers.Integral) or cue_steps < 0:
            raise ValueError(f"{where}: cue_steps must be an integer >= 0 (0: no recall cue), got {cue_steps!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
            raise ValueError(f"{where}: limit must be None or an integer >= 1, got {limit!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"{where}: seed must be an integer >= 0, got {seed!r}")
        images = read_idx(images_path, IDX_IMAGES_MAGIC)
        labels = np.asarray(read_idx(labels_path, IDX_LABELS_MAGIC))
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                "they must come in matching pairs"
            )
        if len(images) == 0:
            raise ValueError(f"{images_path}: holds no images")
        if labels.max() >= N_CLASSES:
            raise ValueError(f"{labels_path}: labels must lie in [0, {N_CLASSES - 1}], got max {labels.max()}")
        n = len(images)
        if limit is not None and limit < n:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A157]))
            self._rows = np.sort(rng.choice(n, size=int(limit), replace=False))
        else:
            self._rows = np.arange(n)
        self._rows.setflags(write=False)
        self._images = images
        self._y = labels[self._rows].astype(np.int64)
        self._y.setflags(write=False)
        self.image_shape = tuple(images.shape[1:])
        self.n_thresholds = int(n_thresholds)
        self.cue_steps = int(cue_steps)
        self.dt = 1.0
        self.name = name

    @property
    def labels(self) -> np.ndarray:
        """The read-only labels, int64 ``[S]``."""
        return self._y

    @property
    def n_inputs(self) -> int:
        return threshold_crossing_size(self.n_thresholds, cue=self.cue_steps > 0)

    @property
    def n_steps(self) -> int:
        return int(np.prod(self.image_shape)) + self.cue_steps

    @property
    def n_classes(self) -> int:
        return N_CLASSES

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return (
            f"<SMNISTDataset{name}: {len(self)} examples, {self.n_steps} steps, {self.n_inputs} inputs, "
            f"{self.n_classes} classes>"
        )

    def images(self, indices) -> np.ndarray:
        """Grey values in ``[0, 1]`` (float64 ``[B, H, W]``) of the examples at ``indices``."""
        idx = _as_indices(indices, len(self), f"{self.name or 'SMNISTDataset'}.images")
        return np.asarray(self._images[self._rows[idx]], dtype=np.float64) / 255.0

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(x bool [T, B, N], labels int64 [B])``, encoded for these examples only."""
        idx = _as_indices(indices, len(self), f"{self.name or 'SMNISTDataset'}.batch")
        img = self.images(idx)
        spikes = threshold_crossing(img.reshape(len(idx), -1), n_thresholds=self.n_thresholds, cue_steps=self.cue_steps)
        return np.ascontiguousarray(spikes.transpose(1, 0, 2)), self._y[idx].copy()


def load_smnist(
    data_dir, *, n_thresholds: int = 40, cue_steps: int = 0, limit: int | None = None, seed: int = 0
) -> tuple[SMNISTDataset, SMNISTDataset]:
    """``(train, test)`` (60000 / 10000 examples) from the four MNIST IDX files in ``data_dir``.

    ``limit`` keeps ``limit`` examples of each part, chosen at random by ``seed``.
    """
    if data_dir is None:
        raise FileNotFoundError(
            "the S-MNIST data set needs data_dir: a directory holding the four MNIST IDX files "
            f"(plain or .gz) from {MNIST_URL}"
        )
    directory = Path(data_dir).expanduser()
    parts = []
    for part, (images, labels) in MNIST_FILES.items():
        parts.append(
            SMNISTDataset(
                _find(directory, images),
                _find(directory, labels),
                n_thresholds=n_thresholds,
                cue_steps=cue_steps,
                limit=limit,
                seed=seed,
                name=f"smnist-{part}",
            )
        )
    return parts[0], parts[1]
