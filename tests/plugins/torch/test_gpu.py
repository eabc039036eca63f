"""The torch backend on a CUDA device: the same agreement with the reference as on the CPU.

Every test here carries the ``gpu`` marker and is skipped at collection without a CUDA device.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import spikeloom as sl  # noqa: E402

from .corpus import CASES  # noqa: E402
from .helpers import (  # noqa: E402
    RTOL64,
    assert_agrees_on_device,
    assert_float32_close_on_device,
    assert_steps_like,
    assert_trains_like,
)

pytestmark = pytest.mark.gpu

NUMPY = sl.get_backend("numpy")
TORCH = sl.get_backend("torch")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cuda_float64_equals_reference(case):
    assert all(t.device.type == "cuda" for t in TORCH.compile(case.network(), device="cuda")._native_params().values())
    assert_agrees_on_device(TORCH, case, "cuda")


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_cuda_float32_close_to_reference(case):
    assert_float32_close_on_device(TORCH, case, "cuda")


def test_cuda_train_steps_and_stepping():
    case = CASES[3]
    net = case.network()
    x, labels = case.inputs()
    ref = NUMPY.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    gpu = TORCH.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64", device="cuda")
    o_gpu = assert_trains_like(ref, gpu, x, labels, RTOL64)
    assert all(t.device.type == "cuda" for t in gpu._native_params().values())
    assert all(m.device.type == "cuda" for m in o_gpu.m.values())
    assert_steps_like(ref, gpu, x, case.B, 5, RTOL64)
