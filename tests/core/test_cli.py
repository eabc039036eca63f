"""The ``spikeloom`` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import spikeloom as sl
from spikeloom.cli import main
from spikeloom.host import PluginLoadWarning


def test_backends_table(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"numpy {sl.__version__}  [available]  NumPy reference (the judge)"
    block = []
    for line in lines[1:]:
        if not line.startswith("    "):
            break  # the next backend
        block.append(line)
    caps = {line.split()[0]: line.split(None, 1)[1] for line in block}
    assert caps["dtypes"] == "float32, float64"
    assert caps["models"] == "ALIF, LI, LIF"
    assert caps["devices"] == "cpu"
    assert caps["max_delay"] == "None"
    assert caps["refractory"] == "True"


def test_backends_json(capsys):
    assert main(["backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ref = {d["name"]: d for d in data}["numpy"]
    assert set(ref) == {"name", "version", "plugin", "available", "reason", "priority", "capabilities"}
    assert ref["version"] == sl.__version__ and ref["available"] is True and ref["plugin"] == "numpy"
    assert ref["capabilities"]["dtypes"] == ["float32", "float64"]
    assert ref["capabilities"] == sl.get_backend("numpy").capabilities().to_dict()


def test_backends_shows_unavailable_and_broken_plugins(capsys, fake_plugins, toy_backend, make_plugin):
    with pytest.warns(PluginLoadWarning):
        fake_plugins(
            broken=ImportError("no module named fancylib"),
            gpu=make_plugin(toy_backend("gpu", available=False, reason="gpu: no CUDA device")),
        )
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "gpu 1.2.3  [unavailable: gpu: no CUDA device]  toy backend gpu" in out
    assert "broken ?  [unavailable: plugin failed to load: ImportError: no module named fancylib]" in out
    assert main(["backends", "--json"]) == 0
    data = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert data["broken"]["capabilities"] is None and data["broken"]["available"] is False
    assert data["gpu"]["reason"] == "gpu: no CUDA device" and data["gpu"]["capabilities"]["dtypes"] == ["float32"]


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: spikeloom" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"spikeloom {sl.__version__}"


def test_unknown_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


_IMPORT_CHECK = """
import json, sys
import spikeloom
spikeloom.get_backend("numpy").compile(spikeloom.Network([spikeloom.SpikeInput("i", 1), spikeloom.LI("o", 1)]))
from spikeloom.cli import main
heavy = ("torch", "cupy", "matplotlib", "h5py", "sklearn", "safetensors", "tqdm")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_import_does_not_pull_in_heavy_libraries():
    out = subprocess.run([sys.executable, "-c", _IMPORT_CHECK], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # as if torch were not installed
from spikeloom.cli import main
main(["backends", "--json"])
"""


def test_backends_command_works_without_torch():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, check=True)
    data = {d["name"]: d for d in json.loads(out.stdout)}
    assert data["numpy"]["available"] is True
    if "torch" in data:  # the torch plugin is registered by the installed distribution
        assert data["torch"]["available"] is False
        assert "torch" in data["torch"]["reason"]


def test_python_dash_m(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "spikeloom", "backends", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "numpy" in {d["name"] for d in json.loads(out.stdout)}
