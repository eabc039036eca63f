"""A small learning backend for tests of the training loop: exact gradients for a network whose
trainable connections all go from the SpikeInput straight to the LI readout (delta synapses, no
input scaling), so the training machinery can be tested independently of any real backend.

With ``V[t] = alpha V[t-1] + W^T p[t] + b`` and ``p[t] = x[t - delay]``:
``dL/dW = sum_t eps[t]^T dY[t]`` with ``eps[t] = alpha eps[t-1] + p[t]``, and
``dL/db = sum_t c[t] sum_B dY[t]`` with ``c[t] = alpha c[t-1] + 1``.
"""

from __future__ import annotations

import numpy as np

import spikeloom as sl
from spikeloom.readout import readout_loss
from spikeloom_numpy.simulate import Simulator


class LinearReadoutCompiled(sl.Compiled):
    def __init__(self, request, nan_after: int | None = None) -> None:
        super().__init__(request)
        self._params = {k: v.astype(self.dtype) for k, v in self.built.initial_params().items()}
        self.steps_taken = 0
        self.nan_after = nan_after

    def _simulate(self, inputs, record):
        return Simulator(self.built, self._params, self.dtype).run(inputs, record)

    def _get_params(self):
        return {k: v.copy() for k, v in self._params.items()}

    def _set_params(self, params):
        for k, v in params.items():
            self._params[k] = v.astype(self.dtype)

    def _native_params(self):
        return self._params

    def _loss_and_grads(self, inputs, labels):
        readout = self.request.readout
        out = self.built.populations[readout.population]
        alpha = np.asarray(out.alpha_mem, dtype=self.dtype)
        rec = self._simulate(inputs, {readout.population: ("V",)})
        Y = rec[readout.population]["V"]
        loss, dY, pred = readout_loss(Y, labels, readout)
        return self._exact(inputs, dY, alpha, loss, pred)

    def _exact(self, inputs, dY, alpha, loss, pred):
        readout = self.request.readout
        T, B, C = dY.shape
        grads = {}
        # backward filter: lam[t] = dY[t] + alpha * lam[t+1], then dL/dW = sum_t p[t]^T lam[t]
        lam = np.zeros_like(dY)
        acc = np.zeros((B, C), dY.dtype)
        for t in range(T - 1, -1, -1):
            acc = dY[t] + alpha * acc
            lam[t] = acc
        for c in self.built.incoming(readout.population):
            if not c.trainable:
                continue
            x = inputs[c.source]
            g = np.zeros((x.shape[2], C), dY.dtype)
            for t in range(c.delay, T):
                g += x[t - c.delay].T @ lam[t]
            grads[f"{c.name}.weight"] = g * c.mask
        grads[f"{readout.population}.bias"] = lam.sum(axis=(0, 1))
        self.steps_taken += 1
        if self.nan_after is not None and self.steps_taken > self.nan_after:
            loss = float("nan")
            grads = {k: np.full_like(v, np.nan) for k, v in grads.items()}
        return loss, grads, pred


class FakeLearningBackend(sl.Backend):
    name = "fake_learning"
    version = "0"
    priority = -1

    def __init__(self, nan_after: int | None = None) -> None:
        self.nan_after = nan_after

    def capabilities(self):
        return sl.Capabilities(
            dtypes={"float32", "float64"},
            rules={"bptt", "eprop"},
            surrogates={"superspike", "triangle", "sigmoid", "atan"},
            readouts={"per_step", "max", "mean", "last"},
        )

    def _compile(self, request):
        return LinearReadoutCompiled(request, self.nan_after)


def toy_network(n_classes: int = 3, seed: int = 0) -> sl.Network:
    """``in (n_classes) -> out (LI, n_classes)``: class c is input channel c firing."""
    return sl.Network(
        [sl.SpikeInput("inp", n_classes), sl.LI("out", n_classes, tau_mem=10.0)],
        [sl.Connection("inp", "out", weight=sl.Normal(0.0, 0.1))],
        seed=seed,
    )


def toy_dataset(n: int = 60, n_classes: int = 3, T: int = 12, seed: int = 0):
    """Each example: its class's channel fires with probability 0.6 per step, the others 0.1."""
    from spikeloom.data import ArrayDataset

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    p = np.full((n, T, n_classes), 0.1)
    p[np.arange(n), :, labels] = 0.6
    return ArrayDataset(rng.random((n, T, n_classes)) < p, labels, n_classes)


def toy_compiled(nan_after: int | None = None, dtype: str = "float32", seed: int = 0):
    net = toy_network(seed=seed)
    readout = sl.Readout("out", "per_step", window=(4, None))
    return FakeLearningBackend(nan_after).compile(net, rule=sl.EProp(), readout=readout, dtype=dtype)
