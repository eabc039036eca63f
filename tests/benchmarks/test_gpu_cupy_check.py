"""The GPU check script (``benchmarks/gpu_cupy_check.sh``): every part it lists by default has a
branch, and ``PARTS`` picks parts by key, in its order, naming a key it does not know."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_cupy_check.sh"


def _all_parts() -> list[str]:
    m = re.search(r'^ALL_PARTS="([^"]+)"$', SCRIPT.read_text(), re.M)
    assert m, "ALL_PARTS not found"
    return m.group(1).split(",")


def test_every_default_part_has_a_branch():
    branches = re.findall(r"^    (\w+)\) part ", SCRIPT.read_text(), re.M)
    assert branches == _all_parts()
    assert _all_parts()[:3] == ["gpu_tests", "eprop_sizes", "bptt_sizes"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_parts_picks_parts_in_its_order_and_names_unknown_keys(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "PARTS": "nonsense,speed", "TAIL_LINES": "0"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert len(summary) == 2, proc.stdout
    assert summary[0] == f"FAIL  part 'nonsense': no such part (PARTS takes: {','.join(_all_parts())})"
    # without a GPU the speed part fails; with one it may pass: either way it ran, second
    assert re.match(r"(PASS|FAIL)  speed: cupy vs torch \(train_step, CUDA\)", summary[1]), summary
    assert (tmp_path / "speed.log").is_file()
