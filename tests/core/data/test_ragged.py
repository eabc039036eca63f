"""Ragged (CSR) events and their binning into [T, B, N] blocks."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloom.data import RaggedDataset, RaggedEvents
from spikeloom.data.ragged import bin_events, n_steps_for, time_to_step


def _events():
    # example 0: (step 0, ch 1), (step 2, ch 1), (step 2, ch 1); example 1: none; example 2: (1, 0)
    return RaggedEvents([0, 3, 3, 4], [0, 2, 2, 1], [1, 1, 1, 0], n_steps=3, n_channels=2)


def test_gather_and_dense_follow_the_indices():
    ev = _events()
    assert (len(ev), ev.n_events, ev.counts().tolist()) == (3, 4, [3, 0, 1])
    example, step, channel = ev.gather(np.array([2, 0]))
    assert example.tolist() == [0, 1, 1, 1] and step.tolist() == [1, 0, 2, 2] and channel.tolist() == [0, 1, 1, 1]
    x = ev.dense([2, 1, 0])
    expected = np.zeros((3, 3, 2), dtype=bool)
    expected[1, 0, 0] = expected[0, 2, 1] = expected[2, 2, 1] = True
    np.testing.assert_array_equal(x, expected)
    counts = ev.dense([0], counts=True)
    assert counts.dtype == np.uint8 and counts[:, 0, 1].tolist() == [1, 0, 2]


def test_take_keeps_the_events_of_the_chosen_examples():
    sub = _events().take(np.array([2, 0]))
    assert sub.offsets.tolist() == [0, 1, 4]
    np.testing.assert_array_equal(sub.dense([0, 1]), _events().dense([2, 0]))


def test_storage_is_small_and_read_only():
    ev = _events()
    assert ev.steps.dtype == np.uint16 and ev.channels.dtype == np.uint16
    with pytest.raises(ValueError):
        ev.steps[0] = 1


@pytest.mark.parametrize(
    "offsets, steps, channels, match",
    [
        ([1, 2], [0], [0], "offsets: must be a non-decreasing"),
        ([0, 2, 1], [0, 0], [0, 0], "offsets: must be a non-decreasing"),
        ([0, 2], [0], [0], "must both have offsets"),
        ([0, 1], [3], [0], r"steps: must lie in \[0, 2\]"),
        ([0, 1], [0], [2], r"channels: must lie in \[0, 1\]"),
    ],
)
def test_bad_events(offsets, steps, channels, match):
    with pytest.raises(ValueError, match=match):
        RaggedEvents(offsets, steps, channels, n_steps=3, n_channels=2)


def test_bin_events_saturates_bool_and_refuses_uint8_overflow():
    ex = np.zeros(256, dtype=int)
    assert bin_events(ex, ex, ex, n_steps=1, batch=1, n_channels=1).tolist() == [[[True]]]
    assert bin_events(ex[:255], ex[:255], ex[:255], n_steps=1, batch=1, n_channels=1, counts=True)[0, 0, 0] == 255
    with pytest.raises(ValueError, match="256 events fall in one bin"):
        bin_events(ex, ex, ex, n_steps=1, batch=1, n_channels=1, counts=True)


def test_time_grid():
    assert time_to_step(np.array([0.0, 0.999, 1.0, 2.9999999999, 3.0]), 1.0).tolist() == [0, 0, 1, 3, 3]
    assert n_steps_for(1400.0, 1.0, "x") == 1400 and n_steps_for(1000.0, 3.0, "x") == 334
    with pytest.raises(ValueError, match="x: dt must be a positive number"):
        n_steps_for(10.0, float("nan"), "x")


def test_dataset_checks_labels():
    with pytest.raises(ValueError, match="one label per example"):
        RaggedDataset(_events(), [0, 1], 2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        RaggedDataset(_events(), [0, 1, 2], 2)
    with pytest.raises(ValueError, match="must be integers"):
        RaggedDataset(_events(), [0.5, 1, 0], 2)
    ds = RaggedDataset(_events(), [0, 1, 1], 2, counts=True)
    assert ds.class_counts().tolist() == [1, 2] and ds.batch([0])[0].dtype == np.uint8
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\]"):
        ds.batch([3])
