"""Tonic-style structured event arrays (t in microseconds, x, y, p) as spike data sets."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloom.data import Dataset, RaggedDataset, TonicDataset, events_dataset, from_tonic

XYP = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
XP = np.dtype([("t", np.float64), ("x", np.int64), ("p", np.int64)])


def _events(dtype, rows):
    return np.array([tuple(r) for r in rows], dtype=dtype)


def _spikes(x):
    return {tuple(int(i) for i in idx): int(x[tuple(idx)]) for idx in np.argwhere(x)}


def test_x_y_p_map_to_the_flattened_tonic_frame():
    # sensor (W, H, P) = (4, 3, 2): input = p * 12 + y * 4 + x
    a = _events(XYP, [(1, 0, 0, False), (3, 2, 2500, True), (0, 1, 2999, True), (0, 1, 3000, False)])
    b = _events(XYP, [(2, 2, 1000, False)])
    ds = events_dataset([a, b], [1, 0], (4, 3, 2))
    assert isinstance(ds, Dataset) and isinstance(ds, RaggedDataset)
    assert (len(ds), ds.n_inputs, ds.n_classes, ds.n_steps) == (2, 24, 2, 4)  # last event at 3.0 ms -> 4 steps
    x, y = ds.batch([0, 1])
    assert x.dtype == bool and y.tolist() == [1, 0]
    assert _spikes(x) == {(0, 0, 1): 1, (2, 0, 12 + 8 + 3): 1, (2, 0, 12 + 4): 1, (3, 0, 4): 1, (1, 1, 8 + 2): 1}
    # the same as tonic's ToFrame [T, P, H, W] flattened, built here by hand
    frames = np.zeros((4, 2, 2, 3, 4), dtype=bool)  # [T, B, P, H, W]
    for b_, ev in enumerate((a, b)):
        for e in ev:
            frames[int(e["t"] // 1000), b_, int(e["p"]), e["y"], e["x"]] = True
    np.testing.assert_array_equal(x, frames.reshape(4, 2, 24))


def test_one_dimensional_sensor_with_a_single_polarity_ignores_p():
    # tonic's SHD: sensor (700, 1, 1) and p = 1 on every event
    a = _events(XP, [(0.0, 5, 1), (1500.0, 699, 1), (1999.9, 699, 1)])
    ds = events_dataset([a], [3], (700, 1, 1), n_classes=20, counts=True)
    assert (ds.n_inputs, ds.n_classes, ds.n_steps) == (700, 20, 2)
    x, _ = ds.batch([0])
    assert x.dtype == np.uint8 and _spikes(x) == {(0, 0, 5): 1, (1, 0, 699): 2}


def test_dt_and_duration_in_ms():
    a = _events(XP, [(0.0, 0, 0), (9999.0, 1, 1), (10000.0, 2, 0), (25000.0, 3, 1)])
    ds = events_dataset([a], [0], (4, 1, 2), dt=10.0, duration=20.0)
    assert ds.n_steps == 2 and ds.dropped_events == 1
    x, _ = ds.batch([0])
    assert _spikes(x) == {(0, 0, 0): 1, (0, 0, 4 + 1): 1, (1, 0, 2): 1}


def test_empty_examples_and_n_classes():
    empty = np.zeros(0, dtype=XP)
    ds = events_dataset([empty, _events(XP, [(0.0, 0, 0)])], [0, 4], (1, 1, 1), n_classes=6)
    assert ds.n_classes == 6 and ds.n_steps == 1
    assert not ds.batch([0])[0].any() and ds.batch([1])[0].all()


@pytest.mark.parametrize(
    "events, sensor, match",
    [
        ([np.zeros(2, dtype=[("t", float), ("x", int)])], (2, 1, 1), r"events\[0\]: missing field 'p'"),
        ([np.zeros(2)], (2, 1, 1), "expected a structured array"),
        ([_events(XP, [(0.0, 2, 0)])], (2, 1, 2), r"field 'x' must lie in \[0, 1\]"),
        ([_events(XP, [(0.0, 1, 2)])], (2, 1, 2), r"field 'p' must lie in \[0, 1\]"),
        ([_events(XYP, [(0, 3, 0, False)])], (2, 3, 1), r"field 'y' must lie in \[0, 2\]"),
        ([_events(XP, [(-1.0, 0, 0)])], (2, 1, 1), r"field 't' must hold finite times >= 0 \(microseconds\)"),
        ([_events(XP, [(0.0, 0, 0)])], (2, 1), r"sensor_size must be three integers \(W, H, P\)"),
    ],
)
def test_bad_events_name_the_example_and_field(events, sensor, match):
    with pytest.raises(ValueError, match=match):
        events_dataset(events, [0], sensor)


def test_label_errors():
    a = _events(XP, [(0.0, 0, 0)])
    with pytest.raises(ValueError, match="2 event arrays but 1 labels"):
        events_dataset([a, a], [0], (1, 1, 1))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got max 3"):
        events_dataset([a], [3], (1, 1, 1), n_classes=3)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        events_dataset([a], [-1], (1, 1, 1))


class FakeTonic:
    """Stands in for a tonic data set: indexable (events, label) pairs, sensor_size, classes."""

    sensor_size = (3, 1, 2)
    classes = ["a", "b", "c"]

    def __init__(self):
        self.samples = [
            (_events(XP, [(0.0, 0, 0), (2100.0, 2, 1)]), 2),
            (_events(XP, [(500.0, 1, 1)]), 0),
            (_events(XP, [(0.0, 2, 0)]), 1),
        ]
        self.reads = []

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.samples[i]


def test_from_tonic_reads_only_the_examples_of_a_batch():
    source = FakeTonic()
    ds = from_tonic(source, dt=1.0, duration=3.0)
    assert isinstance(ds, TonicDataset) and isinstance(ds, Dataset) and source.reads == []
    assert (len(ds), ds.n_inputs, ds.n_classes, ds.n_steps) == (3, 6, 3, 3)
    x, y = ds.batch([1, 0])
    assert source.reads == [1, 0] and y.tolist() == [0, 2]
    assert _spikes(x) == {(0, 0, 3 + 1): 1, (0, 1, 0): 1, (2, 1, 3 + 2): 1}
    # the same as binning the whole list eagerly
    eager = events_dataset([e for e, _ in source.samples], [lbl for _, lbl in source.samples], (3, 1, 2), duration=3.0)
    np.testing.assert_array_equal(x, eager.batch([1, 0])[0])


def test_from_tonic_needs_what_it_cannot_read():
    class Bare:
        def __len__(self):
            return 1

    with pytest.raises(ValueError, match="pass sensor_size"):
        from_tonic(Bare(), duration=1.0)
    with pytest.raises(ValueError, match="pass n_classes"):
        from_tonic(Bare(), duration=1.0, sensor_size=(1, 1, 1))
    source = FakeTonic()
    source.samples[0] = (source.samples[0][0], 7)
    with pytest.raises(ValueError, match=r"FakeTonic\[0\]: label 7 outside \[0, 2\]"):
        from_tonic(source, duration=3.0).batch([0])
