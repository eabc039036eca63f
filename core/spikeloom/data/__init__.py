"""Data sets of labelled spike trains: the protocol, an in-memory implementation, encoders and
the embedded digits data set.  Optional dependencies (scikit-learn) are imported only when used."""

from __future__ import annotations

from .dataset import ArrayDataset, Dataset, Subset, batch_indices, labels_of, split
from .digits import ENCODINGS, digits_images, encode_digits, load_digits
from .encoding import row_levels, threshold_crossing, threshold_crossing_size

__all__ = [
    "ArrayDataset",
    "Dataset",
    "ENCODINGS",
    "Subset",
    "batch_indices",
    "digits_images",
    "encode_digits",
    "labels_of",
    "load_digits",
    "row_levels",
    "split",
    "threshold_crossing",
    "threshold_crossing_size",
]
