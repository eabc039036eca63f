"""Launch configuration, argument checking, the delivery choice and the group plan (no GPU)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import spikeloom_cupy.launch as launch_module
from spikeloom_cupy.delivery import EVENT_MAX_DENSITY, choose_delivery
from spikeloom_cupy.kernel_specs import (
    COMPILE_OPTIONS,
    KERNELS,
    KernelSpec,
    compile_unit,
    kernel_source,
    synapse_chunk_name,
)
from spikeloom_cupy.launch import (
    BLOCK,
    BLOCK_LOOP_THREADS,
    MAX_BLOCKS,
    Kernels,
    block_config,
    convert_args,
    launch_config,
    thread_elements,
)


@pytest.mark.parametrize("n", [1, 5, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 7, 10**6])
def test_launch_config_covers_n_with_whole_blocks(n):
    grid, block = launch_config(n)
    assert block == BLOCK
    assert grid == min(-(-n // BLOCK), MAX_BLOCKS)
    assert (grid - 1) * block < n <= grid * block or grid == MAX_BLOCKS


def test_launch_config_caps_the_grid_and_skips_empty_launches():
    n = (MAX_BLOCKS + 10) * BLOCK
    assert launch_config(n) == (MAX_BLOCKS, BLOCK)
    assert launch_config(0) is None
    assert launch_config(-3) is None
    with pytest.raises(ValueError, match="block must lie in"):
        launch_config(10, block=2048)
    with pytest.raises(ValueError, match="n must be an integer"):
        launch_config(2.5)
    with pytest.raises(ValueError, match="max_blocks"):
        launch_config(10, max_blocks=0)


@pytest.mark.parametrize("n,block,max_blocks", [(1000, 32, 4), (1000, 256, 65535), (7, 4, 1), (12345, 64, 3)])
def test_grid_stride_loop_visits_every_element_once(n, block, max_blocks):
    grid, block = launch_config(n, block, max_blocks)
    seen = np.zeros(n, dtype=int)
    for thread in range(grid * block):
        for k in thread_elements(n, grid, block, thread):
            seen[k] += 1
    assert np.all(seen == 1)


class _Recorder(Kernels):
    def __init__(self, dtype):
        super().__init__(dtype)
        self.calls = []

    def _is_array(self, value):
        return isinstance(value, np.ndarray)

    def _launch(self, name, cfg, args):
        self.calls.append((name, cfg, args))


def test_block_config_one_block_per_example_whole_warps_and_a_row_of_shared_memory():
    # shared memory: the larger of a row of values and a list of ints plus two scan buffers
    assert block_config(256, 256, 4) == (256, 256, (256 + 512) * 4)
    assert block_config(3, 7, 8) == (3, 32, (7 + 64) * 4)
    assert block_config(5, 1000, 8) == (5, BLOCK_LOOP_THREADS, max(8000, (1000 + 2 * BLOCK_LOOP_THREADS) * 4))
    assert block_config(10**6, 64, 4) == (MAX_BLOCKS, 64, (64 + 128) * 4)
    assert block_config(0, 7, 8) is None and block_config(3, 0, 8) is None
    for bad in (-1, 2.0, True, None):
        with pytest.raises(ValueError, match="examples"):
            block_config(bad, 7, 8)


def test_block_sync_kernels_need_an_explicit_configuration():
    k = Kernels("float64")
    k._is_array = lambda v: isinstance(v, np.ndarray)
    with pytest.raises(ValueError, match="launch_blocks"):
        k.launch("spiking_block_loop", 10, *([0] * len(KERNELS["spiking_block_loop"].args)))
    with pytest.raises(ValueError, match="not a block-sync kernel"):
        k.launch_blocks("spiking_step", 1, 32, 0)


def test_launch_converts_scalars_to_the_declared_kinds():
    k = _Recorder("float32")
    a = np.zeros(4, np.float32)
    k.launch("propagate_scan", 4, 1, 2, 2, a, a, a, 1)
    name, cfg, args = k.calls[0]
    assert cfg == (1, BLOCK)
    assert [type(v) for v in args] == [np.int32, np.int32, np.int32, np.ndarray, np.ndarray, np.ndarray, np.int32]
    k.launch("spiking_backward", 4, *([1] * 3), a, 1, a, a, a, a, 1, *([a] * 6), 0, 0, 1, 0, 2.0, 0.5, a, a)
    scalars = k.calls[1][2][20:22]
    assert all(type(v) is np.float32 for v in scalars)
    k.launch("propagate_scan", 0, 1, 2, 2, a, a, a, 1)
    assert len(k.calls) == 2  # nothing to do: no launch


def test_launch_refuses_wrong_arrays_and_counts():
    k = _Recorder("float64")
    f32, f64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    with pytest.raises(ValueError, match="expected 7 arguments"):
        k.launch("propagate_scan", 4, 1, 2, 2, f64, f64, f64)
    with pytest.raises(ValueError, match="argument 3 must be a C-contiguous float64"):
        k.launch("propagate_scan", 4, 1, 2, 2, f32, f64, f64, 1)
    with pytest.raises(ValueError, match="argument 4 must be a C-contiguous"):
        k.launch("propagate_scan", 4, 1, 2, 2, f64, np.zeros((4, 4))[:, 0], f64, 1)
    with pytest.raises(ValueError, match="must be an array"):
        k.launch("propagate_scan", 4, 1, 2, 2, 3.0, f64, f64, 1)
    with pytest.raises(ValueError, match="int64"):
        convert_args("propagate_csr", [1, 1, f64, f64, f64, f64, f64, 0], np.dtype(np.float64), k._is_array)


def test_kernel_spec_validates_kinds():
    with pytest.raises(ValueError, match="unknown kinds"):
        KernelSpec("k", "neuron.cu", ("i", "q"))
    assert KERNELS["spiking_step"].instance("float64") == "spiking_step<double>"


def test_choose_delivery():
    assert choose_delivery(0.0) == "events"
    assert choose_delivery(EVENT_MAX_DENSITY) == "events"
    assert choose_delivery(min(1.0, EVENT_MAX_DENSITY * 2)) == "dense"
    assert choose_delivery(0.5, threshold=0.6) == "events"
    with pytest.raises(ValueError, match="density"):
        choose_delivery(1.5)


def test_launches_from_a_call_site_check_the_arguments_that_changed():
    from spikeloom_cupy.launch import Kernels

    class Recorder(Kernels):
        def __init__(self):
            super().__init__("float32")
            self.calls = []

        def _is_array(self, value):
            return isinstance(value, np.ndarray)

        def _launch(self, name, cfg, args):
            self.calls.append(list(args))

    k = Recorder()
    V = np.zeros(6, np.float32)
    args = ["li_step", 6, 0, 2, 3, V, 1, V, V, 0, 1, 1, 0, V, V, V, V, V, V]
    k.launch(*args, site="s")
    k.launch(*args[:2], 7, *args[3:], site="s")  # only the step changed
    assert [c[0] for c in k.calls] == [0, 7] and all(isinstance(c[0], np.int32) for c in k.calls)
    assert all(a is b for a, b in zip(k.calls[1][1:], k.calls[0][1:], strict=True))
    bad = np.zeros(6, np.float64)
    with pytest.raises(ValueError, match="argument 3"):
        k.launch(*args[:5], bad, *args[6:], site="s")
    with pytest.raises(ValueError, match="argument 11"):  # not contiguous
        k.launch(*args[:13], V.reshape(2, 3).T, *args[14:], site="s")
    k.release()
    assert not k._sites


class _FakeCupy:
    """Stands in for ``cupy``: records each ``RawModule`` compiled (its name expressions)."""

    ndarray = np.ndarray

    def __init__(self):
        self.compiled = []
        fake = self

        class RawModule:
            def __init__(self, code, options, name_expressions):
                assert options == COMPILE_OPTIONS
                self.names = tuple(name_expressions)
                self.code = code
                fake.compiled.append(self.names)

            def get_function(self, name):
                if name not in self.names:
                    raise KeyError(f"{name} was not compiled in this module")
                return (self.code, name)

        self.RawModule = RawModule


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(launch_module, "_MODULES", {})
    return fake


def test_compile_units_partition_the_kernels_and_set_the_synapse_instantiations_apart():
    seen = [name for unit in {compile_unit(n) for n in KERNELS} for name in unit]
    assert sorted(seen) == sorted(KERNELS)
    for name, spec in KERNELS.items():
        unit = compile_unit(name)
        assert name in unit
        assert {KERNELS[n].file for n in unit} == {spec.file}
        if spec.function:
            assert unit == (name,)
    assert compile_unit("eprop_loss_step") == (
        "eprop_synapse_step",
        "eprop_pre_chunk",
        "eprop_loss_step",
        "eprop_out_grad",
        "eprop_out_grad_chunk",
    )
    with pytest.raises(ValueError, match="kernel name 'nope'"):
        compile_unit("nope")


def test_cupy_kernels_compile_only_the_units_they_launch_once_per_dtype(fake_cupy):
    from spikeloom_cupy.launch import CupyKernels

    k = CupyKernels(np.dtype("float32"))
    synapse = synapse_chunk_name(4, True, 512 | 1024)
    code, fn = k._function(synapse)
    assert fake_cupy.compiled == [("eprop_synapse_chunk<float, 4, 1, 1536>",)]
    assert fn == "eprop_synapse_chunk<float, 4, 1, 1536>"
    assert code == kernel_source("eprop.cu")
    assert k._function("eprop_loss_step")[1] == "eprop_loss_step<float>"
    assert len(fake_cupy.compiled) == 2
    assert len(fake_cupy.compiled[1]) == 5 and "eprop_out_grad<float>" in fake_cupy.compiled[1]
    # the unit's other kernels, and a second launcher of the same dtype, reuse the module
    k._function("eprop_out_grad")
    CupyKernels(np.dtype("float32"))._function("eprop_out_grad_chunk")
    CupyKernels(np.dtype("float32"))._function(synapse)
    assert len(fake_cupy.compiled) == 2
    # another dtype, another file, another synapse instantiation: a module each
    CupyKernels(np.dtype("float64"))._function(synapse)
    k._function("spiking_step")
    k._function(synapse_chunk_name(8, False, 0))
    assert fake_cupy.compiled[2:] == [
        ("eprop_synapse_chunk<double, 4, 1, 1536>",),
        tuple(KERNELS[n].instance("float32") for n in compile_unit("spiking_step")),
        ("eprop_synapse_chunk<float, 8, 0, 0>",),
    ]
