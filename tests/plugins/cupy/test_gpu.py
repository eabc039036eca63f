"""The CuPy backend on a CUDA device: kernels compiled by NVRTC, and the same agreement with the
reference as the emulated kernels show on the CPU.

Every test here carries the ``gpu`` marker (skipped at collection without a CUDA device) and
needs CuPy (skipped without it).
"""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl
from spikeloom_cupy.backend import CupyBackend

from ..torch.corpus import CASES, CHUNKED_CASES
from ..torch.helpers import (
    assert_agrees_on_device,
    assert_close,
    assert_float32_close_on_device,
    assert_steps_like,
    assert_trains_like,
)
from .test_emulated import _delayed_recurrent_network, _events

pytestmark = pytest.mark.gpu

NUMPY = sl.get_backend("numpy")
# the backend itself, so that these tests also run where the package is importable but not installed
CUPY = CupyBackend()
#: float64 on the device: the GPU's exp may differ from NumPy's by an ulp; sums run in other orders
RTOL64 = 1e-10


@pytest.fixture(scope="module")
def cupy():
    cp = pytest.importorskip("cupy")
    avail = CUPY.availability()
    if not avail.available:
        pytest.skip(f"cupy backend unavailable: {avail.reason}")
    return cp


def test_nvrtc_compiles_every_kernel(cupy):
    """Each file with every instantiation at once, as the ``nvcc --ptx`` test does (the backend
    compiles one :func:`~spikeloom_cupy.kernel_specs.compile_unit` at a time, 76 per dtype)."""
    from spikeloom_cupy.kernel_specs import COMPILE_OPTIONS, DTYPES, KERNEL_FILES, KERNELS, kernel_source

    for file in KERNEL_FILES:
        names = [k.instance(d) for k in KERNELS.values() if k.file == file for d in DTYPES]
        module = cupy.RawModule(code=kernel_source(file), options=COMPILE_OPTIONS, name_expressions=names)
        for name in names:
            assert module.get_function(name) is not None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("trans_w", [False, True])
def test_cuda_blas_gemm_matches_cupy_matmul(cupy, dtype, trans_w):
    """The hand-prepared ``sgemm``/``dgemm`` call against ``cupy.matmul``, into rows of a larger
    array, accumulating and not, on a non-default stream."""
    from spikeloom_cupy.gemm import cupy_gemm

    gemm = cupy_gemm(dtype)
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((3, 64, 96)).astype(dtype))
    w = cupy.asarray(rng.standard_normal((80, 96) if trans_w else (96, 80)).astype(dtype))
    wt = w.T if trans_w else w
    out = cupy.zeros((3, 64, 80), dtype=dtype)
    with cupy.cuda.Stream():
        gemm(a[1], w, out[2], trans_w=trans_w, accumulate=False)
        gemm(a[0], w, out[2], trans_w=trans_w)
        want = cupy.matmul(a[1], wt) + cupy.matmul(a[0], wt)
        tol = 1e-12 if dtype == "float64" else 1e-4
        assert float(cupy.abs(out[2] - want).max()) <= tol * float(cupy.abs(want).max())
    assert not out[:2].any()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cuda_float64_equals_reference(cupy, case):
    compiled = CUPY.compile(case.network(), device="cuda")
    assert all(isinstance(a, cupy.ndarray) for a in compiled._native_params().values())
    assert_agrees_on_device(CUPY, case, "cuda")


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_cuda_float32_close_to_reference(cupy, case):
    assert_float32_close_on_device(CUPY, case, "cuda")


def test_cuda_matches_the_emulated_kernels(cupy, emulated):
    """The device and the CPU emulation run the same kernels: their float64 results agree to round-off."""
    case = CASES[2]
    net = case.network()
    x, labels = case.inputs()
    emu = emulated.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64", device="cpu")
    gpu = CUPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64", device="cuda")
    e, g = emu.loss_and_grads(x, labels), gpu.loss_and_grads(x, labels)
    for name, value in e.grads.items():
        assert_close(g.grads[name], value, 1e-12, name)


def test_cuda_eprop_chunks_and_compact_inputs_match_the_emulation(cupy, emulated, monkeypatch):
    """e-prop's batch chunks (one example each), inputs copied 3 steps at a time, synapses 4 steps
    per launch and bool/uint8 spikes cast on the device: the device agrees with the emulated
    kernels to round-off."""
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "BATCH_CHUNK_MIN", 1)
    monkeypatch.setattr(ep, "BATCH_CHUNKS_MAX", 1024)
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    monkeypatch.setattr(ep, "INPUT_CHUNK", 3)
    case = next(c for c in CASES if c.eprop_ok and c.recurrent)
    net = case.network()
    x, labels = case.inputs()
    emu = emulated.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64", device="cpu")
    gpu = CUPY.compile(net, rule=case.eprop(), readout=case.readout("eprop"), dtype="float64", device="cuda")
    e = emu.loss_and_grads(x, labels)
    for form in (x, x.astype(np.uint8) if isinstance(x, np.ndarray) else {k: v.astype(np.uint8) for k, v in x.items()}):
        g = gpu.loss_and_grads(form, labels)
        assert g.loss == pytest.approx(e.loss, rel=1e-12)
        for name, value in e.grads.items():
            assert_close(g.grads[name], value, 1e-12, name)


def _assert_switch_keeps_grads(gpu, x, labels, monkeypatch, switch: str, values) -> None:
    """The gradients of ``gpu`` with ``spikeloom_cupy.eprop.<switch>`` set to each of ``values`` in
    turn (each call from event-driven recurrent delivery) all equal the first's, bit for bit."""
    import spikeloom_cupy.eprop as ep

    grads = []
    for value in values:
        monkeypatch.setattr(ep, switch, value)
        grads.append(_events(gpu, "loss_and_grads", x, labels).grads)
    for value, got in zip(values[1:], grads[1:], strict=True):
        for name, expected in grads[0].items():
            np.testing.assert_array_equal(got[name], expected, err_msg=f"{switch} = {value}: {name}")


@pytest.mark.parametrize("switch", ["SHARED_PRE_TRACES", "SPECIALISED_SYNAPSES"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_synapse_kernel_variants_do_not_change_the_result(cupy, dtype, switch, monkeypatch):
    """The same gradients, bit for bit, with and without the shared presynaptic traces advanced
    once per presynaptic neuron (eprop_pre_chunk), and with and without the synapse kernel that
    knows its flags when compiling (here the regulariser and the readout's delta synapse and unit
    gain). 4 steps per chunk; 9 inputs and 7 recurrent neurons, so partial tiles that read into
    the padding of ``ev_hist``."""
    import spikeloom_cupy.eprop as ep

    case = next(c for c in CHUNKED_CASES if c.id == "alif-exp-delta-readout")
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    gpu = CUPY.compile(case.network(), rule=case.eprop(), readout=case.readout("eprop"), dtype=dtype, device="cuda")
    x, labels = case.inputs()
    _assert_switch_keeps_grads(gpu, x, labels, monkeypatch, switch, (False, True))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_synapse_warp_groups_do_not_change_the_result(cupy, dtype, monkeypatch):
    """The synapse kernel with 1 and 3 warps per group of tiles gives the default's gradients bit
    for bit (37 recurrent neurons, 4 steps per chunk, batch chunks of 2)."""
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    monkeypatch.setattr(ep, "BATCH_CHUNK_MIN", 2)
    rng = np.random.default_rng(4)
    x, labels = rng.random((30, 5, 6)) < 0.4, rng.integers(0, 3, 5)
    rule, ro = sl.EProp(sl.SuperSpike(2.0)), sl.Readout("o", "per_step")
    gpu = CUPY.compile(_delayed_recurrent_network(), rule=rule, readout=ro, dtype=dtype, device="cuda")
    _assert_switch_keeps_grads(gpu, x, labels, monkeypatch, "EPROP_TILE_GROUP", (ep.EPROP_TILE_GROUP, 1, 3))


def test_cuda_train_steps_and_stepping(cupy):
    case = CASES[3]
    net = case.network()
    x, labels = case.inputs()
    ref = NUMPY.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64")
    gpu = CUPY.compile(net, rule=case.bptt(), readout=case.readout(), dtype="float64", device="cuda")
    assert_trains_like(ref, gpu, x, labels, RTOL64)
    assert all(isinstance(a, cupy.ndarray) for a in gpu._native_params().values())
    assert_steps_like(ref, gpu, x, case.B, 5, RTOL64)


@pytest.mark.parametrize("backward", ["block", "gemm"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_block_loops_equal_the_step_kernels(cupy, dtype, backward, monkeypatch):
    """300 recurrent ALIF (more neurons than threads per block, so threads take two) and 70
    examples split over 16 blocks: the block loops give the step-by-step kernels' numbers bit for
    bit (the backward with a cuBLAS product per step to round-off), and the reference's in
    float64."""
    import spikeloom_cupy.bptt as bp
    import spikeloom_cupy.forward as fw
    import spikeloom_cupy.launch as launch

    if backward == "gemm":
        monkeypatch.setattr(bp, "BLOCK_BACKWARD_MAX_N", 0)
    n = 300
    net = sl.Network(
        [sl.SpikeInput("x", 40), sl.ALIF("h", n, tau_syn=5.0, beta=0.3, tau_adapt=50.0, refractory=2.0), sl.LI("o", 5)],
        [
            sl.Connection("x", "h", weight=sl.Normal(0.3, 0.3)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.1), delay=2),
            sl.Connection("h", "o", weight=sl.Normal(0.0, 0.2)),
        ],
        seed=3,
    )
    rng = np.random.default_rng(2)
    x, labels = rng.random((60, 70, 40)) < 0.1, rng.integers(0, 5, 70)
    rule, ro = sl.BPTT(), sl.Readout("o", "per_step")
    monkeypatch.setattr(launch, "MAX_BLOCKS", 16)
    monkeypatch.setattr(launch, "BLOCK_LOOP_THREADS", 256)
    gpu = CUPY.compile(net, rule=rule, readout=ro, dtype=dtype, device="cuda")
    block = _events(gpu, "loss_and_grads", x, labels)
    assert launch.block_config(70, n, 8)[1] < n
    monkeypatch.setattr(fw, "BLOCK_LOOP", False)
    step = _events(gpu, "loss_and_grads", x, labels)
    assert block.loss == step.loss
    if backward == "block":  # the gemm backward sums in cuBLAS's order
        for name, value in step.grads.items():
            np.testing.assert_array_equal(block.grads[name], value, err_msg=name)
    else:
        for name, value in step.grads.items():
            assert_close(block.grads[name], value, 1e-10 if dtype == "float64" else 1e-4, name)
    if dtype == "float64":
        ref = NUMPY.compile(net, rule=rule, readout=ro, dtype="float64").loss_and_grads(x, labels)
        for name, value in ref.grads.items():
            assert_close(block.grads[name], value, RTOL64, name)


def test_conformance_kit_on_cuda(cupy):
    """The whole kit on the device (benchmarks/gpu_cupy_check.sh runs it through pytest instead)."""
    from spikeloom_conformance import check_backend

    report = check_backend(CUPY, device="cuda")
    assert report.ok, "\n".join(f"{r.id}: {r.message}" for r in report.failed)
    assert not report.skipped


def test_speed_suite_runs_against_torch_on_cuda(cupy):
    """The kit's speed suite on both GPU backends (numbers are reported, never asserted)."""
    pytest.importorskip("torch")
    from spikeloom_conformance.bench import format_table, run_bench
    from spikeloom_torch.backend import TorchBackend

    results = []
    for backend in (CUPY, TorchBackend()):
        results += run_bench(backend, size="small", device="cuda", repeats=1, reference=False)
    print(format_table(results))
    assert all(not r.skipped and r.seconds > 0 for r in results), [r.skipped for r in results]
