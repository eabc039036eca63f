"""The training loop: learning, callbacks, validation up front, NaN handling, exact resumption."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("safetensors")

import spikeloom as sl  # noqa: E402
from spikeloom.checkpoint import load_checkpoint  # noqa: E402
from spikeloom.data import ArrayDataset  # noqa: E402
from spikeloom.training import HISTORY_KEYS, Callback, NonFiniteLossError, Trainer  # noqa: E402

from .fake_learning import FakeLearningBackend, toy_compiled, toy_dataset  # noqa: E402


def _trainer(compiled=None, **kwargs):
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("progress", False)
    return Trainer(compiled or toy_compiled(), sl.Adam(lr=kwargs.pop("lr", 0.05)), **kwargs)


def test_loss_decreases_on_a_learnable_task():
    trainer = _trainer(validation_fraction=0.2)
    history = trainer.fit(toy_dataset(), epochs=6)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6] and trainer.epoch == 6
    assert all(set(h) == set(HISTORY_KEYS) for h in history)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_accuracy"] >= 0.9
    ev = trainer.evaluate(toy_dataset(seed=1))
    assert set(ev) == {"loss", "accuracy", "n"} and ev["n"] == 60 and ev["accuracy"] >= 0.9
    pred = trainer.predict(toy_dataset(seed=1))
    assert pred.shape == (60,) and np.mean(pred == toy_dataset(seed=1).labels) == ev["accuracy"]


def test_history_without_validation_has_no_val_metrics():
    history = _trainer().fit(toy_dataset(), epochs=1)
    assert history[0]["val_loss"] is None and history[0]["val_accuracy"] is None


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.calls = []
        self.stop_at = stop_at

    def on_train_begin(self, trainer):
        self.trainer = trainer
        self.calls.append("begin")

    def on_batch_end(self, epoch, batch, metrics):
        assert set(metrics) == {"loss", "accuracy", "size"}
        self.calls.append(("batch", epoch, batch))

    def on_epoch_end(self, epoch, metrics):
        self.calls.append(("epoch", epoch, metrics["epoch"]))
        if epoch == self.stop_at:
            self.trainer.stop_training = True

    def on_train_end(self, history):
        self.calls.append(("end", len(history)))


def test_callbacks_are_called_in_order():
    rec = Recorder()

    class OnlyEpochs:  # any object with some of the hooks works
        epochs = []

        def on_epoch_end(self, epoch, metrics):
            self.epochs.append(epoch)

    only = OnlyEpochs()
    _trainer(batch_size=25, callbacks=[rec, only]).fit(toy_dataset(), epochs=2)  # 60 examples: 3 batches
    batches = [("batch", e, b) for e in (1, 2) for b in (1, 2, 3)]
    assert rec.calls == ["begin", *batches[:3], ("epoch", 1, 1), *batches[3:], ("epoch", 2, 2), ("end", 2)]
    assert only.epochs == [1, 2]


def test_a_callback_can_stop_training(tmp_path):
    trainer = _trainer(callbacks=[Recorder(stop_at=2)], checkpoint_dir=tmp_path / "c", checkpoint_every=5)
    history = trainer.fit(toy_dataset(), epochs=10)
    assert len(history) == 2 and load_checkpoint(tmp_path / "c").epoch == 2


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_last_good_checkpoint(tmp_path):
    # 60 examples in batches of 8: 8 steps per epoch; the 11th step (epoch 2, batch 3) gives NaN
    compiled = toy_compiled(nan_after=10)
    trainer = _trainer(compiled, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, batch 3 of 8.*end of epoch 1") as err:
        trainer.fit(toy_dataset(), epochs=3)
    assert str(tmp_path / "ckpt") in str(err.value)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.epoch == 1 and len(ckpt.history) == 1
    assert trainer.epoch == 1
    for name, arr in trainer.compiled.get_params().items():  # memory is put back to the checkpoint
        assert np.all(np.isfinite(arr))
        np.testing.assert_array_equal(arr, ckpt.params[name])
    assert trainer.optimizer.t == ckpt.optimizer[0]["t"] == 8


def _run(epochs, ckpt=None, resume=None, backend=None, **kwargs):
    if resume is not None:
        trainer = Trainer.from_checkpoint(resume, backend=backend or FakeLearningBackend(), progress=False)
    else:
        trainer = _trainer(toy_compiled() if backend is None else kwargs.pop("compiled"), checkpoint_dir=ckpt, **kwargs)
    trainer.fit(toy_dataset(), epochs=epochs)
    return trainer


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    settings = {"validation_fraction": 0.25, "seed": 3}
    full = _run(4, **settings)
    _run(2, ckpt=tmp_path / "c", **settings)
    resumed = _run(4, resume=tmp_path / "c")
    assert resumed.epoch == 4 and resumed.optimizer.t == full.optimizer.t
    assert (resumed.batch_size, resumed.seed, resumed.validation_fraction) == (8, 3, 0.25)
    for name, arr in full.compiled.get_params().items():
        np.testing.assert_array_equal(resumed.compiled.get_params()[name], arr)
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in full.history]
    assert [{k: v for k, v in h.items() if k != "time_s"} for h in resumed.history] == strip
    assert load_checkpoint(tmp_path / "c").epoch == 4


def test_load_checkpoint_into_a_trainer_checks_settings_and_network(tmp_path):
    _run(1, ckpt=tmp_path / "c")
    with pytest.raises(ValueError, match="batch_size=8, this trainer has batch_size=4"):
        _trainer(batch_size=4).load_checkpoint(tmp_path / "c")
    with pytest.raises(ValueError, match="another network"):
        _trainer(toy_compiled(seed=1)).load_checkpoint(tmp_path / "c")
    other_rule = FakeLearningBackend().compile(
        toy_compiled().network, rule=sl.BPTT(), readout=sl.Readout("out", "per_step", window=(4, None))
    )
    with pytest.raises(ValueError, match="trained with rule"):
        _trainer(other_rule).load_checkpoint(tmp_path / "c")
    trainer = _trainer()
    trainer.load_checkpoint(tmp_path / "c")
    with pytest.raises(ValueError, match="differs from the one the checkpoint was trained on"):
        trainer.fit(toy_dataset(n=30), epochs=2)
    with pytest.raises(ValueError, match="cannot be changed on resume"):
        Trainer.from_checkpoint(tmp_path / "c", backend=FakeLearningBackend(), batch_size=4)


class _FloatData:
    """A minimal data set (not an ArrayDataset) with float inputs."""

    def __init__(self, n=4, n_inputs=3, T=12, nan=False):
        self.n, self.n_inputs, self.n_steps, self.n_classes, self.nan = n, n_inputs, T, 3, nan

    def __len__(self):
        return self.n

    def batch(self, indices):
        x = np.zeros((self.n_steps, len(indices), self.n_inputs), np.float32)
        if self.nan:
            x[0, 0, 0] = np.nan
        return x, np.zeros(len(indices), np.int64)


@pytest.mark.parametrize(
    "train, match",
    [
        (_FloatData(n=0), "training set is empty"),
        (_FloatData(n_inputs=5), "5 input channels but the network's SpikeInput 'inp' has 3 neurons"),
        (ArrayDataset(np.zeros((4, 12, 3)), [0, 1, 2, 3]), r"labels in \[0, 3\] but the readout 'out' has 3 neurons"),
        (_FloatData(nan=True), "NaN or inf in its inputs"),
        (_FloatData(T=3), r"window \(4, None\) selects no step of a 3-step input"),
        ("not data", "expected a data set"),
    ],
)
def test_bad_data_is_refused_before_any_work(train, match):
    compiled = toy_compiled()
    with pytest.raises(ValueError, match=match):
        _trainer(compiled).fit(train, epochs=1)
    assert compiled.steps_taken == 0


def test_bad_validation_set_is_refused_before_any_work():
    compiled = toy_compiled()
    with pytest.raises(ValueError, match="validation set has 5 input channels"):
        _trainer(compiled).fit(toy_dataset(), epochs=1, validation=_FloatData(n_inputs=5))
    assert compiled.steps_taken == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"validation_fraction": 1.0}, r"validation_fraction must lie in \[0, 1\)"),
    ],
)
def test_trainer_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _trainer(**kwargs)


def test_a_network_without_learning_setup_is_refused():
    net = toy_compiled().network
    with pytest.raises(ValueError, match="without readout"):
        Trainer(FakeLearningBackend().compile(net))
    forward_only = FakeLearningBackend().compile(net, readout=sl.Readout("out", "per_step"))
    trainer = Trainer(forward_only, progress=False)
    assert 0 <= trainer.evaluate(toy_dataset())["accuracy"] <= 1
    with pytest.raises(ValueError, match="without a learning rule"):
        trainer.fit(toy_dataset(), epochs=1)


def test_progress_bar_shows_epochs(capsys):
    pytest.importorskip("tqdm")
    _trainer(progress=True).fit(toy_dataset(), epochs=1)
    assert "epoch 1/1" in capsys.readouterr().err


# -- with the NumPy reference -------------------------------------------------------------------
def _numpy_compiled(rule):
    net = sl.Network(
        [sl.SpikeInput("inp", 3), sl.LIF("hidden", 8, v_thresh=0.5), sl.LI("out", 3, tau_mem=10.0)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.5, 0.3)),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 0.2)),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 0.3)),
        ],
        seed=2,
    )
    readout = sl.Readout("out", "per_step", window=(4, None))
    return sl.get_backend("numpy").compile(net, rule=rule, readout=readout, dtype="float32")


@pytest.mark.parametrize("rule", [sl.EProp(), sl.BPTT()], ids=["eprop", "bptt"])
def test_numpy_reference_learns_and_resumes_exactly(tmp_path, rule):
    full = _trainer(_numpy_compiled(rule), lr=0.02)
    full.fit(toy_dataset(), epochs=3)
    assert full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    _trainer(_numpy_compiled(rule), lr=0.02, checkpoint_dir=tmp_path / "c").fit(toy_dataset(), epochs=1)
    resumed = Trainer.from_checkpoint(tmp_path / "c", backend="numpy", progress=False)
    resumed.fit(toy_dataset(), epochs=3)
    for name, arr in full.compiled.get_params().items():
        np.testing.assert_array_equal(resumed.compiled.get_params()[name], arr)


def test_import_spikeloom_stays_light():
    heavy = ("torch", "cupy", "matplotlib", "h5py", "sklearn", "safetensors", "tqdm")
    code = (
        "import sys, spikeloom, spikeloom.training, spikeloom.data, spikeloom.experiments, spikeloom.cli; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
