"""The embedded digits data set (scikit-learn's 8x8 images) as spike trains."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from spikeloom.data import ArrayDataset, digits_images, encode_digits, load_digits, threshold_crossing  # noqa: E402


@pytest.fixture(scope="module")
def default_split():
    return load_digits()


def test_images_are_scaled_to_unit_range():
    images, labels = digits_images()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(images * 16)) <= set(range(17))


def test_default_split_is_sequential_and_stratified(default_split):
    train, test = default_split
    assert isinstance(train, ArrayDataset) and isinstance(test, ArrayDataset)
    assert (len(train), len(test)) == (1347, 450)
    for ds in (train, test):
        assert (ds.n_steps, ds.n_inputs, ds.n_classes) == (64, 79, 10)
        assert ds.spikes.dtype == bool
    _, labels = digits_images()
    full = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(train.class_counts() + test.class_counts(), full)
    assert np.all(np.abs(test.class_counts() - 0.25 * full) <= 1)


def test_encoding_matches_the_threshold_crossing_code(default_split):
    train, test = default_split
    images, _ = digits_images()
    z = threshold_crossing(images.reshape(len(images), 64))
    # same examples, reordered: the total spike count per neuron agrees
    np.testing.assert_array_equal(train.spikes.sum(axis=(0, 1)) + test.spikes.sum(axis=(0, 1)), z.sum(axis=(0, 1)))
    np.testing.assert_array_equal(encode_digits(images[:3]), z[:3])


def test_split_depends_on_the_seed_only(default_split):
    train, test = default_split
    again_train, again_test = load_digits(seed=0)
    np.testing.assert_array_equal(train.spikes, again_train.spikes)
    np.testing.assert_array_equal(test.labels, again_test.labels)
    other_train, _ = load_digits(seed=1)
    assert not np.array_equal(train.labels, other_train.labels)


def test_rows_encoding_and_limit():
    train, test = load_digits("rows", limit=20)
    assert (len(train), len(test)) == (20, 20)
    assert (train.n_steps, train.n_inputs) == (64, 32)
    train, _ = load_digits("rows", levels=2, steps_per_row=1, limit=5)
    assert (train.n_steps, train.n_inputs) == (8, 16)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("spiral",), {}, "unknown encoding"),
        ((), {"test_fraction": 1.0}, "test_fraction"),
        ((), {"seed": -1}, "seed"),
        ((), {"limit": 0}, "limit"),
        (("rows",), {"n_thresholds": 3}, "bad option"),
    ],
)
def test_load_digits_validates(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(*args, **kwargs)
