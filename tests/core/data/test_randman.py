"""Randman: one spike per unit, reproducible from the seed, classes carried by timing."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from spikeloom.data import Dataset, load_randman
from spikeloom.data.randman import RANDMAN_DEFAULTS, randman_manifolds, randman_spike_times


def _first_spike(ds):
    x, y = ds.batch(np.arange(len(ds)))
    return x, np.argmax(x, axis=0).astype(np.float64), y  # spike step of every unit, [S, U]


def test_defaults_are_the_documented_ones():
    params = inspect.signature(load_randman).parameters
    assert {k: params[k].default for k in RANDMAN_DEFAULTS} == RANDMAN_DEFAULTS
    train, test = load_randman()
    assert isinstance(train, Dataset)
    assert (len(train), len(test)) == (4000, 1000)
    assert (train.n_steps, train.n_inputs, train.n_classes, train.dt) == (100, 20, 10, 1.0)
    assert train.class_counts().tolist() == [400] * 10 and test.class_counts().tolist() == [100] * 10


def test_every_unit_fires_exactly_one_spike():
    train, test = load_randman(n_units=7, n_steps=50, samples_per_class=20, dim=2)
    for ds in (train, test):
        x, _, _ = _first_spike(ds)
        assert x.shape == (50, len(ds), 7) and x.dtype == bool
        assert (x.sum(axis=0) == 1).all()


def test_reproducible_from_the_seed_and_different_across_seeds():
    a = load_randman(samples_per_class=30, seed=4)
    b = load_randman(samples_per_class=30, seed=4)
    c = load_randman(samples_per_class=30, seed=5)
    for part in (0, 1):
        np.testing.assert_array_equal(
            a[part].batch(np.arange(len(a[part])))[0], b[part].batch(np.arange(len(b[part])))[0]
        )
        assert a[part].labels.tolist() == b[part].labels.tolist()
    assert not np.array_equal(a[0].batch(np.arange(10))[0], c[0].batch(np.arange(10))[0])


def test_train_and_test_split_one_set_of_draws():
    steps, labels = randman_spike_times(samples_per_class=50, seed=2)
    train, test = load_randman(samples_per_class=50, seed=2)
    _, tr, _ = _first_spike(train)
    _, te, _ = _first_spike(test)
    rows = {tuple(r) for r in steps.tolist()}
    assert {tuple(r) for r in tr.astype(int).tolist()} | {tuple(r) for r in te.astype(int).tolist()} <= rows
    assert len(tr) + len(te) == len(steps) == len(labels) == 500


def test_classes_are_separable_from_spike_times_by_nearest_centroid():
    train, test = load_randman(seed=0)
    _, ftr, ytr = _first_spike(train)
    _, fte, yte = _first_spike(test)
    centroids = np.stack([ftr[ytr == c].mean(axis=0) for c in range(10)])
    pred = np.argmin(((fte[:, None, :] - centroids) ** 2).sum(-1), axis=1)
    accuracy = float(np.mean(pred == yte))
    assert accuracy > 0.8  # chance is 0.1; 0.946 at the defaults with seed 0


def test_no_unit_rate_carries_the_class():
    # every unit fires once in every example, so spike counts are identical across classes
    train, _ = load_randman(samples_per_class=20)
    x, _, y = _first_spike(train)
    counts = x.sum(axis=0)
    assert all((counts[y == c] == 1).all() for c in range(10))


def test_manifold_values_lie_in_the_unit_interval_and_are_smooth():
    f = randman_manifolds(n_classes=3, n_units=5, seed=1)
    u = np.linspace(0, 1, 2001)[None, :, None].repeat(3, axis=0)
    v = f(u)
    assert v.shape == (3, 2001, 5) and v.min() >= 0 and v.max() <= 1
    assert np.abs(np.diff(v, axis=1)).max() < 0.05  # no jumps between neighbouring points


def test_limit_keeps_the_first_examples_of_each_part():
    full = load_randman(samples_per_class=20, seed=1)
    cut = load_randman(samples_per_class=20, seed=1, limit=7)
    assert (len(full[0]), len(full[1])) == (160, 40)
    assert (len(cut[0]), len(cut[1])) == (7, 7)
    for part in (0, 1):
        np.testing.assert_array_equal(cut[part].batch(np.arange(7))[0], full[part].batch(np.arange(7))[0])
        assert cut[part].labels.tolist() == full[part].labels[:7].tolist()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_classes": 1}, "n_classes must be an integer >= 2"),
        ({"n_units": 0}, "n_units must be an integer >= 1"),
        ({"dim": 0}, "dim must be an integer >= 1"),
        ({"alpha": -1.0}, "alpha must be a finite number >= 0"),
        ({"n_steps": 0}, "n_steps must be an integer >= 1"),
        ({"samples_per_class": 0}, "samples_per_class must be an integer >= 1"),
        ({"test_fraction": 1.0}, "test_fraction must lie strictly between 0 and 1"),
        ({"samples_per_class": 2, "test_fraction": 0.1}, "leaves an empty part"),
        ({"dt": 0.0}, "dt must be a finite number > 0"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"limit": 0}, "limit must be an integer >= 1"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_randman(**kwargs)
