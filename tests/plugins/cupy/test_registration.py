"""The CuPy backend is a plugin found through the ``spikeloom.backends`` entry point; it loads
and reports why it cannot run where CuPy or a CUDA device is missing."""

from __future__ import annotations

import subprocess
import sys
import types
from importlib.metadata import entry_points

import pytest

import spikeloom as sl
from spikeloom_cupy.backend import cupy_problem


def test_entry_point_is_declared():
    eps = {ep.name: ep.value for ep in entry_points(group="spikeloom.backends")}
    assert eps.get("cupy") == "spikeloom_cupy.plugin"


def test_listed_with_its_declaration_and_a_priority_below_torch():
    infos = {i.name: i for i in sl.list_backends(refresh=True)}
    info = infos["cupy"]
    assert info.plugin == "cupy"
    assert infos["numpy"].priority < info.priority < infos["torch"].priority
    caps = info.capabilities
    assert caps.devices == {"cuda"}
    assert caps.dtypes == {"float32", "float64"}
    assert caps.rules == {"bptt", "eprop"}
    assert caps.trainable_time_constants and caps.refractory and caps.heterogeneous and caps.stepping
    assert caps.surrogates == sl.capabilities.ALL_SURROGATES and caps.readouts == sl.capabilities.ALL_READOUTS


def test_plugin_module_does_not_import_cupy():
    code = "import sys, spikeloom_cupy.plugin; assert 'cupy' not in sys.modules, 'cupy was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_cupy_it_is_listed_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "cupy" else object())
    avail = sl.get_backend("cupy").availability()
    assert not avail.available and avail.reason.startswith("cupy is not installed")
    info = {i.name: i for i in sl.list_backends()}["cupy"]
    assert not info.available and "cupy is not installed" in info.reason
    with pytest.raises(sl.BackendUnavailable, match="cupy is not installed"):
        sl.get_backend("cupy").compile(sl.Network([sl.SpikeInput("x", 2), sl.LI("o", 2)], []), device="cuda")


def _fake_cupy(count=None, error=None):
    def get_device_count():
        if error is not None:
            raise error
        return count

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_without_a_device_the_reason_says_so(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())

    class CUDARuntimeError(RuntimeError):
        pass

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error=CUDARuntimeError("cudaErrorNoDevice")))
    assert cupy_problem().startswith("no CUDA device (CUDARuntimeError: cudaErrorNoDevice")
    info = {i.name: i for i in sl.list_backends()}["cupy"]
    assert not info.available and info.reason.startswith("no CUDA device")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=0))
    assert cupy_problem() == "no CUDA device"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1))
    assert cupy_problem() == ""
    assert "there is no CUDA device 3" in cupy_problem("cuda:3")


def test_a_cpu_device_is_refused_by_the_declaration():
    net = sl.Network([sl.SpikeInput("x", 2), sl.LI("o", 2)], [sl.Connection("x", "o", weight=1.0)])
    with pytest.raises(sl.UnsupportedFeature, match="devices"):
        sl.get_backend("cupy").compile(net, device="cpu")
