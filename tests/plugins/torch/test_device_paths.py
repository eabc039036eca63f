"""The paths the torch backend takes on a GPU, run on the CPU.

With :func:`spikeloom_torch.devices.host_paths` answering False the backend keeps no spike
positions on the host, runs no compiled (Numba) kernel and evaluates element-wise passes over
whole arrays, as on CUDA. These tests run the agreement corpus that ``test_gpu.py`` runs on a GPU
that way, and :class:`.device_spy.DeviceSpy` checks that no operation would mix a host tensor with
a device tensor and that no device tensor is read into NumPy. What they cannot see: CUDA's own
numerics (float32 sums in another order) and anything that fails only in a CUDA build of torch.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402
from spikeloom_torch import block_forward, chunk_compiled, chunk_spikes, devices, dynamics, eprop_chunked, spikes  # noqa: E402

from .corpus import CASES, CHUNKED_CASES  # noqa: E402
from .device_spy import DeviceSpy  # noqa: E402
from .helpers import (  # noqa: E402
    RTOL64,
    assert_agrees_on_device,
    assert_close,
    assert_float32_close_on_device,
    assert_steps_like,
    assert_trains_like,
)

NUMPY = sl.get_backend("numpy")
TORCH = sl.get_backend("torch")


def _refuse(what):
    def refused(*args, **kwargs):
        raise AssertionError(f"{what} ran on the paths a GPU takes")

    return refused


@pytest.fixture
def gpu_paths(monkeypatch):
    """The backend's GPU paths on the CPU, watched by a :class:`DeviceSpy`; the test fails if the
    spy saw a problem or if a host-only path (spike positions, a compiled kernel) ran."""
    monkeypatch.setattr(devices, "host_paths", lambda device: False)
    for module, name in (
        (spikes, "flatnonzero"),
        (chunk_spikes, "flatnonzero"),
        (dynamics, "spike_positions"),
        (block_forward, "BlockRunner"),
        (block_forward, "scan"),
        (chunk_compiled, "chunk_backward"),
        (chunk_compiled, "chunk_pass"),
    ):
        monkeypatch.setattr(module, name, _refuse(f"{module.__name__}.{name}"))
    with DeviceSpy() as spy:
        yield spy
    assert not spy.problems, "\n".join(f"{n} x {p}" for p, n in spy.problems.items())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float64_equals_reference(case, gpu_paths):
    assert_agrees_on_device(TORCH, case, "cpu")


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_float32_close_to_reference(case, gpu_paths):
    assert_float32_close_on_device(TORCH, case, "cpu")


def test_train_steps_and_stepping(gpu_paths):
    case = CASES[3]
    net = case.network()
    x, labels = case.inputs()
    ref = NUMPY.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    dev = TORCH.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    assert_trains_like(ref, dev, x, labels, RTOL64)
    assert_steps_like(ref, dev, x, case.B, 5, RTOL64)


@pytest.mark.parametrize("case", CHUNKED_CASES[len([c for c in CASES if c.eprop_ok]) :], ids=str)
@pytest.mark.parametrize("chunk", [0, 1, 7, 64])  # 0: the per-step path
def test_eprop_chunks_equal_reference(case, chunk, gpu_paths, monkeypatch):
    monkeypatch.setattr(eprop_chunked, "CHUNK", chunk)
    net = case.network()
    x, labels = case.inputs()
    expected = NUMPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    actual = TORCH.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64")
    e, a = expected.loss_and_grads(x, labels), actual.loss_and_grads(x, labels)
    assert a.loss == pytest.approx(e.loss, rel=RTOL64)
    for name, g in e.grads.items():
        assert_close(a.grads[name], g, RTOL64, f"K={chunk} {name}")


def _benchmark_net(kind) -> sl.Network:
    """The benchmark's shape, smaller: 700 inputs -> 128 recurrent -> 20 LI."""
    pop = sl.ALIF if kind == "ALIF" else sl.LIF
    return sl.Network(
        [sl.SpikeInput("inp", 700), pop("hidden", 128, tau_syn=5.0, tau_mem=20.0), sl.LI("out", 20)],
        [
            sl.Connection("inp", "hidden", weight=sl.Normal(0.0, 0.4 / np.sqrt(700))),
            sl.Connection("hidden", "hidden", weight=sl.Normal(0.0, 0.2 / np.sqrt(127))),
            sl.Connection("hidden", "out", weight=sl.Normal(0.0, 1.0 / np.sqrt(128))),
        ],
        seed=3,
    )


@pytest.mark.parametrize("rule", ["bptt", "eprop"])
def test_benchmark_shape_equals_the_cpu_paths(rule, monkeypatch):
    """At sizes where the CPU takes its host-only paths (spike positions; for e-prop also the
    compiled chunks and forward blocks), the GPU paths give the same float64 spikes, gradients and
    Adam steps."""
    rng = np.random.default_rng(5)
    T, B = 40, 64  # B x 128 neurons = chunk_compiled.MIN_WORK
    x = rng.random((T, B, 700)) < 0.02
    labels = rng.integers(0, 20, size=B)

    def trained():
        compiled = TORCH.compile(
            _benchmark_net("ALIF" if rule == "eprop" else "LIF"),
            rule=sl.EProp() if rule == "eprop" else sl.BPTT(),
            readout=sl.Readout("out", "per_step"),
            dtype="float64",
        )
        z = compiled.simulate(x)["hidden"]["z"]
        first = compiled.loss_and_grads(x, labels)
        opt = sl.Adam(lr=1e-3)
        for _ in range(2):
            compiled.train_step(x, labels, opt)
        return z, first, compiled.get_params()

    monkeypatch.setattr(eprop_chunked, "CHUNK", 16)  # chunks of 16 steps, 16 and 8 steps in groups
    calls = []
    for module, name in ((spikes, "flatnonzero"), (chunk_compiled, "chunk_backward"), (block_forward, "BlockRunner")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=name, **kw: calls.append(_n) or _f(*a, **kw))
    cpu_z, cpu_first, cpu_params = trained()
    taken = {"flatnonzero"} | (
        {"chunk_backward", "BlockRunner"} if rule == "eprop" and chunk_compiled.AVAILABLE else set()
    )
    assert taken <= set(calls), f"the CPU run should take its host-only paths {taken}, took {set(calls)}"
    with monkeypatch.context() as m:
        m.setattr(devices, "host_paths", lambda device: False)
        calls.clear()
        with DeviceSpy() as spy:
            gpu_z, gpu_first, gpu_params = trained()
    assert not calls and not spy.problems, (calls, spy.problems)
    assert 0.005 < cpu_z.mean() < 0.1, "the hidden layer should spike sparsely, as in the benchmark"
    np.testing.assert_array_equal(gpu_z, cpu_z)
    assert gpu_first.loss == pytest.approx(cpu_first.loss, rel=RTOL64)
    for name, g in cpu_first.grads.items():
        assert_close(gpu_first.grads[name], g, RTOL64, name)
    for name, p in cpu_params.items():
        assert_close(gpu_params[name], p, RTOL64, name)


def test_the_spy_sees_mixed_devices():
    with DeviceSpy() as spy:
        device = torch.ones(3).to("cpu")
        host = torch.from_numpy(np.ones(3))
        _ = host.to("cpu") + device  # moved first: fine
        _ = torch.ones(()).cpu() * device  # a 0-d host tensor: fine on CUDA too
        _ = (host * 2).double().numpy()  # computed on the host: fine
        _ = device.cpu().numpy()
        assert not spy.problems
        _ = host + device
        _ = torch.as_tensor([1.0, 2.0, 3.0]) * device
        _ = device.numpy()
    assert sorted(p.split(" at ")[0] for p in spy.problems) == [
        "host tensor in add with device tensors",
        "host tensor in mul with device tensors",
        "numpy of a device tensor",
    ]
