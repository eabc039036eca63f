"""Spike encoders: Bellec's threshold-crossing code and the row level code, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloom.data import row_levels, threshold_crossing, threshold_crossing_size


def _events(spikes):
    """``[(step, neuron), ...]`` of one example's spikes ``[T, N]``."""
    return [tuple(map(int, e)) for e in np.argwhere(spikes)]


def test_small_sequence_by_hand():
    # thresholds linspace(0, 1, 3) = [0, 0.5, 1]; below 1: 0 (neurons 0/2) and 0.5 (neurons 1/3); neuron 4: pixel == 1
    seq = np.array([[0.0, 0.5, 1.0, 0.5, 0.0, 0.7]])
    z = threshold_crossing(seq, n_thresholds=3)
    assert z.shape == (1, 6, 5) and z.dtype == bool
    assert _events(z[0]) == [
        (1, 1),  # 0 -> 0.5 crosses 0.5 upwards: onset of threshold 0.5
        (2, 4),  # pixel == 1
        (4, 3),  # 0.5 -> 0 crosses 0.5 downwards: offset of threshold 0.5
        (5, 1),  # 0 -> 0.7: onset again
    ]


def test_first_pixel_is_compared_with_zero():
    z = threshold_crossing(np.array([[0.6, 0.6]]), n_thresholds=3)
    assert _events(z[0]) == [(0, 1)]
    z = threshold_crossing(np.array([[1.0, 1.0, 1.0]]), n_thresholds=3)
    assert _events(z[0]) == [(0, 1), (0, 4), (1, 4), (2, 4)]


def test_default_layout_has_79_neurons_and_a_ramp_fires_each_onset_once():
    ramp = np.linspace(0, 1, 40)[None]  # reaches each threshold exactly on its own step
    z = threshold_crossing(ramp)
    assert z.shape == (1, 40, 79) == (1, 40, threshold_crossing_size())
    onset, offset, full = z[0, :, :39], z[0, :, 39:78], z[0, :, 78]
    # threshold 0 is never crossed (nothing is below 0); thresholds k/39 fire at step k
    assert onset[:, 0].sum() == 0
    for k in range(1, 39):
        assert np.flatnonzero(onset[:, k]).tolist() == [k]
    assert offset.sum() == 0
    assert np.flatnonzero(full).tolist() == [39]
    down = threshold_crossing(ramp[:, ::-1])
    # 1 at step 0 (onsets of all thresholds at once), then each threshold is left once
    assert down[0, 0, 1:39].all() and down[0, 1:, :39].sum() == 0
    assert down[0, :, 39:78].sum() == 38


def test_recall_cue_adds_a_neuron_and_steps():
    seq = np.array([[0.0, 1.0], [0.3, 0.0]])
    z = threshold_crossing(seq, cue_steps=3)
    assert z.shape == (2, 5, 80) and threshold_crossing_size(cue=True) == 80
    assert not z[:, :2, 79].any() and z[:, 2:, 79].all()
    assert not z[:, 2:, :79].any()
    np.testing.assert_array_equal(z[:, :2, :79], threshold_crossing(seq))


@pytest.mark.parametrize(
    "seq, kwargs, match",
    [
        (np.array([[0.5, 1.2]]), {}, r"\[0, 1\]"),
        (np.array([[-0.1]]), {}, r"\[0, 1\]"),
        (np.array([[np.nan]]), {}, "NaN"),
        (np.array([0.5]), {}, "2-d"),
        (np.zeros((0, 3)), {}, "empty"),
        (np.zeros((1, 3)), {"n_thresholds": 1}, "n_thresholds"),
        (np.zeros((1, 3)), {"cue_steps": -1}, "cue_steps"),
    ],
)
def test_threshold_crossing_validates(seq, kwargs, match):
    with pytest.raises(ValueError, match=match):
        threshold_crossing(seq, **kwargs)


def test_row_levels_by_hand():
    img = np.array([[[0.0, 1.0], [0.5, 0.2]]])  # 2 rows x 2 columns
    z = row_levels(img, levels=2, steps_per_row=3)  # thresholds 0.25, 0.75; neuron = column * 2 + level
    assert z.shape == (1, 6, 4) and z.dtype == bool
    row0 = [False, False, True, True]
    row1 = [True, False, False, False]
    for t in range(3):
        assert z[0, t].tolist() == row0
        assert z[0, 3 + t].tolist() == row1


def test_row_levels_validates():
    with pytest.raises(ValueError, match="levels"):
        row_levels(np.zeros((1, 2, 2)), levels=0)
    with pytest.raises(ValueError, match="3-d"):
        row_levels(np.zeros((2, 2)))


def test_pixel_levels_thermometer_code_repeats_every_k_steps():
    from spikeloom.data.encoding import pixel_levels

    img = np.array([[[0.0, 0.3], [0.6, 1.0]]])  # one 2x2 image
    out = pixel_levels(img, levels=4, steps=5, every=2)
    assert out.shape == (1, 5, 16) and out.dtype == bool
    # thresholds (l + 0.5) / 4 = 0.125, 0.375, 0.625, 0.875
    expected = np.array(
        [0, 0, 0, 0]  # 0.0
        + [1, 0, 0, 0]  # 0.3
        + [1, 1, 0, 0]  # 0.6
        + [1, 1, 1, 1],  # 1.0
        dtype=bool,
    )
    for t in range(5):
        np.testing.assert_array_equal(out[0, t], expected if t % 2 == 0 else np.zeros(16, bool))
    with pytest.raises(ValueError, match="every"):
        pixel_levels(img, every=0)
