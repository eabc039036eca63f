"""Checkpoint directories: exact round trip, and a clear ValueError for each malformed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")

from safetensors.numpy import load_file, save_file  # noqa: E402

import spikeloom as sl  # noqa: E402
from spikeloom.checkpoint import FILES, load_checkpoint, save_checkpoint  # noqa: E402
from spikeloom.training import Trainer  # noqa: E402

from .fake_learning import toy_compiled, toy_dataset, toy_network  # noqa: E402


@pytest.fixture
def trained(tmp_path):
    """A checkpoint after two epochs of training the toy network (so the optimiser has moments)."""
    compiled = toy_compiled()
    trainer = Trainer(compiled, sl.Adam(lr=0.05), batch_size=16, progress=False, checkpoint_dir=tmp_path / "ckpt")
    trainer.fit(toy_dataset(), epochs=2)
    return trainer, tmp_path / "ckpt"


def test_round_trip_is_exact(trained):
    trainer, path = trained
    assert sorted(p.name for p in path.iterdir()) == sorted(FILES)
    ckpt = load_checkpoint(path, network=trainer.network)
    params = trainer.compiled.get_params()
    assert set(ckpt.params) == set(params)
    for name, arr in params.items():
        assert ckpt.params[name].dtype == arr.dtype == np.float32
        np.testing.assert_array_equal(ckpt.params[name], arr)
    scalars, arrays = trainer.optimizer.state_dict()
    assert ckpt.optimizer[0] == scalars and scalars["t"] == 8
    assert set(ckpt.optimizer[1]) == set(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(ckpt.optimizer[1][name], arr)
    assert ckpt.epoch == 2 and ckpt.history == trainer.history
    assert ckpt.rule == trainer.rule and ckpt.readout == trainer.readout
    assert ckpt.network.to_dict() == trainer.network.to_dict()
    assert ckpt.rng == trainer.rng.bit_generator.state
    assert ckpt.trainer == {"batch_size": 16, "seed": 0, "validation_fraction": 0.0, "drop_last": False}
    assert ckpt.data == {"n_train": 60, "n_inputs": 3, "n_steps": 12, "n_classes": 3}


def test_writing_again_replaces_the_checkpoint_without_leftovers(trained):
    trainer, path = trained
    trainer.epoch = 7
    trainer.save_checkpoint()
    assert load_checkpoint(path).epoch == 7
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


def test_save_refuses_non_finite_parameters(tmp_path):
    net = toy_network()
    params = {k: v.copy() for k, v in net.built.initial_params().items()}
    params["out.bias"][0] = np.nan
    with pytest.raises(ValueError, match=r"params\['out.bias'\]: contains NaN"):
        save_checkpoint(tmp_path / "c", network=net, params=params)
    assert not (tmp_path / "c").exists()


def _rewrite_params(path, change):
    params = load_file(str(path / "params.safetensors"))
    change(params)
    save_file(params, str(path / "params.safetensors"))


def _rewrite_state(path, change):
    state = json.loads((path / "state.json").read_text())
    change(state)
    (path / "state.json").write_text(json.dumps(state))


def _set(key, value):
    def change(d):
        d[key] = value

    return change


MALFORMED = {
    "missing params": (lambda p: (p / "params.safetensors").unlink(), r"missing files \['params.safetensors'\]"),
    "missing optimizer": (
        lambda p: (p / "optimizer.safetensors").unlink(),
        r"missing files \['optimizer.safetensors'\]",
    ),
    "missing network": (lambda p: (p / "network.json").unlink(), r"missing files \['network.json'\]"),
    "missing state": (lambda p: (p / "state.json").unlink(), r"missing files \['state.json'\]"),
    "bad state json": (lambda p: (p / "state.json").write_text("{nope"), "state.json is not valid JSON"),
    "bad network json": (lambda p: (p / "network.json").write_text("[1,"), "network.json is not valid JSON"),
    "garbage params": (
        lambda p: (p / "params.safetensors").write_bytes(b"xx"),
        "params.safetensors is not a valid safetensors",
    ),
    "unknown param": (
        lambda p: _rewrite_params(p, lambda d: d.update(extra=np.zeros(2, np.float32))),
        r"unknown parameter names \['extra'\]",
    ),
    "missing param": (lambda p: _rewrite_params(p, lambda d: d.pop("out.bias")), r"missing parameters \['out.bias'\]"),
    "wrong shape": (
        lambda p: _rewrite_params(p, lambda d: d.update({"out.bias": np.zeros(4, np.float32)})),
        r"'out.bias' has shape \[4\], the network expects \[3\]",
    ),
    "nan param": (
        lambda p: _rewrite_params(p, lambda d: d.update({"out.bias": np.full(3, np.nan, np.float32)})),
        "'out.bias' contains NaN or inf",
    ),
    "integer param": (
        lambda p: _rewrite_params(p, lambda d: d.update({"out.bias": np.zeros(3, np.int32)})),
        "expected floating point",
    ),
    "wrong format": (lambda p: _rewrite_state(p, _set("format", "other")), "'format' must be 'spikeloom.checkpoint'"),
    "future version": (lambda p: _rewrite_state(p, _set("version", 99)), "format version 99 is not supported"),
    "negative epoch": (lambda p: _rewrite_state(p, _set("epoch", -1)), "'epoch' must be an integer >= 0"),
    "bad history": (lambda p: _rewrite_state(p, _set("history", [1, 2])), "'history' must be a list of dicts"),
    "unknown state key": (lambda p: _rewrite_state(p, _set("surprise", 1)), r"unknown keys \['surprise'\]"),
    "missing state key": (lambda p: _rewrite_state(p, lambda d: d.pop("epoch")), r"missing keys \[.epoch.\]"),
    "bad rule": (lambda p: _rewrite_state(p, _set("rule", {"kind": "hebb"})), "'kind' must be 'bptt' or 'eprop'"),
    "bad readout": (
        lambda p: _rewrite_state(p, _set("readout", {"population": "nowhere", "mode": "per_step"})),
        "unknown population 'nowhere'",
    ),
    "bad optimizer entry": (lambda p: _rewrite_state(p, _set("optimizer", {"kind": "SGD"})), "'optimizer' must be"),
    "bad optimizer scalar": (
        lambda p: _rewrite_state(p, lambda d: d["optimizer"]["scalars"].update(lr=-1.0)),
        "Adam.lr must be a finite number > 0",
    ),
    "bad network": (
        lambda p: (p / "network.json").write_text(
            json.dumps({"format": "spikeloom.network", "version": 1, "populations": []})
        ),
        "network.json: Network.populations is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_checkpoints_raise_naming_the_problem(trained, case):
    _, path = trained
    damage, match = MALFORMED[case]
    damage(path)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(path)


def test_optimizer_arrays_are_checked(trained):
    _, path = trained
    arrays = load_file(str(path / "optimizer.safetensors"))
    save_file({**arrays, "m/nothing": np.zeros(3, np.float32)}, str(path / "optimizer.safetensors"))
    with pytest.raises(ValueError, match="unexpected array 'm/nothing'"):
        load_checkpoint(path)
    arrays["m/out.bias"] = np.zeros(5, np.float32)
    save_file(arrays, str(path / "optimizer.safetensors"))
    with pytest.raises(ValueError, match=r"'m/out.bias' has shape \[5\]"):
        load_checkpoint(path)


def test_checkpoint_from_another_network_is_refused(trained):
    _, path = trained
    with pytest.raises(ValueError, match="from another network .*differ at seed"):
        load_checkpoint(path, network=toy_network(seed=5))
    other = sl.Network(
        [sl.SpikeInput("inp", 3), sl.LI("out", 3, tau_mem=12.0)],
        [sl.Connection("inp", "out", weight=sl.Normal(0.0, 0.1))],
    )
    with pytest.raises(ValueError, match=r"differ at populations\[1\].tau_mem"):
        load_checkpoint(path, network=other)


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        load_checkpoint(tmp_path / "nothing")
