"""The torch backend's compile-time checks, parameter handling and device placement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402

TORCH = sl.get_backend("torch")
HAS_CUDA = torch.cuda.is_available()


def _net(**kw):
    return sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h", 5, tau_syn=5.0, **kw), sl.LI("out", 3)],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.5, 0.5)),
            sl.Connection("h", "h", connectivity=sl.FixedProbability(0.5)),
            sl.Connection("h", "out"),
        ],
        seed=4,
    )


def test_backend_basics():
    assert TORCH.name == "torch" and TORCH.version == sl.__version__
    assert TORCH.availability().available
    assert sl.best_backend().name == "torch"  # the highest priority among the available ones


@pytest.mark.skipif(HAS_CUDA, reason="checks the error on a machine without CUDA")
def test_cuda_without_a_device_fails_at_compile_time():
    with pytest.raises(sl.BackendUnavailable, match="CUDA is not available"):
        TORCH.compile(_net(), device="cuda")
    with pytest.raises(sl.BackendUnavailable, match="'cuda:1'"):
        TORCH.compile(_net(), device="cuda:1")
    avail = TORCH.availability(device="cuda")
    assert not avail.available and "CUDA is not available" in avail.reason


@pytest.mark.gpu
def test_cuda_device_index_out_of_range():
    n = torch.cuda.device_count()
    with pytest.raises(sl.BackendUnavailable, match=f"no CUDA device {n}"):
        TORCH.compile(_net(), device=f"cuda:{n}")
    assert TORCH.availability(device="cuda:0").available


@pytest.mark.parametrize(
    "device, error, match",
    [
        ("tpu", sl.UnsupportedFeature, "devices='tpu'"),
        ("CUDA", ValueError, "device string"),
        ("cuda:x", ValueError, "device string"),
        ("cpu:1", ValueError, "no index other than 0"),
    ],
)
def test_bad_devices(device, error, match):
    with pytest.raises(error, match=match):
        TORCH.compile(_net(), device=device)


def test_cpu_zero_is_the_cpu():
    c = TORCH.compile(_net(), device="cpu:0")
    assert all(t.device.type == "cpu" for t in c._native_params().values())


def test_unsupported_dtype():
    with pytest.raises(sl.UnsupportedFeature, match="dtypes='float16'"):
        TORCH.compile(_net(), dtype="float16")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_round_trip_and_stay_tensors(dtype):
    c = TORCH.compile(_net(train_tau_mem=True), rule=sl.BPTT(), readout=sl.Readout("out"), dtype=dtype)
    params = c.get_params()
    initial = _net(train_tau_mem=True).built.initial_params()
    assert set(params) == set(initial)
    for name, value in params.items():
        assert isinstance(value, np.ndarray) and value.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(value, initial[name].astype(dtype))
    native = c._native_params()
    assert all(isinstance(t, torch.Tensor) and t.dtype == getattr(torch, dtype) for t in native.values())
    # get_params hands out copies
    params["h_to_out.weight"][:] = 7.0
    assert not np.any(c.get_params()["h_to_out.weight"] == 7.0)
    new = {"h_to_out.weight": np.full((5, 3), 0.25), "h.alpha_mem": np.full(5, 0.9)}
    c.set_params(new)
    got = c.get_params()
    np.testing.assert_array_equal(got["h_to_out.weight"], new["h_to_out.weight"].astype(dtype))
    np.testing.assert_array_equal(got["h.alpha_mem"], new["h.alpha_mem"].astype(dtype))
    with pytest.raises(ValueError, match="non-zero weights where the connection has no synapse"):
        c.set_params({"h_to_h.weight": np.ones((5, 5))})


def test_train_step_keeps_tensors_and_adam_state_on_the_backend():
    c = TORCH.compile(_net(), rule=sl.BPTT(), readout=sl.Readout("out", "max"), dtype="float32")
    x = np.random.default_rng(0).random((20, 2, 4)) < 0.3
    opt = sl.Adam()
    before = dict(c._native_params())
    c.train_step(x, np.array([0, 1]), opt)
    after = c._native_params()
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in after)
    assert all(isinstance(m, torch.Tensor) for m in opt.m.values())
    scalars, arrays = opt.state_dict(c._to_host)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    # masked-out synapses stay zero through Adam
    mask = c.built.connections[1].mask
    assert np.all(c.get_params()["h_to_h.weight"][~mask] == 0)


def test_simulate_does_not_record_an_autograd_tape():
    c = TORCH.compile(_net(), rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float32")
    for t in c._native_params().values():
        assert not t.requires_grad
    x = np.random.default_rng(1).random((10, 2, 4)) < 0.3
    res = c.loss_and_grads(x, np.array([0, 2]))
    assert all(isinstance(g, np.ndarray) for g in res.grads.values())


def test_empty_window_and_short_runs():
    c = TORCH.compile(_net(), rule=sl.BPTT(), readout=sl.Readout("out", window=(5, None)), dtype="float64")
    x = np.ones((3, 1, 4))
    with pytest.raises(ValueError, match="selects no step"):
        c.loss_and_grads(x, np.array([0]))
    # one step: nothing reaches the readout yet; gradients are zero but well defined
    c = TORCH.compile(_net(), rule=sl.BPTT(), readout=sl.Readout("out", "last"), dtype="float64")
    res = c.loss_and_grads(np.ones((1, 1, 4)), np.array([1]))
    assert res.loss == pytest.approx(np.log(3))
    assert all(np.all(g == 0) for k, g in res.grads.items() if k != "out.bias")


def test_inputs_are_not_written_to():
    c = TORCH.compile(_net(), dtype="float32")
    x = (np.random.default_rng(2).random((10, 2, 4)) < 0.3).astype(np.float32)
    x.setflags(write=False)
    copy = x.copy()
    c.simulate(x)
    np.testing.assert_array_equal(x, copy)


def test_step_results_are_host_values():
    """Losses and predictions leave the backend as a float and a NumPy array on every device."""
    import spikeloom as sl

    net = sl.Network(
        [sl.SpikeInput("inp", 4), sl.LIF("h", 5, tau_syn=5.0), sl.LI("out", 3)],
        [sl.Connection("inp", "h", weight=0.5), sl.Connection("h", "out")],
    )
    c = sl.get_backend("torch").compile(net, rule=sl.EProp(), readout=sl.Readout("out"), dtype="float32")
    x = np.random.default_rng(0).random((10, 2, 4)) < 0.5
    for res in (c.loss_and_grads(x, [0, 1]), c.train_step(x, [0, 1], sl.Adam()), c.evaluate(x, [0, 1])):
        assert type(res.loss) is float
        assert isinstance(res.predictions, np.ndarray) and res.predictions.shape == (2,)
