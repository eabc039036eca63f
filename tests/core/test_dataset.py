"""The data-set protocol, ArrayDataset's validation, splitting and batching."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloom.data import ArrayDataset, Dataset, Subset, batch_indices, labels_of, split


def _spikes(S=6, T=4, N=3, seed=0):
    return np.random.default_rng(seed).random((S, T, N)) < 0.3


def test_batch_is_time_major_and_follows_the_indices():
    x = _spikes()
    y = np.array([0, 1, 2, 0, 1, 2])
    ds = ArrayDataset(x, y)
    assert (len(ds), ds.n_steps, ds.n_inputs, ds.n_classes) == (6, 4, 3, 3)
    xb, yb = ds.batch([4, 1])
    assert xb.shape == (4, 2, 3) and xb.flags.c_contiguous
    np.testing.assert_array_equal(xb[:, 0], x[4])
    np.testing.assert_array_equal(xb[:, 1], x[1])
    assert yb.dtype == np.int64 and yb.tolist() == [1, 1]
    assert isinstance(ds, Dataset)


def test_storage_dtypes_and_read_only():
    ds = ArrayDataset(np.ones((2, 3, 4), dtype=np.float64), [0, 1])
    assert ds.spikes.dtype == bool
    counts = ArrayDataset(np.full((2, 3, 4), 3, dtype=np.int64), [0, 1])
    assert counts.spikes.dtype == np.uint8 and counts.batch([0])[0].max() == 3
    with pytest.raises(ValueError):
        ds.spikes[0, 0, 0] = False
    with pytest.raises(ValueError):
        ds.labels[0] = 1


def test_n_classes_defaults_to_max_label_plus_one_and_can_be_larger():
    assert ArrayDataset(_spikes(), [0, 1, 1, 0, 1, 4]).n_classes == 5
    ds = ArrayDataset(_spikes(), [0] * 6, n_classes=10)
    assert ds.n_classes == 10 and ds.class_counts().tolist() == [6] + [0] * 9


@pytest.mark.parametrize(
    "spikes, labels, kwargs, match",
    [
        (np.zeros((0, 4, 3)), np.zeros(0, int), {}, "empty data set"),
        (np.zeros((2, 3)), [0, 1], {}, r"\[S, T, N\]"),
        (np.array([[[np.nan]]]), [0], {}, "NaN"),
        (np.array([[[np.inf]]]), [0], {}, "inf"),
        (np.array([[[-1]]]), [0], {}, "negative"),
        (np.array([[[0.5]]]), [0], {}, "whole spike counts"),
        (np.array([[[300]]]), [0], {}, "above 255"),
        (np.array([[["a"]]]), [0], {}, "dtype"),
        (np.zeros((2, 3, 1)), [0.5, 1.0], {}, "labels: must be integers"),
        (np.zeros((2, 3, 1)), [0, 1, 2], {}, r"shape \[S\] = \[2\]"),
        (np.zeros((2, 3, 1)), [0, -1], {}, "must be >= 0"),
        (np.zeros((2, 3, 1)), [0, 3], {"n_classes": 3}, r"must lie in \[0, 2\]"),
        (np.zeros((2, 3, 1)), [0, 1], {"n_classes": 0}, "n_classes must be an integer >= 1"),
    ],
)
def test_construction_validates(spikes, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(spikes, labels, **kwargs)


def test_whole_float_labels_are_accepted():
    assert ArrayDataset(np.zeros((2, 3, 1)), [0.0, 1.0]).labels.dtype == np.int64


@pytest.mark.parametrize(
    "indices, match",
    [([], "empty"), ([0, 6], r"in \[0, 5\]"), ([-1], r"in \[0, 5\]"), ([0.0], "integers"), ([[0]], "1-d")],
)
def test_batch_rejects_bad_indices(indices, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(_spikes(), [0] * 6).batch(indices)


def test_subset_copy_and_view():
    ds = ArrayDataset(_spikes(), [0, 1, 2, 0, 1, 2])
    sub = ds.subset([5, 0])
    assert isinstance(sub, ArrayDataset) and sub.labels.tolist() == [2, 0] and sub.n_classes == 3
    view = Subset(ds, [5, 0])
    assert len(view) == 2 and view.labels.tolist() == [2, 0] and view.n_steps == 4
    np.testing.assert_array_equal(view.batch([0])[0], ds.batch([5])[0])
    assert labels_of(view).tolist() == [2, 0]


class _NoLabels:
    n_inputs, n_classes, n_steps = 2, 2, 3

    def __len__(self):
        return 10

    def batch(self, indices):
        idx = np.asarray(indices)
        return np.zeros((3, len(idx), 2), np.float32), idx % 2


def test_split_is_seeded_disjoint_and_stratified():
    labels = np.repeat(np.arange(4), 25)
    ds = ArrayDataset(np.zeros((100, 2, 1), bool), labels)
    rest, part = split(ds, 0.2, seed=3)
    assert len(part) == 20 and len(rest) == 80
    assert set(rest.indices).isdisjoint(part.indices) and set(rest.indices) | set(part.indices) == set(range(100))
    assert np.bincount(part.labels).tolist() == [5, 5, 5, 5]
    again = split(ds, 0.2, seed=3)[1]
    np.testing.assert_array_equal(part.indices, again.indices)
    assert not np.array_equal(part.indices, split(ds, 0.2, seed=4)[1].indices)
    # without labels the split is a plain seeded permutation
    rest, part = split(_NoLabels(), 0.3, seed=0)
    assert (len(rest), len(part)) == (7, 3) and labels_of(part) is None


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.2"])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="fraction"):
        split(ArrayDataset(np.zeros((4, 2, 1)), [0, 1, 0, 1]), fraction)


def test_split_keeps_both_parts_non_empty():
    rest, part = split(ArrayDataset(np.zeros((3, 2, 1)), [0, 1, 2]), 0.1)
    assert len(part) >= 1 and len(rest) >= 1
    with pytest.raises(ValueError, match="at least 2"):
        split(ArrayDataset(np.zeros((1, 2, 1)), [0]), 0.5)


def test_batch_indices():
    plain = batch_indices(10, 4)
    assert [b.tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(batch_indices(10, 4, drop_last=True)) == 2
    assert len(batch_indices(3, 4, drop_last=True)) == 1  # never drops the only batch
    a = batch_indices(10, 3, rng=np.random.default_rng(1))
    b = batch_indices(10, 3, rng=np.random.default_rng(1))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(10, 0)
    with pytest.raises(ValueError, match="empty"):
        batch_indices(0, 4)
