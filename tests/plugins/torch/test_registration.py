"""The torch backend is a plugin found through the ``spikeloom.backends`` entry point, and it
loads and reports itself without torch (this module runs with or without torch installed)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import spikeloom as sl


def test_entry_point_is_declared():
    eps = {ep.name: ep.value for ep in entry_points(group="spikeloom.backends")}
    assert eps.get("torch") == "spikeloom_torch.plugin"


def test_list_backends_finds_it_through_the_entry_point():
    infos = {i.name: i for i in sl.list_backends(refresh=True)}
    info = infos["torch"]
    assert info.plugin == "torch"  # registered by the entry point of that name, not by the core
    assert info.priority > infos["numpy"].priority
    caps = info.capabilities
    assert caps.devices == {"cpu", "cuda"}
    assert caps.dtypes == {"float32", "float64"}
    assert caps.rules == {"bptt", "eprop"}
    assert caps.trainable_time_constants and caps.refractory and caps.heterogeneous and caps.stepping
    assert caps.surrogates == sl.capabilities.ALL_SURROGATES and caps.readouts == sl.capabilities.ALL_READOUTS


def test_plugin_module_does_not_import_torch():
    code = "import sys, spikeloom_torch.plugin; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_torch_it_is_listed_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" fails, find_spec finds nothing
    backend = sl.get_backend("torch")
    avail = backend.availability()
    assert not avail.available and avail.reason.startswith("torch is not installed")
    info = {i.name: i for i in sl.list_backends()}["torch"]
    assert not info.available and "torch is not installed" in info.reason
    assert sl.best_backend().name != "torch"  # the reference, or another backend (cupy) where installed
