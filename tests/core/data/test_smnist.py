"""Spiking sequential MNIST from IDX files: header checks, per-batch encoding, bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from spikeloom.data import Dataset, SMNISTDataset, load_smnist, read_idx, threshold_crossing
from spikeloom.data.smnist import MNIST_URL

from .files import idx_bytes, write_idx, write_mnist


def _images(n, h=2, w=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_idx_bytes_are_the_documented_layout():
    raw = idx_bytes(0x803, (2, 1, 3), np.arange(6))
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3])
    assert raw[16:] == bytes(range(6))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gzipped(tmp_path, gz):
    data = _images(5, 3, 4)
    path = write_idx(tmp_path / ("img" + (".gz" if gz else "")), 0x803, data.shape, data, gz=gz)
    arr = read_idx(path, 0x803)
    assert arr.shape == (5, 3, 4) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, data)
    assert isinstance(arr, np.memmap) != gz  # plain files are memory-mapped, not read


def test_hand_computed_code_with_three_thresholds(tmp_path):
    # thresholds linspace(0, 1, 3)[:-1] = [0, 0.5]: neurons 0, 1 onset; 2, 3 offset; 4 "pixel == 1"
    img = np.array([[[0, 128], [255, 0]]], dtype=np.uint8)  # raster order 0, 0.502, 1, 0
    write_mnist(tmp_path, img, [3], img, [3])
    train, _ = load_smnist(tmp_path, n_thresholds=3)
    assert (train.n_steps, train.n_inputs, train.n_classes) == (4, 5, 10)
    x, y = train.batch([0])
    assert x.shape == (4, 1, 5) and x.dtype == bool and y.tolist() == [3]
    assert {tuple(int(i) for i in a) for a in np.argwhere(x)} == {(1, 0, 1), (2, 0, 4), (3, 0, 3)}


def test_default_code_is_79_neurons_one_pixel_per_step(tmp_path):
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    img[0, 0, 1] = img[0, 0, 2] = 255  # steps 1 and 2 at full grey, back to 0 at step 3
    write_mnist(tmp_path, img, [0], img, [0])
    train, test = load_smnist(tmp_path)
    assert (train.n_steps, train.n_inputs) == (784, 79) and len(test) == 1
    x, _ = train.batch([0])
    fired = {t: sorted(np.flatnonzero(x[t, 0]).tolist()) for t in range(784) if x[t, 0].any()}
    assert fired == {1: list(range(1, 39)) + [78], 2: [78], 3: list(range(40, 78))}


def test_recall_cue_adds_steps_and_the_80th_neuron(tmp_path):
    write_mnist(tmp_path, _images(3), [0, 1, 2], _images(2), [0, 1])
    train, _ = load_smnist(tmp_path, cue_steps=5)
    assert (train.n_steps, train.n_inputs) == (4 + 5, 80)
    x, _ = train.batch([2, 0])
    assert x[4:, :, 79].all() and not x[:4, :, 79].any() and not x[4:, :, :79].any()


def test_batch_encodes_only_its_examples_and_matches_the_encoder(tmp_path):
    images, labels = _images(30, 5, 6, seed=2), np.arange(30) % 10
    write_mnist(tmp_path, images, labels, images[:4], labels[:4], gz=True)
    train, test = load_smnist(tmp_path, n_thresholds=8)
    assert isinstance(train, Dataset) and len(train) == 30 and len(test) == 4
    order = [7, 3, 29]
    x, y = train.batch(order)
    expected = threshold_crossing(images[order].reshape(3, -1) / 255.0, n_thresholds=8).transpose(1, 0, 2)
    np.testing.assert_array_equal(x, expected)
    assert y.tolist() == labels[order].tolist() and train.labels.tolist() == labels.tolist()
    held = [v for v in vars(train).values() if isinstance(v, np.ndarray)]
    assert max(a.size for a in held) == images.size  # the raw pixels, no [S, T, N] spikes


def test_plain_and_gzipped_files_give_the_same_batches(tmp_path):
    images, labels = _images(6, 4, 4, seed=5), np.arange(6)
    plain, gz = tmp_path / "plain", tmp_path / "gz"
    plain.mkdir(), gz.mkdir()
    write_mnist(plain, images, labels, images, labels)
    write_mnist(gz, images, labels, images, labels, gz=True)
    a, b = load_smnist(plain)[0], load_smnist(gz)[0]
    np.testing.assert_array_equal(a.batch([5, 1])[0], b.batch([5, 1])[0])


def test_dotted_file_names_are_found(tmp_path):
    write_mnist(tmp_path, _images(2), [0, 1], _images(2), [0, 1])
    for stem in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        src = next(tmp_path.glob(f"{stem}-idx*"))
        src.rename(tmp_path / src.name.replace("-idx", ".idx"))
    assert len(load_smnist(tmp_path)[0]) == 2


def test_limit_keeps_a_seeded_subset(tmp_path):
    images, labels = _images(20, seed=1), np.arange(20) % 10
    write_mnist(tmp_path, images, labels, images, labels)
    a = load_smnist(tmp_path, limit=5, seed=3)[0]
    b = load_smnist(tmp_path, limit=5, seed=3)[0]
    assert len(a) == 5 and a.labels.tolist() == b.labels.tolist()
    rows = [int(np.flatnonzero((images == img).all(axis=(1, 2)))[0]) for img in (a.images(np.arange(5)) * 255).round()]
    assert labels[rows].tolist() == a.labels.tolist()


def test_missing_files_name_the_file_the_directory_and_the_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_smnist(tmp_path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path) in msg and MNIST_URL in msg
    write_mnist(tmp_path, _images(2), [0, 1], _images(2), [0, 1])
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_smnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_smnist(None)


def test_wrong_magic_names_the_file_found_and_expected(tmp_path):
    images = _images(2)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", 0x801, images.shape, images)  # a labels magic
    with pytest.raises(ValueError) as err:
        read_idx(path, 0x803)
    msg = str(err.value)
    assert str(path) in msg and "0x00000801" in msg and "expected 0x00000803" in msg
    # the same through the data set, with the files swapped
    write_mnist(tmp_path, images, [0, 1], images, [0, 1])
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte: wrong IDX magic number 0x00000801 \(expected 0x00000803"
    ):
        SMNISTDataset(tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "t10k-images-idx3-ubyte")


def test_truncated_files_and_short_headers(tmp_path):
    images = _images(3)
    raw = idx_bytes(0x803, images.shape, images)
    (tmp_path / "cut").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"cut: IDX data holds 11 bytes but the header's sizes \[3, 2, 2\] need 12"):
        read_idx(tmp_path / "cut", 0x803)
    (tmp_path / "head").write_bytes(raw[:10])
    with pytest.raises(ValueError, match=r"head: IDX header cut short \(10 of 16 bytes\)"):
        read_idx(tmp_path / "head", 0x803)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short for an IDX header"):
        read_idx(tmp_path / "tiny", 0x803)
    with gzip.open(tmp_path / "cut.gz", "wb") as f:
        f.write(raw + b"\x00")
    with pytest.raises(ValueError, match="holds 13 bytes"):
        read_idx(tmp_path / "cut.gz", 0x803)
    (tmp_path / "notgz.gz").write_bytes(raw)
    with pytest.raises(ValueError, match="not a readable gzip file"):
        read_idx(tmp_path / "notgz.gz", 0x803)


def test_labels_out_of_range_and_count_mismatch(tmp_path):
    write_mnist(tmp_path, _images(2), [0, 10], _images(2), [0, 1])
    with pytest.raises(ValueError) as err:
        load_smnist(tmp_path)
    assert "train-labels-idx1-ubyte" in str(err.value) and "labels must lie in [0, 9], got max 10" in str(err.value)
    write_mnist(tmp_path, _images(3), [0, 1], _images(2), [0, 1])
    with pytest.raises(ValueError, match="holds 3 images but .*train-labels-idx1-ubyte holds 2 labels"):
        load_smnist(tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_thresholds": 1}, "n_thresholds must be an integer >= 2"),
        ({"cue_steps": -1}, "cue_steps must be an integer >= 0"),
        ({"limit": 0}, "limit must be None or an integer >= 1"),
        ({"seed": 1.5}, "seed must be an integer >= 0"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    write_mnist(tmp_path, _images(2), [0, 1], _images(2), [0, 1])
    with pytest.raises(ValueError, match=match):
        load_smnist(tmp_path, **kwargs)
