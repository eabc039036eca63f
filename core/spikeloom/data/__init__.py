"""Data sets of labelled spike trains: the protocol, an in-memory implementation, encoders, the
embedded digits, SHD, spiking S-MNIST, randman and tonic-style events, all reachable through
``load_dataset(name)``.  Optional dependencies (scikit-learn, h5py) are imported only when used."""

from __future__ import annotations

from .dataset import ArrayDataset, Dataset, Subset, batch_indices, labels_of, split
from .digits import ENCODINGS, digits_images, encode_digits, load_digits
from .encoding import row_levels, threshold_crossing, threshold_crossing_size
from .events import TonicDataset, events_dataset, from_tonic
from .ragged import RaggedDataset, RaggedEvents
from .randman import load_randman
from .registry import DATASETS, dataset_options, load_dataset
from .shd import load_shd, read_shd
from .smnist import SMNISTDataset, load_smnist, read_idx

__all__ = [
    "ArrayDataset",
    "DATASETS",
    "Dataset",
    "ENCODINGS",
    "RaggedDataset",
    "RaggedEvents",
    "SMNISTDataset",
    "Subset",
    "TonicDataset",
    "batch_indices",
    "dataset_options",
    "digits_images",
    "encode_digits",
    "events_dataset",
    "from_tonic",
    "labels_of",
    "load_dataset",
    "load_digits",
    "load_randman",
    "load_shd",
    "load_smnist",
    "read_idx",
    "read_shd",
    "row_levels",
    "split",
    "threshold_crossing",
    "threshold_crossing_size",
]
