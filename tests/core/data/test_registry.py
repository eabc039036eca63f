"""load_dataset: every data set by name, options, errors; the results train with the core Trainer."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl
from spikeloom.data import DATASETS, Dataset, dataset_options, load_dataset

from .files import random_shd, write_mnist


def test_names():
    assert DATASETS == ("digits", "shd", "smnist", "randman")


def _check(ds):
    assert isinstance(ds, Dataset)
    x, y = ds.batch(np.arange(min(3, len(ds))))
    assert x.shape == (ds.n_steps, min(3, len(ds)), ds.n_inputs)
    assert y.dtype == np.int64 and ((0 <= y) & (y < ds.n_classes)).all()
    assert len(ds.labels) == len(ds)


def test_digits_delegates_to_load_digits():
    pytest.importorskip("sklearn")
    train, test = load_dataset("digits", encoding="pixels", seed=1, limit=20)
    ref_train, _ = sl.data.load_digits("pixels", seed=1, limit=20)
    assert (len(train), len(test), train.n_inputs, train.n_steps) == (20, 20, 256, 16)
    np.testing.assert_array_equal(train.spikes, ref_train.spikes)
    _check(train)
    assert load_dataset("digits", encoding="rows", levels=2, limit=5)[0].n_inputs == 16


def test_randman_by_name():
    train, test = load_dataset("randman", seed=3, limit=50, n_units=12)
    assert (len(train), len(test), train.n_inputs, train.n_steps, train.n_classes) == (50, 50, 12, 100, 10)
    _check(train)
    again, _ = load_dataset("randman", seed=3, limit=50, n_units=12)
    np.testing.assert_array_equal(train.batch(np.arange(50))[0], again.batch(np.arange(50))[0])


def test_shd_by_name(tmp_path):
    pytest.importorskip("h5py")
    random_shd(tmp_path / "shd_train.h5", 30, seed=0)
    random_shd(tmp_path / "shd_test.h5", 10, seed=1)
    train, test = load_dataset("shd", data_dir=tmp_path, dt=10.0, pool=7, limit=20, seed=2)
    assert (len(train), len(test), train.n_inputs, train.n_steps, train.n_classes) == (20, 10, 100, 140, 20)
    _check(train)
    _check(test)
    assert train.dt == 10.0


def test_smnist_by_name(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    write_mnist(tmp_path, images, np.arange(12) % 10, images[:4], np.arange(4), gz=True)
    train, test = load_dataset("smnist", data_dir=str(tmp_path), limit=5, cue_steps=10)
    assert (len(train), len(test), train.n_inputs, train.n_steps) == (5, 4, 80, 794)
    _check(train)


def test_options_are_listed():
    assert dataset_options("shd") == {"dt": 1.0, "duration": 1400.0, "counts": False, "pool": 1}
    assert dataset_options("smnist") == {"n_thresholds": 40, "cue_steps": 0}
    assert {"n_units", "dim", "alpha", "n_steps"} <= set(dataset_options("randman"))
    assert {"encoding", "levels"} <= set(dataset_options("digits"))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (
            ("mnist",),
            {},
            ValueError,
            r"unknown data set 'mnist'; choose one of \['digits', 'shd', 'smnist', 'randman'\]",
        ),
        (
            ("shd",),
            {"bins": 3},
            ValueError,
            r"unknown option \['bins'\]; shd takes \['counts', 'dt', 'duration', 'pool'\]",
        ),
        (("randman",), {"data_dir": "/tmp"}, ValueError, "data_dir is not used"),
        (("randman",), {"seed": -1}, ValueError, "seed must be an integer >= 0"),
        (("randman",), {"limit": 0}, ValueError, "limit must be None or an integer >= 1"),
        (("shd",), {}, FileNotFoundError, "shd_train.h5 and shd_test.h5"),
        (("smnist",), {}, FileNotFoundError, "MNIST IDX files"),
    ],
)
def test_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset(*args, **kwargs)


def test_missing_directory_names_file_directory_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("shd", data_dir=tmp_path)
    assert "shd_train.h5" in str(err.value) and str(tmp_path) in str(err.value) and "zenkelab.org" in str(err.value)


def _trainer(train, hidden=24):
    """A recurrent LIF classifier for ``train`` (built from the public API, ``dt`` = 1 ms) and its Trainer."""
    from spikeloom.training import Trainer

    pops = [
        sl.SpikeInput("inp", train.n_inputs),
        sl.LIF("hidden", hidden, tau_mem=20.0, v_thresh=0.6, refractory=5.0),
        sl.LI("out", train.n_classes, tau_mem=20.0),
    ]
    conns = [
        sl.Connection("inp", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(train.n_inputs))),
        sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 1.0 / np.sqrt(hidden - 1))),
        sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(hidden))),
    ]
    net = sl.Network(pops, conns, dt=1.0, seed=0)
    readout = sl.Readout("out", "per_step", window=(0, None))
    compiled = sl.get_backend("numpy").compile(net, rule=sl.EProp(), readout=readout, dtype="float32")
    return Trainer(compiled, sl.Adam(lr=1e-2), batch_size=16, seed=0, progress=False)


def test_randman_is_learnt_by_the_core_trainer():
    train, test = load_dataset("randman", n_classes=3, samples_per_class=60, n_steps=40, n_units=10, seed=0)
    trainer = _trainer(train)
    trainer.fit(train, 4)
    result = trainer.evaluate(test)
    assert result["n"] == len(test) == 36
    assert result["accuracy"] > 0.8  # chance is 1/3; 1.0, 1.0, 0.94 with seeds 0, 1, 2


def test_a_shd_file_trains_with_the_core_trainer(tmp_path):
    pytest.importorskip("h5py")
    random_shd(tmp_path / "shd_train.h5", 24, seed=0, mean_spikes=60)
    random_shd(tmp_path / "shd_test.h5", 8, seed=1, mean_spikes=60)
    train, test = load_dataset("shd", data_dir=tmp_path, dt=10.0, duration=200.0, pool=7)
    trainer = _trainer(train, hidden=8)
    history = trainer.fit(train, 1)
    assert np.isfinite(history[0]["train_loss"]) and trainer.evaluate(test)["n"] == 8


def test_docs_name_every_data_set_and_option():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "data.md").read_text()
    for name in DATASETS:
        assert f"`{name}`" in text, name
        for option in dataset_options(name):
            if name != "digits":  # the digits' encoder options are documented in training.md
                assert f"`{option}`" in text, (name, option)
