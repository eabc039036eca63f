"""The SHD reader: binning on the dt grid, options, laziness and every bad-file error."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("h5py")

from spikeloom.data import Dataset, RaggedDataset, load_shd, read_shd  # noqa: E402
from spikeloom.data.shd import SHD_URL  # noqa: E402

from .files import random_shd, write_shd  # noqa: E402

# times are float16-exact (sums of powers of 2), so the expected steps are exact
TIMES = [[0.0, 0.0, 0.03125, 0.0625, 0.5, 1.5], [0.001953125, 0.25], []]
UNITS = [[3, 3, 10, 699, 3, 5], [0, 1], []]
LABELS = [7, 19, 0]


@pytest.fixture
def small(tmp_path):
    return write_shd(tmp_path / "shd_train.h5", TIMES, UNITS, LABELS)


def _spikes(x):
    """``{(t, b, n): value}`` of the non-zero entries of ``x [T, B, N]``."""
    return {tuple(int(i) for i in idx): int(x[tuple(idx)]) for idx in np.argwhere(x)}


def test_default_grid_is_1400_steps_of_1_ms_with_one_spike_per_bin(small):
    ds = read_shd(small)
    assert isinstance(ds, Dataset) and isinstance(ds, RaggedDataset)
    assert (len(ds), ds.n_steps, ds.n_inputs, ds.n_classes, ds.dt) == (3, 1400, 700, 20, 1.0)
    x, y = ds.batch([0, 1, 2])
    assert x.shape == (1400, 3, 700) and x.dtype == bool and y.dtype == np.int64
    assert y.tolist() == [7, 19, 0]
    # example 0: two spikes of unit 3 at 0 ms share one bin; 1.5 s lies past 1400 ms and is dropped
    assert _spikes(x) == {
        (0, 0, 3): 1,
        (31, 0, 10): 1,
        (62, 0, 699): 1,
        (500, 0, 3): 1,
        (1, 1, 0): 1,
        (250, 1, 1): 1,
    }
    assert ds.dropped_events == 1
    assert ds.events.n_events == 7


def test_batch_follows_the_indices_and_counts_option(small):
    ds = read_shd(small, counts=True)
    x, y = ds.batch([1, 0])
    assert x.dtype == np.uint8 and y.tolist() == [19, 7]
    assert _spikes(x) == {
        (1, 0, 0): 1,
        (250, 0, 1): 1,
        (0, 1, 3): 2,
        (31, 1, 10): 1,
        (62, 1, 699): 1,
        (500, 1, 3): 1,
    }


def test_dt_duration_and_pooling(small):
    ds = read_shd(small, dt=10.0, duration=600.0, pool=2)
    assert (ds.n_steps, ds.n_inputs) == (60, 350)
    x, _ = ds.batch([0, 1])
    assert _spikes(x) == {(0, 0, 1): 1, (3, 0, 5): 1, (6, 0, 349): 1, (50, 0, 1): 1, (0, 1, 0): 1, (25, 1, 0): 1}
    assert read_shd(small, pool=3).n_inputs == 234  # ceil(700 / 3)
    # a duration that is not a multiple of dt still covers it: ceil(1000 / 3) steps
    assert read_shd(small, dt=3.0, duration=1000.0).n_steps == 334
    # a shorter duration drops the later spikes
    short = read_shd(small, duration=100.0)
    assert short.n_steps == 100 and short.dropped_events == 3


def test_bin_edges_count_in_the_later_bin(tmp_path):
    path = write_shd(tmp_path / "f.h5", [[0.003, 0.0069999, 0.007]], [[1, 2, 3]], [0], time_dtype=np.float64)
    x, _ = read_shd(path).batch([0])
    assert _spikes(x) == {(3, 0, 1): 1, (6, 0, 2): 1, (7, 0, 3): 1}


@pytest.mark.parametrize("chunk", [256, 5])
def test_matches_a_plain_loop_on_random_files(tmp_path, monkeypatch, chunk):
    import spikeloom.data.shd as shd_module

    monkeypatch.setattr(shd_module, "_CHUNK", chunk)  # examples are converted a chunk at a time
    path = random_shd(tmp_path / "r.h5", 12, seed=3, mean_spikes=300)
    import h5py

    with h5py.File(path, "r") as f:
        times = [np.asarray(t, dtype=np.float64) for t in f["spikes/times"][:]]
        units = [np.asarray(u) for u in f["spikes/units"][:]]
    for dt, pool, counts in ((1.0, 1, False), (4.0, 5, True), (25.0, 1, True)):
        ds = read_shd(path, dt=dt, pool=pool, counts=counts)
        assert ds.events.counts().tolist() == [int((t < 1.4).sum()) for t in times]
        order = [5, 0, 11, 5]
        x, _ = ds.batch(order)
        expected = np.zeros_like(x)
        for b, i in enumerate(order):
            for t, u in zip(times[i], units[i], strict=True):
                step = int(np.floor(t * 1000.0 / dt))
                if step < ds.n_steps:
                    expected[step, b, u // pool] = expected[step, b, u // pool] + 1 if counts else True
        np.testing.assert_array_equal(x, expected)


def test_the_reader_keeps_events_ragged_not_dense(tmp_path):
    path = random_shd(tmp_path / "big.h5", 40, seed=1, mean_spikes=400)
    dense_bytes = 40 * 1400 * 700  # a bool [S, T, N] copy: 39.2 MB
    tracemalloc.start()
    try:
        ds = read_shd(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 10
    held = [v for obj in (ds, ds.events) for v in vars(obj).values() if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in held) < 4 * ds.events.n_events + 8 * 41 + 1000
    assert all(a.size < 40 * 1400 for a in held)
    x, _ = ds.batch([3])
    assert x.shape == (1400, 1, 700)


def test_limit_reads_a_seeded_subset_and_metadata(tmp_path, monkeypatch):
    import spikeloom.data.shd as shd_module

    labels = [0, 1, 2, 3, 4, 5, 6, 7]
    path = write_shd(tmp_path / "f.h5", [[0.5]] * 8, [[i] for i in range(8)], labels, speaker=np.arange(8) + 100)
    full = read_shd(path)
    assert full.class_names[:2] == ("digit-0", "digit-1") and full.extra["speaker"].tolist() == list(range(100, 108))
    part = read_shd(path, limit=3, seed=4)
    assert len(part) == 3
    monkeypatch.setattr(shd_module, "_CHUNK", 2)
    np.testing.assert_array_equal(read_shd(path, limit=3, seed=4).batch([0, 1, 2])[0], part.batch([0, 1, 2])[0])
    rows = part.extra["speaker"] - 100
    assert part.labels.tolist() == rows.tolist()  # label i belongs to row i
    x, _ = part.batch([0, 1, 2])
    assert [int(np.flatnonzero(x[500, b])[0]) for b in range(3)] == rows.tolist()
    assert read_shd(path, limit=3, seed=4).labels.tolist() == part.labels.tolist()
    assert len(read_shd(path, limit=100)) == 8


def test_load_shd_reads_both_files(tmp_path):
    write_shd(tmp_path / "shd_train.h5", TIMES, UNITS, LABELS)
    write_shd(tmp_path / "shd_test.h5", TIMES[:2], UNITS[:2], LABELS[:2])
    train, test = load_shd(tmp_path, dt=2.0)
    assert (len(train), len(test), train.n_steps, test.n_steps) == (3, 2, 700, 700)
    assert train.name == "shd-train" and test.name == "shd-test"


def test_missing_files_name_the_file_the_directory_and_the_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_shd(tmp_path)
    msg = str(err.value)
    assert "shd_train.h5" in msg and str(tmp_path) in msg and SHD_URL in msg
    (tmp_path / "shd_train.h5.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="gunzip"):
        load_shd(tmp_path)
    write_shd(tmp_path / "shd_train.h5", TIMES, UNITS, LABELS)
    with pytest.raises(FileNotFoundError, match="shd_test.h5"):
        load_shd(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_shd(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_shd(tmp_path / "nowhere")


@pytest.mark.parametrize("key", ["spikes/times", "spikes/units", "labels"])
def test_missing_keys_name_the_file_and_the_key(tmp_path, key):
    path = write_shd(tmp_path / "shd_train.h5", TIMES, UNITS, LABELS, skip=(key,))
    with pytest.raises(ValueError) as err:
        read_shd(path)
    assert str(path) in str(err.value) and repr(key) in str(err.value)


def test_extra_keys_are_optional(tmp_path):
    path = write_shd(tmp_path / "f.h5", TIMES, UNITS, LABELS, skip=("extra/speaker", "extra/keys"))
    ds = read_shd(path)
    assert ds.class_names is None and ds.extra == {}


@pytest.mark.parametrize(
    "times, units, labels, match",
    [
        (
            [[0.1, 0.2], [0.3]],
            [[1, 2], [3, 4]],
            [0, 1],
            r"example 1 has 1 entries in 'spikes/times' but 2 in 'spikes/units'",
        ),
        ([[0.1], [0.3]], [[1], [3]], [0, 1, 2], r"'labels' has 3 entries but 'spikes/times' has 2 examples"),
        ([[0.1], [0.3]], [[1]], [0, 1], r"'spikes/units' has 1 examples but 'spikes/times' has 2"),
        ([[0.1], [0.3]], [[1], [3]], [0, 20], r"'labels' must lie in \[0, 19\], got 0..20"),
        ([[0.1], [0.3]], [[1], [700]], [0, 1], r"'spikes/units' must lie in \[0, 699\]"),
        ([[0.1], [-0.3]], [[1], [3]], [0, 1], r"'spikes/times' must hold finite times >= 0"),
        ([[0.1], [np.nan]], [[1], [3]], [0, 1], r"'spikes/times' must hold finite times >= 0"),
        ([], [], [], r"holds no examples"),
    ],
)
def test_bad_contents_name_the_file_and_the_key(tmp_path, times, units, labels, match):
    path = write_shd(tmp_path / "bad.h5", times, units, labels, time_dtype=np.float32)
    with pytest.raises(ValueError, match=match) as err:
        read_shd(path)
    assert str(path) in str(err.value)


def test_speaker_of_the_wrong_length_is_an_error(tmp_path):
    path = write_shd(tmp_path / "bad.h5", TIMES, UNITS, LABELS, speaker=[1, 2])
    with pytest.raises(ValueError, match=r"'extra/speaker' has 2 entries but there are 3 examples"):
        read_shd(path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dt": 0}, "dt must be a positive number of milliseconds"),
        ({"duration": -5.0}, "duration must be a positive number of milliseconds"),
        ({"pool": 0}, "pool must be an integer >= 1"),
        ({"limit": 0}, "limit must be None or an integer >= 1"),
        ({"seed": -2}, "seed must be an integer >= 0"),
    ],
)
def test_bad_options(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        read_shd(small, **kwargs)


def test_counts_above_255_in_one_bin_are_refused(tmp_path):
    path = write_shd(tmp_path / "f.h5", [[0.0] * 300], [[4] * 300], [0])
    assert read_shd(path).batch([0])[0][0, 0, 4]  # bool: one spike
    with pytest.raises(ValueError, match="300 events fall in one bin .* smaller dt"):
        read_shd(path, counts=True).batch([0])


def test_subset_keeps_options_and_events(small):
    ds = read_shd(small, dt=10.0, duration=600.0)
    sub = ds.subset([1, 0])
    np.testing.assert_array_equal(sub.batch([0, 1])[0], ds.batch([1, 0])[0])
    assert sub.labels.tolist() == [19, 7] and sub.extra["speaker"].tolist() == ds.extra["speaker"][[1, 0]].tolist()
