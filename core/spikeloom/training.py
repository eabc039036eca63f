"""The training loop, once for every backend: epochs of seeded shuffled batches, validation,
metrics, callbacks, checkpoints and exact resumption.

::

    trainer = Trainer(compiled, sl.Adam(lr=1e-3), batch_size=32, validation_fraction=0.1,
                      checkpoint_dir="runs/x/checkpoint")
    history = trainer.fit(train, epochs=10)      # one metrics dict per epoch
    trainer.evaluate(test)                       # {"loss": ..., "accuracy": ..., "n": ...}

    # later, continue as the uninterrupted run would have:
    trainer = Trainer.from_checkpoint("runs/x/checkpoint")
    trainer.fit(train, epochs=20)

Everything that could fail on the data is checked before the first step: empty data sets, input
width, labels outside the readout's range, a readout window outside the data's steps, NaN inputs.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .backend import Backend, Compiled
from .checkpoint import Checkpoint, check_same_network, load_checkpoint, save_checkpoint
from .data.dataset import ArrayDataset, Dataset, Subset, batch_indices, labels_of, split
from .optim import Adam

__all__ = ["Trainer", "Callback", "NonFiniteLossError", "HISTORY_KEYS"]

#: keys of each epoch's metrics dict (``val_*`` are ``None`` without validation data)
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "time_s")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


class Callback:
    """Hooks called by :meth:`Trainer.fit`; subclass and override what you need (any object with
    some of these methods works too).  Set ``trainer.stop_training = True`` to stop after the
    current epoch."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch of a :meth:`Trainer.fit` call."""

    def on_batch_end(self, epoch: int, batch: int, metrics: dict) -> None:
        """After each optimiser step; ``metrics``: ``loss``, ``accuracy``, ``size`` of this batch."""

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        """After each epoch (1-based), with the epoch's entry of the history."""

    def on_train_end(self, history: list[dict]) -> None:
        """After the last epoch of a :meth:`Trainer.fit` call (not after an error)."""


def _positive_int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {value!r}")
    return int(value)


def _underlying(dataset):
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


class Trainer:
    """Trains a compiled network (compiled with ``rule=`` and ``readout=``) with an optimiser.

    ``batch_size`` examples per optimiser step; ``seed`` drives the shuffling (a NumPy
    ``PCG64`` generator continued across epochs) and the validation split;
    ``validation_fraction`` of the training set (stratified by label) is held out when
    :meth:`fit` gets no ``validation`` set; ``checkpoint_dir`` receives a checkpoint every
    ``checkpoint_every`` epochs and after the last one; ``callbacks`` see every batch and epoch;
    ``progress`` shows a tqdm bar per epoch; ``drop_last`` leaves out a last, smaller batch
    (for backends compiled for a fixed batch size); ``extra`` is stored in checkpoints as is.
    """

    def __init__(
        self,
        compiled: Compiled,
        optimizer: Adam | None = None,
        *,
        batch_size: int = 32,
        seed: int = 0,
        validation_fraction: float = 0.0,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        callbacks: Iterable[object] = (),
        progress: bool = True,
        drop_last: bool = False,
        eval_batch_size: int | None = None,
        extra: dict | None = None,
    ) -> None:
        if not isinstance(compiled, Compiled):
            raise ValueError(f"Trainer: compiled must be a spikeloom Compiled network, got {type(compiled).__name__}")
        if compiled.request.readout is None:
            raise ValueError(
                "Trainer: the network was compiled without readout=Readout(...); compile with rule= and readout="
            )
        inputs = compiled.built.inputs
        if len(inputs) != 1:
            raise ValueError(
                f"Trainer: the network must have exactly one SpikeInput, it has {[p.name for p in inputs]}"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"Trainer: seed must be an integer >= 0, got {seed!r}")
        if (
            isinstance(validation_fraction, bool)
            or not isinstance(validation_fraction, numbers.Real)
            or not 0 <= validation_fraction < 1
        ):
            raise ValueError(f"Trainer: validation_fraction must lie in [0, 1), got {validation_fraction!r}")
        self.compiled = compiled
        self.optimizer = Adam() if optimizer is None else optimizer
        self.batch_size = _positive_int(batch_size, "Trainer: batch_size")
        self.eval_batch_size = (
            self.batch_size if eval_batch_size is None else _positive_int(eval_batch_size, "Trainer: eval_batch_size")
        )
        self.seed = int(seed)
        self.validation_fraction = float(validation_fraction)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = _positive_int(checkpoint_every, "Trainer: checkpoint_every")
        self.callbacks = list(callbacks)
        self.progress = bool(progress)
        self.drop_last = bool(drop_last)
        self.extra = dict(extra or {})
        #: completed epochs
        self.epoch = 0
        #: one dict per completed epoch, keys :data:`HISTORY_KEYS`
        self.history: list[dict] = []
        self.stop_training = False
        self.rng = np.random.default_rng(self.seed)
        self._data: dict = {}  # shape of the training set, stored in checkpoints
        self._resumed_data: dict = {}  # the same, from a loaded checkpoint: the next fit must match it

    # -- properties of the compiled network ------------------------------------------------------
    @property
    def network(self):
        return self.compiled.network

    @property
    def readout(self):
        return self.compiled.request.readout

    @property
    def rule(self):
        return self.compiled.request.rule

    @property
    def n_inputs(self) -> int:
        return self.compiled.built.inputs[0].n

    @property
    def n_classes(self) -> int:
        return self.compiled.built.populations[self.readout.population].n

    def _settings(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "validation_fraction": self.validation_fraction,
            "drop_last": self.drop_last,
        }

    # -- validation ---------------------------------------------------------------------------------
    def check_dataset(self, dataset, role: str = "data set") -> None:
        """``ValueError`` naming ``role`` if ``dataset`` cannot feed this network (checked before any work)."""
        if not isinstance(dataset, Dataset):
            raise ValueError(
                f"{role}: expected a data set with len(), n_inputs, n_classes, n_steps and batch(indices), "
                f"got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError(f"{role} is empty; it needs at least one example")
        if dataset.n_inputs != self.n_inputs:
            raise ValueError(
                f"{role} has {dataset.n_inputs} input channels but the network's SpikeInput "
                f"{self.compiled.built.inputs[0].name!r} has {self.n_inputs} neurons"
            )
        labels = labels_of(dataset)
        readout = self.readout.population
        if labels is not None:
            if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
                raise ValueError(
                    f"{role} has labels in [{labels.min()}, {labels.max()}] but the readout {readout!r} has "
                    f"{self.n_classes} neurons (labels must lie in [0, {self.n_classes - 1}])"
                )
        elif dataset.n_classes > self.n_classes:
            raise ValueError(
                f"{role} has {dataset.n_classes} classes but the readout {readout!r} has {self.n_classes} neurons"
            )
        try:
            self.readout.steps(dataset.n_steps)
        except ValueError as exc:
            raise ValueError(f"{role}: {exc}") from None
        if isinstance(_underlying(dataset), ArrayDataset):
            return  # validated on construction: finite, non-negative, right shape
        x, _ = dataset.batch(np.arange(min(len(dataset), self.batch_size)))
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[0] != dataset.n_steps or x.shape[2] != dataset.n_inputs:
            raise ValueError(
                f"{role}: batch() returned shape {x.shape}, "
                f"expected [T, B, N] = [{dataset.n_steps}, B, {dataset.n_inputs}]"
            )
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ValueError(f"{role} contains NaN or inf in its inputs")

    def _data_signature(self, train) -> dict:
        return {
            "n_train": len(train),
            "n_inputs": train.n_inputs,
            "n_steps": train.n_steps,
            "n_classes": train.n_classes,
        }

    # -- training -----------------------------------------------------------------------------------
    def fit(self, train: Dataset, epochs: int, validation: Dataset | None = None) -> list[dict]:
        """Train until ``epochs`` epochs are complete in total (a resumed trainer continues from
        :attr:`epoch`) and return the history.

        Raises :class:`NonFiniteLossError` naming the epoch and batch when the loss becomes NaN or
        infinite; the parameters and optimiser are then put back to the end of the last good
        epoch, and the last checkpoint on disk is left as it was.
        """
        epochs = _positive_int(epochs, "Trainer.fit: epochs")
        if epochs < self.epoch:
            raise ValueError(f"Trainer.fit: epochs={epochs} but {self.epoch} epochs are already complete")
        if self.compiled.request.rule is None:
            raise ValueError(
                "Trainer.fit: the network was compiled without a learning rule; compile with rule=BPTT() or EProp()"
            )
        self.check_dataset(train, "training set")
        signature = self._data_signature(train)
        if self._resumed_data and self._resumed_data != signature:
            raise ValueError(
                f"Trainer.fit: the training set {signature} differs from the one "
                f"the checkpoint was trained on {self._resumed_data}"
            )
        if validation is None and self.validation_fraction > 0:
            train_part, validation = split(train, self.validation_fraction, seed=self.seed)
        else:
            train_part = train
        if validation is not None:
            self.check_dataset(validation, "validation set")
        self._data, self._resumed_data = signature, {}
        self.stop_training = False
        self._call("on_train_begin", self)
        for epoch in range(self.epoch + 1, epochs + 1):
            metrics = self._run_epoch(epoch, epochs, train_part, validation)
            self.history.append(metrics)
            self.epoch = epoch
            if self.checkpoint_dir is not None and (epoch % self.checkpoint_every == 0 or epoch == epochs):
                self.save_checkpoint()
            self._call("on_epoch_end", epoch, metrics)
            if self.stop_training:
                if self.checkpoint_dir is not None and epoch % self.checkpoint_every != 0:
                    self.save_checkpoint()
                break
        self._call("on_train_end", self.history)
        return self.history

    def _snapshot(self):
        scalars, arrays = self.optimizer.state_dict(self.compiled._to_host)
        return (
            self.compiled.get_params(),
            (scalars, {k: v.copy() for k, v in arrays.items()}),
            self.rng.bit_generator.state,
        )

    def _restore_snapshot(self, snapshot) -> None:
        params, opt_state, rng_state = snapshot
        self.compiled.set_params(params)
        self.optimizer.load_state_dict(*opt_state, from_host=self._from_host())
        self.rng.bit_generator.state = rng_state

    def _run_epoch(self, epoch: int, epochs: int, train, validation) -> dict:
        start = time.perf_counter()
        snapshot = self._snapshot()
        batches = batch_indices(len(train), self.batch_size, rng=self.rng, drop_last=self.drop_last)
        bar = self._progress_bar(len(batches), f"epoch {epoch}/{epochs}")
        loss_sum, correct, seen = 0.0, 0, 0
        try:
            for b, idx in enumerate(batches, start=1):
                x, labels = train.batch(idx)
                res = self.compiled.train_step(x, labels, self.optimizer)
                loss = float(res.loss)
                if not math.isfinite(loss):
                    self._restore_snapshot(snapshot)
                    kept = (
                        f"; the last good checkpoint in {self.checkpoint_dir} is kept"
                        if self.checkpoint_dir is not None and self.epoch > 0
                        else ""
                    )
                    raise NonFiniteLossError(
                        f"the loss became {loss} at epoch {epoch}, batch {b} of {len(batches)}; parameters and "
                        f"optimiser state were restored to the end of epoch {epoch - 1}{kept}. "
                        "Try a smaller learning rate."
                    )
                n = len(idx)
                hits = int(np.sum(np.asarray(res.predictions) == labels))
                loss_sum += loss * n
                correct += hits
                seen += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
                self._call("on_batch_end", epoch, b, {"loss": loss, "accuracy": hits / n, "size": n})
            metrics = {
                "epoch": epoch,
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "val_loss": None,
                "val_accuracy": None,
            }
            if validation is not None:
                ev = self.evaluate(validation)
                metrics["val_loss"], metrics["val_accuracy"] = ev["loss"], ev["accuracy"]
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{metrics['train_loss']:.4f}",
                        acc=f"{metrics['train_accuracy']:.3f}",
                        val_loss=f"{ev['loss']:.4f}",
                        val_acc=f"{ev['accuracy']:.3f}",
                    )
        finally:
            if bar is not None:
                bar.close()
        metrics["time_s"] = time.perf_counter() - start
        return metrics

    def _progress_bar(self, total: int, desc: str):
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bars are optional
            return None
        return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if method is not None:
                method(*args)

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, dataset: Dataset, batch_size: int | None = None) -> dict:
        """Mean loss and accuracy over ``dataset`` (forward only): ``{"loss", "accuracy", "n"}``."""
        self.check_dataset(dataset, "evaluation set")
        loss, acc, n, _ = self._evaluate(dataset, batch_size)
        return {"loss": loss, "accuracy": acc, "n": n}

    def predict(self, dataset: Dataset, batch_size: int | None = None) -> np.ndarray:
        """Predicted classes ``[S]`` for every example of ``dataset``, in order."""
        self.check_dataset(dataset, "prediction set")
        return self._evaluate(dataset, batch_size)[3]

    def _evaluate(self, dataset, batch_size):
        bs = self.eval_batch_size if batch_size is None else _positive_int(batch_size, "batch_size")
        loss_sum, correct, preds = 0.0, 0, []
        for idx in batch_indices(len(dataset), bs):
            x, labels = dataset.batch(idx)
            res = self.compiled.evaluate(x, labels)
            p = np.asarray(res.predictions)
            loss_sum += float(res.loss) * len(idx)
            correct += int(np.sum(p == labels))
            preds.append(p)
        n = len(dataset)
        return loss_sum / n, correct / n, n, np.concatenate(preds)

    # -- checkpoints --------------------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike | None = None) -> Path:
        """Write the current state (parameters, optimiser, epoch, history, RNG) to ``directory``
        (default :attr:`checkpoint_dir`)."""
        target = self.checkpoint_dir if directory is None else Path(directory)
        if target is None:
            raise ValueError("Trainer.save_checkpoint: no directory given and the trainer has no checkpoint_dir")
        return save_checkpoint(
            target,
            network=self.network,
            params=self.compiled.get_params(),
            optimizer=self.optimizer.state_dict(self.compiled._to_host),
            epoch=self.epoch,
            history=self.history,
            rule=self.rule,
            readout=self.readout,
            rng=self.rng.bit_generator.state,
            trainer=self._settings(),
            data=self._data,
            extra=self.extra,
        )

    def _from_host(self):
        """A function moving host arrays to the arrays the compiled network's optimiser works on."""
        try:
            native = self.compiled._native_params()
        except NotImplementedError:
            return lambda a: a
        if not native:
            return lambda a: a
        ref = next(iter(native.values()))
        if isinstance(ref, np.ndarray):
            return lambda a: np.asarray(a, dtype=ref.dtype)
        from array_api_compat import array_namespace, device

        xp, dev = array_namespace(ref), device(ref)
        return lambda a: xp.asarray(np.ascontiguousarray(a), dtype=ref.dtype, device=dev)

    def load_checkpoint(self, checkpoint: str | os.PathLike | Checkpoint) -> None:
        """Restore parameters, optimiser state, epoch, history and shuffling RNG from a checkpoint
        written for the same network, rule, readout and trainer settings."""
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        where = f"checkpoint {ckpt.directory}"
        check_same_network(where, ckpt.network, self.network)
        for what, ours, theirs in (("rule", self.rule, ckpt.rule), ("readout", self.readout, ckpt.readout)):
            a = None if ours is None else ours.to_dict()
            b = None if theirs is None else theirs.to_dict()
            if a != b:
                raise ValueError(f"{where}: it was trained with {what} {b}, this trainer has {a}")
        settings = self._settings()
        for key, value in ckpt.trainer.items():
            if key in settings and settings[key] != value:
                raise ValueError(
                    f"{where}: it was trained with {key}={value!r}, this trainer has {key}={settings[key]!r}; "
                    "resume with the same settings (Trainer.from_checkpoint uses the stored ones)"
                )
        self.compiled.set_params(ckpt.params)
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(*ckpt.optimizer, from_host=self._from_host())
        if ckpt.rng is not None:
            try:
                self.rng.bit_generator.state = ckpt.rng
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"{where}: state.json 'rng' is not a valid PCG64 state ({exc})") from None
        self.epoch = ckpt.epoch
        self.history = [dict(h) for h in ckpt.history]
        self._data = dict(ckpt.data)
        self._resumed_data = dict(ckpt.data)
        self.extra = {**ckpt.extra, **self.extra}

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | os.PathLike,
        *,
        backend: Backend | str | None = None,
        dtype: str | None = None,
        device: str = "cpu",
        optimizer: Adam | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        **kwargs,
    ) -> Trainer:
        """Rebuild network, compiled form and trainer from a checkpoint and restore its state.

        ``backend`` (an instance or a name; default: the available backend of highest priority
        that can compile the stored network, rule and readout for ``dtype`` and ``device``), ``dtype``
        (default: the stored parameters' dtype), ``checkpoint_dir`` (default: ``directory``) and
        the other :class:`Trainer` options that do not change the trajectory (``callbacks``,
        ``progress``, ``checkpoint_every``, ``eval_batch_size``) may be given; batch size, seed,
        validation fraction and ``drop_last`` come from the checkpoint.
        """
        from .host import compile_on_best, get_backend

        ckpt = load_checkpoint(directory)
        if ckpt.rule is None or ckpt.readout is None:
            raise ValueError(f"checkpoint {directory}: it stores no learning rule or readout; it cannot be resumed")
        if dtype is None:
            dtypes = {a.dtype.name for a in ckpt.params.values()}
            dtype = dtypes.pop() if len(dtypes) == 1 else "float32"
        if backend is None:
            _, compiled = compile_on_best(ckpt.network, ckpt.rule, ckpt.readout, dtype=dtype, device=device)
        else:
            be = backend if isinstance(backend, Backend) else get_backend(backend)
            compiled = be.compile(ckpt.network, rule=ckpt.rule, readout=ckpt.readout, dtype=dtype, device=device)
        settings = {
            k: v for k, v in ckpt.trainer.items() if k in ("batch_size", "seed", "validation_fraction", "drop_last")
        }
        clash = sorted(set(settings) & set(kwargs))
        if clash:
            raise ValueError(
                f"Trainer.from_checkpoint: {clash} come from the checkpoint and cannot be changed on resume"
            )
        trainer = cls(
            compiled,
            optimizer,
            checkpoint_dir=directory if checkpoint_dir is None else checkpoint_dir,
            **settings,
            **kwargs,
        )
        trainer.load_checkpoint(ckpt)
        return trainer
