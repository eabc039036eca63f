"""One entry point for every data set by name: ``load_dataset(name, data_dir=..., seed=..., limit=...)``.

Each returns ``(train, test)``: objects following :class:`~spikeloom.data.dataset.Dataset`
(``len``, ``n_inputs``, ``n_steps``, ``n_classes``, ``batch(indices) -> (x [T, B, N], labels [B])``),
with ``labels`` ``[S]`` for stratified splits.  Where the step width matters the data set carries
it as ``dt`` (ms); digits and S-MNIST steps are nominally 1 ms.
"""

from __future__ import annotations

import inspect
import numbers

__all__ = ["DATASETS", "load_dataset", "dataset_options"]

DATASETS = ("digits", "shd", "smnist", "randman")
# data sets read from files the user has (the others are built in or generated)
_DIGITS_ENCODER_OPTIONS = ("n_thresholds", "cue_steps", "levels", "steps_per_row", "steps", "every")
_NEEDS_FILES = {"shd": "shd_train.h5 and shd_test.h5", "smnist": "the four MNIST IDX files"}


def _loader(name: str):
    if name == "digits":
        from .digits import load_digits

        return load_digits
    if name == "shd":
        from .shd import load_shd

        return load_shd
    if name == "smnist":
        from .smnist import load_smnist

        return load_smnist
    if name == "randman":
        from .randman import load_randman

        return load_randman
    raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")


def dataset_options(name: str) -> dict[str, object]:
    """The options ``load_dataset(name, **options)`` accepts, with their defaults (besides
    ``data_dir``, ``seed`` and ``limit``)."""
    params = inspect.signature(_loader(name)).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    options = {
        p.name: p.default for p in params.values() if p.kind in kinds and p.name not in ("data_dir", "seed", "limit")
    }
    if name == "digits":
        # passed on to the encoder; their defaults depend on the encoding (see encode_digits)
        options.update(dict.fromkeys(_DIGITS_ENCODER_OPTIONS))
    return options


def load_dataset(name: str, *, data_dir=None, seed: int = 0, limit: int | None = None, **options):
    """``(train, test)`` of the data set ``name`` (one of :data:`DATASETS`).

    - ``data_dir``: the directory holding the files of ``"shd"`` (``shd_train.h5``,
      ``shd_test.h5``) and ``"smnist"`` (MNIST IDX files, plain or ``.gz``); must be None for
      ``"digits"`` (embedded) and ``"randman"`` (generated).
    - ``seed``: fixes the digits and randman train/test split and which examples ``limit`` keeps.
    - ``limit``: keep at most this many examples of each part (quick runs).
    - ``options``: the loader's own (see :func:`dataset_options`), e.g. ``dt``, ``duration``,
      ``counts``, ``pool`` for SHD; ``cue_steps`` for S-MNIST; ``encoding`` for digits;
      ``n_units``, ``dim``, ``alpha``, ``n_steps`` for randman.

    ``ValueError`` for an unknown name or option; ``FileNotFoundError`` naming the file expected,
    the directory searched and where to get the data when files are missing.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"load_dataset: unknown data set {name!r}; choose one of {list(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"load_dataset: seed must be an integer >= 0, got {seed!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise ValueError(f"load_dataset: limit must be None or an integer >= 1, got {limit!r}")
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"load_dataset({name!r}): unknown option{'s' if len(unknown) > 1 else ''} {unknown}; "
            f"{name} takes {sorted(allowed) or 'no options'}"
        )
    loader = _loader(name)
    if name in _NEEDS_FILES:
        return loader(data_dir, seed=int(seed), limit=limit, **options)
    if data_dir is not None:
        raise ValueError(
            f"load_dataset({name!r}): data_dir is not used ({name} is "
            f"{'embedded' if name == 'digits' else 'generated from the seed'}); leave it None"
        )
    return loader(seed=int(seed), limit=limit, **options)
