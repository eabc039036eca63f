"""The CuPy backend's host code and kernels, emulated serially on the CPU, against the NumPy
reference: every state of every step, the BPTT and e-prop losses and gradients, optimiser steps
and state-forced stepping, over a corpus covering every model feature (float64: max relative
error 1e-12; float32 on the steps where no membrane lies within 1e-4 of its threshold)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spikeloom as sl
from spikeloom_cupy.kernel_specs import SYNAPSE_FIXED_FLAGS

from ..torch.corpus import CASES, CHUNKED_CASES, Case
from ..torch.helpers import (
    assert_agrees_on_device,
    assert_close,
    assert_float32_close_on_device,
    assert_trains_like,
)

NUMPY = sl.get_backend("numpy")
#: float64: max |emulated - reference| / max |reference| per array
RTOL64 = 1e-12


def _events(compiled, method: str, *args):
    """``compiled.<method>(*args)`` from event-driven recurrent delivery: each call chooses the
    next one's from its activity, so calls compared bit for bit must start alike."""
    compiled.recurrent_mode = "events"
    return getattr(compiled, method)(*args)


def _pair(backend, case, rule, dtype="float64"):
    net = case.network()
    r = case.bptt() if rule == "bptt" else case.eprop()
    ro = case.readout(rule)
    return (
        NUMPY.compile(net, rule=r, readout=ro, dtype="float64"),
        backend.compile(net, rule=r, readout=ro, dtype=dtype, device="cpu"),
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float64_states_and_bptt_grads_equal_the_reference(emulated, case):
    ref, emu = _pair(emulated, case, "bptt")
    x, labels = case.inputs()
    record = {
        p.name: ("V", "I", "z", "a") if p.kind == "ALIF" else ("V", "I") + (("z",) if p.spiking else ())
        for p in case.network().built.neuron_populations
    }
    expected, actual = ref.simulate(x, record), emu.simulate(x, record)
    for pop, vars_ in expected.items():
        for v, arr in vars_.items():
            assert actual[pop][v].dtype == np.float64
            assert_close(actual[pop][v], arr, RTOL64, f"{pop}.{v}")
    r, g = ref.loss_and_grads(x, labels), emu.loss_and_grads(x, labels)
    assert g.loss == pytest.approx(r.loss, rel=RTOL64)
    np.testing.assert_array_equal(g.predictions, r.predictions)
    assert set(g.grads) == set(r.grads)
    for name, value in r.grads.items():
        assert_close(g.grads[name], value, RTOL64, name)


@pytest.mark.parametrize("case", [c for c in CASES if c.eprop_ok], ids=str)
def test_float64_eprop_grads_equal_the_reference(emulated, case):
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    r, g = ref.loss_and_grads(x, labels), emu.loss_and_grads(x, labels)
    assert g.loss == pytest.approx(r.loss, rel=RTOL64)
    np.testing.assert_array_equal(g.predictions, r.predictions)
    assert set(g.grads) == set(r.grads)
    for name, value in r.grads.items():
        assert np.any(value != 0), f"{name}: the reference gradient is zero, the comparison would prove nothing"
        assert_close(g.grads[name], value, RTOL64, name)


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_float32_close_to_the_reference(emulated, case):
    assert_float32_close_on_device(emulated, case, "cpu")


@pytest.mark.parametrize("rule", ["bptt", "eprop"])
def test_event_and_dense_delivery_agree(emulated, rule):
    """The recurrent connections delivered by the event-driven kernels and by dense products."""
    case = CASES[2] if rule == "bptt" else next(c for c in CASES if c.eprop_ok and c.recurrent)
    net = case.network()
    x, labels = case.inputs()
    make = case.bptt if rule == "bptt" else case.eprop
    ref = NUMPY.compile(net, rule=make(), readout=case.readout(rule), dtype="float64")
    expected = ref.loss_and_grads(x, labels)
    for mode in ("events", "dense"):
        emu = emulated.compile(net, rule=make(), readout=case.readout(rule), dtype="float64", device="cpu")
        emu.recurrent_mode = mode
        got = emu.loss_and_grads(x, labels)
        for name, value in expected.grads.items():
            assert_close(got.grads[name], value, RTOL64, f"{mode}: {name}")


@pytest.mark.parametrize("rule", ["bptt", "eprop"])
def test_a_training_step_chooses_the_next_calls_recurrent_delivery(emulated, rule):
    """Like a simulation, a training step sets how the next call delivers recurrent spikes from
    its activity: cuBLAS products above EVENT_MAX_DENSITY, event-driven kernels below (BPTT from
    all steps, e-prop from the last steps the stepper's rings hold)."""
    from spikeloom_cupy.delivery import EVENT_MAX_DENSITY

    rng = np.random.default_rng(3)
    x, labels = rng.random((40, 3, 6)) < 0.5, rng.integers(0, 3, 3)
    make = sl.BPTT if rule == "bptt" else sl.EProp
    for w_in, expected in ((2.0, "dense"), (0.01, "events")):
        net = sl.Network(
            [sl.SpikeInput("x", 6), sl.ALIF("a", 9), sl.LI("o", 3)],
            [
                sl.Connection("x", "a", weight=sl.Normal(w_in, 0.01)),
                sl.Connection("a", "a", weight=sl.Normal(0.0, 0.1)),
                sl.Connection("a", "o", weight=sl.Normal(0.0, 0.5)),
            ],
            seed=1,
        )
        emu = emulated.compile(net, rule=make(), readout=sl.Readout("o"), dtype="float64", device="cpu")
        density = np.mean(emu.simulate(x, record={"a": ("z",)})["a"]["z"])
        assert (density > EVENT_MAX_DENSITY) == (expected == "dense"), density
        emu.recurrent_mode = "dense" if expected == "events" else "events"
        emu.loss_and_grads(x, labels)
        assert emu.recurrent_mode == expected


def test_dense_input_delivery_matches(emulated):
    """Inputs dense enough for the cuBLAS path (density 0.3) and sparse ones (0.03) both agree."""
    for density in (0.3, 0.03):
        case = Case("dense-inputs", recurrent=True, density=density, T=20)
        ref, emu = _pair(emulated, case, "bptt")
        x, _ = case.inputs()
        expected, actual = ref.simulate(x), emu.simulate(x)
        for pop, vars_ in expected.items():
            for v, arr in vars_.items():
                assert_close(actual[pop][v], arr, RTOL64, f"density {density}: {pop}.{v}")


def test_group_with_several_internal_connections(emulated):
    """Two populations driving each other, one with two connections inside the group: the step
    kernels' fused connection plus the ones summed beforehand, forward and backward."""
    net = sl.Network(
        [sl.SpikeInput("x", 6), sl.ALIF("a", 5, tau_syn=4.0, beta=0.2, tau_adapt=30.0), sl.LIF("b", 4), sl.LI("o", 3)],
        [
            sl.Connection("x", "a", weight=sl.Normal(0.4, 0.3)),
            sl.Connection("a", "a", weight=sl.Normal(0.0, 0.4)),
            sl.Connection("a", "b", weight=sl.Normal(0.3, 0.3), delay=2),
            sl.Connection("b", "a", weight=sl.Normal(0.0, 0.4)),
            sl.Connection("b", "o", weight=sl.Normal(0.0, 0.5)),
            sl.Connection("a", "o", weight=sl.Normal(0.0, 0.5), delay=3),
        ],
        seed=4,
    )
    rng = np.random.default_rng(0)
    x, labels = rng.random((25, 3, 6)) < 0.4, rng.integers(0, 3, 3)
    rule, ro = sl.BPTT(sl.Sigmoid(4.0), detach_reset=False), sl.Readout("o", "mean")
    ref = NUMPY.compile(net, rule=rule, readout=ro, dtype="float64")
    emu = emulated.compile(net, rule=rule, readout=ro, dtype="float64", device="cpu")
    r = ref.loss_and_grads(x, labels)
    for mode in ("events", "dense"):
        emu.recurrent_mode = mode
        g = emu.loss_and_grads(x, labels)
        assert g.loss == pytest.approx(r.loss, rel=RTOL64)
        for name, value in r.grads.items():
            assert np.any(value != 0), name
            assert_close(g.grads[name], value, RTOL64, f"{mode}: {name}")


def _delayed_recurrent_network() -> sl.Network:
    return sl.Network(
        [sl.SpikeInput("x", 6), sl.ALIF("a", 37, tau_syn=4.0, beta=0.2, tau_adapt=30.0, refractory=2.0), sl.LI("o", 3)],
        [
            sl.Connection("x", "a", weight=sl.Normal(0.5, 0.4)),
            sl.Connection("a", "a", weight=sl.Normal(0.0, 0.3), delay=3),
            sl.Connection("a", "o", weight=sl.Normal(0.0, 0.5)),
        ],
        seed=5,
    )


@pytest.mark.parametrize("backward", ["block", "gemm"])
@pytest.mark.parametrize("which", ["corpus-alif-het", "delay-3"])
def test_block_loops_equal_the_step_kernels_with_few_threads_and_blocks(emulated, which, backward, monkeypatch):
    """The block loops with 2 threads per block (each thread takes several neurons) and 2 blocks
    (each block takes several examples): the forward records equal the step-by-step kernels' bit
    for bit (the same sums in the same order), and so do the gradients with the block loop
    backward; the backward with a cuBLAS product per step (``gemm``, for large populations) sums
    in another order.  All equal the reference in float64."""
    import spikeloom_cupy.bptt as bp
    import spikeloom_cupy.forward as fw
    import spikeloom_cupy.launch as launch

    if which == "delay-3":
        net = _delayed_recurrent_network()
        rng = np.random.default_rng(1)
        x, labels = rng.random((30, 5, 6)) < 0.4, rng.integers(0, 3, 5)
        rule, ro = sl.BPTT(sl.Sigmoid(4.0), detach_reset=False), sl.Readout("o", "mean")
    else:
        case = next(c for c in CASES if c.kind == "ALIF" and c.het)
        net, (x, labels), rule, ro = case.network(), case.inputs(), case.bptt(), case.readout()
    monkeypatch.setattr(launch, "BLOCK_LOOP_THREADS", 2)
    monkeypatch.setattr(launch, "MAX_BLOCKS", 2)
    if backward == "gemm":
        monkeypatch.setattr(bp, "BLOCK_BACKWARD_MAX_N", 0)
    ref_c = NUMPY.compile(net, rule=rule, readout=ro, dtype="float64")
    ref = ref_c.loss_and_grads(x, labels)
    emu = emulated.compile(net, rule=rule, readout=ro, dtype="float64", device="cpu")
    block, block_run = _events(emu, "loss_and_grads", x, labels), _events(emu, "simulate", x)
    launches = emu.rt.kernels.launches
    assert launches.get("spiking_block_loop")
    assert bool(launches.get("spiking_block_backward")) == (backward == "block")
    monkeypatch.setattr(fw, "BLOCK_LOOP", False)
    step, step_run = _events(emu, "loss_and_grads", x, labels), _events(emu, "simulate", x)
    for pop, vars_ in step_run.items():
        for v, arr in vars_.items():
            np.testing.assert_array_equal(block_run[pop][v], arr, err_msg=f"{pop}.{v}")
    assert block.loss == step.loss
    assert block.loss == pytest.approx(ref.loss, rel=RTOL64)
    for name, value in ref.grads.items():
        if backward == "block":
            np.testing.assert_array_equal(block.grads[name], step.grads[name], err_msg=name)
        assert_close(block.grads[name], value, RTOL64, name)


@pytest.mark.parametrize("limit", [36, 37])
def test_dense_recurrent_forward_of_a_large_population_runs_step_by_step(emulated, limit, monkeypatch):
    """With dense recurrent delivery, a block-loop population of more than
    ``BLOCK_FORWARD_DENSE_MAX_N`` neurons (37 here, with a delay of 3) runs forward one cuBLAS
    product and one ``spiking_step`` per step; at the limit, and with event delivery, it stays a
    block loop.  Every way equals the reference in float64."""
    import spikeloom_cupy.forward as fw

    monkeypatch.setattr(fw, "BLOCK_FORWARD_DENSE_MAX_N", limit)
    net = _delayed_recurrent_network()
    rng = np.random.default_rng(2)
    x, labels = rng.random((30, 5, 6)) < 0.4, rng.integers(0, 3, 5)
    rule, ro = sl.BPTT(sl.Sigmoid(4.0), detach_reset=False), sl.Readout("o", "mean")
    ref = NUMPY.compile(net, rule=rule, readout=ro, dtype="float64").loss_and_grads(x, labels)
    for mode in ("events", "dense"):
        emu = emulated.compile(net, rule=rule, readout=ro, dtype="float64", device="cpu")
        emu.recurrent_mode = mode
        got = emu.loss_and_grads(x, labels)
        launches = emu.rt.kernels.launches
        steps = mode == "dense" and limit < 37
        assert bool(launches.get("spiking_block_loop")) != steps, (mode, launches)
        assert launches.get("spiking_step", 0) == (30 if steps else 0), (mode, launches)
        assert got.loss == pytest.approx(ref.loss, rel=RTOL64)
        for name, value in ref.grads.items():
            assert_close(got.grads[name], value, RTOL64, f"{mode}: {name}")


def test_train_steps_and_stepping(emulated):
    case = CASES[3]
    ref, emu = _pair(emulated, case, "bptt")
    x, labels = case.inputs()
    assert_trains_like(ref, emu, x, labels, 1e-10)
    state = ref.zero_state(case.B)
    for t in range(6):
        next_ref, rec_ref = ref.step(state, x[t])
        next_emu, rec_emu = emu.step(state, x[t])
        for pop, vars_ in rec_ref.items():
            assert set(rec_emu[pop]) == set(vars_)
            for v, arr in vars_.items():
                assert_close(rec_emu[pop][v], arr, RTOL64, f"{pop}.{v} at step {t}")
        for pop, vars_ in next_ref["populations"].items():
            for v, arr in vars_.items():
                np.testing.assert_allclose(next_emu["populations"][pop][v], arr, rtol=RTOL64, atol=1e-14)
        for src, hist in next_ref["history"].items():
            np.testing.assert_array_equal(next_emu["history"][src], hist)
        state = next_ref


def test_eprop_memory_does_not_grow_with_T(emulated, monkeypatch):
    """e-prop keeps nothing per step: the arrays its host code allocates (through the runtime's
    zeros, empty and asarray, which is where every buffer, trace and record comes from) add up to
    the same bytes at T = 50 and at T = 2000 (inputs reach the device INPUT_CHUNK steps at a time,
    and both lengths exceed that), and none of them has a time axis of the run's length."""
    from spikeloom_cupy.eprop import INPUT_CHUNK
    from spikeloom_cupy.runtime import Runtime

    net = sl.Network(
        [sl.SpikeInput("x", 2), sl.ALIF("h", 40, v_thresh=0.3), sl.LI("o", 2)],
        [
            sl.Connection("x", "h", weight=sl.Normal(0.5, 0.3)),
            sl.Connection("h", "h", weight=sl.Normal(0.0, 0.2)),
            sl.Connection("h", "o", weight=sl.Normal(0.0, 0.5)),
        ],
    )
    emu = emulated.compile(net, rule=sl.EProp(), readout=sl.Readout("o"), dtype="float64", device="cpu")
    allocated: list = []
    for method in ("zeros", "empty", "asarray"):
        original = getattr(Runtime, method)

        def record(self, *args, _original=original, **kwargs):
            arr = _original(self, *args, **kwargs)
            allocated.append(arr.shape)
            return arr

        monkeypatch.setattr(Runtime, method, record)
    rng = np.random.default_rng(1)
    totals = {}
    for T in (50, 2000):
        assert T > INPUT_CHUNK
        x, labels = rng.random((T, 4, 2)) < 0.3, rng.integers(0, 2, 4)
        allocated.clear()
        emu.loss_and_grads(x, labels)
        assert allocated and all(T not in shape for shape in allocated), allocated
        totals[T] = sum(int(np.prod(shape)) for shape in allocated)
    assert totals[50] == totals[2000]


@pytest.mark.parametrize("case", [c for c in CASES if c.eprop_ok], ids=str)
def test_eprop_batch_and_input_chunks_do_not_change_the_result(emulated, case, monkeypatch):
    """The per-synapse kernels split the batch into chunks (one partial gradient each), inputs
    reach the device a few steps at a time and the synapses advance several steps per launch:
    with one example per chunk, inputs copied 3 steps at a time (the rings wrap within a copy) and
    4 synapse steps per launch (T = 30: the last launch takes 2), e-prop still equals the
    reference in float64."""
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "BATCH_CHUNK_MIN", 1)
    monkeypatch.setattr(ep, "BATCH_CHUNKS_MAX", 1024)
    monkeypatch.setattr(ep, "INPUT_CHUNK", 3)
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    assert ep.batch_chunk(case.B) == (1, case.B) and case.B > 1
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    r, g = ref.loss_and_grads(x, labels), emu.loss_and_grads(x, labels)
    if not case.het:  # a readout sharing its time constants: the synapses run 4 steps at a time
        assert _chunk_kernels(emu) in ({f"t{ep.EPROP_PRE_TILE}"}, {f"t{ep.EPROP_PRE_TILE}_shared"})
    assert g.loss == pytest.approx(r.loss, rel=RTOL64)
    np.testing.assert_array_equal(g.predictions, r.predictions)
    for name, value in r.grads.items():
        assert_close(g.grads[name], value, RTOL64, name)


def _chunk_kernels(emu, fixed: bool = False) -> set[str]:
    """The variants of ``eprop_synapse_chunk`` the last runs launched (``"t4"``, ``"t4_shared"``;
    with ``fixed``, the flags known when compiling too: ``"t4_shared_rdelta_runit"``)."""
    prefix = "eprop_synapse_chunk_"
    names = {k.removeprefix(prefix) for k, n in emu.rt.kernels.launches.items() if k.startswith(prefix) and n}
    known = {"plain", *(name for name, _ in SYNAPSE_FIXED_FLAGS)}
    return names if fixed else {"_".join(w for w in k.split("_") if w not in known) for k in names}


#: the zero reset keeps eps_v per synapse; the other two share the presynaptic traces
TILE_CASES = {"alif-exp-delta-readout": "_shared", "alif-zero-delta-refractory": "", "lif-delta-dense": "_shared"}


@pytest.mark.parametrize("case_id", ["alif-exp-delta-readout", "alif-zero-delta-refractory"])
def test_eprop_default_chunks_over_several_chunks(emulated, case_id):
    """With the default chunk sizes (EPROP_STEPS synapse steps, INPUT_CHUNK input steps) and
    T = 2 EPROP_STEPS + 21: two whole chunks and a partial one, input copies wrapping the rings
    in between; equal to the reference in float64 (shared presynaptic traces, and traces per
    synapse with the zero reset)."""
    import dataclasses

    import spikeloom_cupy.eprop as ep

    base = next(c for c in CHUNKED_CASES if c.id == case_id)
    case = dataclasses.replace(base, T=2 * ep.EPROP_STEPS + 21, B=2)
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    r, g = ref.loss_and_grads(x, labels), emu.loss_and_grads(x, labels)
    connections = 2 if case.recurrent else 1  # into the trained population
    assert _chunk_kernels(emu) == {f"t{ep.EPROP_PRE_TILE}{TILE_CASES[case_id]}"}
    (kernel,) = _chunk_kernels(emu, fixed=True)
    assert emu.rt.kernels.launches[f"eprop_synapse_chunk_{kernel}"] == 3 * connections
    assert g.loss == pytest.approx(r.loss, rel=RTOL64)
    for name, value in r.grads.items():
        assert_close(g.grads[name], value, RTOL64, name)


@pytest.mark.parametrize("tile", [1, 2, 8])
@pytest.mark.parametrize("case_id", list(TILE_CASES))
def test_eprop_synapse_tiles_do_not_change_the_result(emulated, tile, case_id, monkeypatch):
    """``eprop_synapse_chunk`` with 1, 2 or 8 presynaptic neurons per thread (9 inputs and 7
    recurrent neurons: 2 divides neither, 8 leaves one input alone and exceeds the recurrent
    neurons): the same gradients, bit for bit, as the default tile (4), and the reference's within 1e-12 in float64. The cases: ALIF
    with the rate regulariser and a delta-synapse readout; the zero reset (traces per synapse)."""
    import spikeloom_cupy.eprop as ep

    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    default = emu.loss_and_grads(x, labels)
    monkeypatch.setattr(ep, "EPROP_PRE_TILE", tile)
    assert ep.pre_tile() == tile
    emu.rt.kernels.launches.clear()
    r, g = ref.loss_and_grads(x, labels), _events(emu, "loss_and_grads", x, labels)
    assert _chunk_kernels(emu) == {f"t{tile}{TILE_CASES[case_id]}"}
    for name, value in r.grads.items():
        np.testing.assert_array_equal(g.grads[name], default.grads[name], err_msg=name)
        assert_close(g.grads[name], value, RTOL64, name)


@pytest.mark.parametrize(
    "case_id", ["alif-exp-delta-readout", "lif-delta-dense", "alif-exp-scale-input-chain", "lif-sparse-inputs-chain"]
)
def test_eprop_shared_presynaptic_traces_do_not_change_the_result(emulated, case_id, monkeypatch):
    """Presynaptic traces that every target neuron shares, advanced once per presynaptic neuron
    (``eprop_pre_chunk``) instead of in each synapse's thread: the same gradients, bit for bit,
    and the reference's within 1e-12 in float64 (4 steps per chunk; the cases include two trained
    populations in a chain and sparse inputs)."""
    import spikeloom_cupy.eprop as ep

    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    monkeypatch.setattr(ep, "SHARED_PRE_TRACES", False)
    in_synapses = emu.loss_and_grads(x, labels)
    assert _chunk_kernels(emu) == {f"t{ep.EPROP_PRE_TILE}"} and not emu.rt.kernels.launches.get("eprop_pre_chunk")
    monkeypatch.setattr(ep, "SHARED_PRE_TRACES", True)
    emu.rt.kernels.launches.clear()
    r, g = ref.loss_and_grads(x, labels), _events(emu, "loss_and_grads", x, labels)
    assert _chunk_kernels(emu) == {f"t{ep.EPROP_PRE_TILE}_shared"} and emu.rt.kernels.launches["eprop_pre_chunk"]
    assert g.loss == in_synapses.loss
    for name, value in r.grads.items():
        np.testing.assert_array_equal(g.grads[name], in_synapses.grads[name], err_msg=name)
        assert_close(g.grads[name], value, RTOL64, name)


#: cases whose synapses run in chunks, and the instantiation of eprop_synapse_chunk each takes
SPECIALISED_CASES = {
    "alif-exp-delta-readout": "t4_shared_reg_rdelta_runit",
    "lif-delta-dense": "t4_shared_rdelta_runit",
    "lif-sparse-inputs-chain": "t4_shared_reg_runit",
    "alif-exp-scale-input-chain": "t4_shared_plain",
    "alif-zero-delta-refractory": "t4_reg_rdelta_runit",  # traces per synapse (the zero reset)
}


@pytest.mark.parametrize("case_id", list(SPECIALISED_CASES))
def test_eprop_specialised_synapse_kernels_do_not_change_the_result(emulated, case_id, monkeypatch):
    """The synapse kernel that knows the regulariser, the readout's delta synapse and unit gain
    when compiling gives the gradients of the one that reads them at run time, bit for bit, and
    the reference's within 1e-12 in float64 (four cases with shared presynaptic traces, one with
    traces per synapse)."""
    import spikeloom_cupy.eprop as ep

    case = next(c for c in CHUNKED_CASES if c.id == case_id)
    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    ref, emu = _pair(emulated, case, "eprop")
    x, labels = case.inputs()
    monkeypatch.setattr(ep, "SPECIALISED_SYNAPSES", False)
    generic = _events(emu, "loss_and_grads", x, labels)
    generic_kernels = _chunk_kernels(emu, fixed=True)
    assert generic_kernels == _chunk_kernels(emu)  # no flags known when compiling
    monkeypatch.setattr(ep, "SPECIALISED_SYNAPSES", True)
    emu.rt.kernels.launches.clear()
    r, g = ref.loss_and_grads(x, labels), _events(emu, "loss_and_grads", x, labels)
    assert _chunk_kernels(emu, fixed=True) == {SPECIALISED_CASES[case_id]}
    assert _chunk_kernels(emu) == generic_kernels
    assert g.loss == generic.loss
    for name, value in r.grads.items():
        np.testing.assert_array_equal(g.grads[name], generic.grads[name], err_msg=name)
        assert_close(g.grads[name], value, RTOL64, name)


_ASAN_RUN = """
import sys
from pathlib import Path

import numpy as np
import spikeloom as sl
import spikeloom_cupy.eprop as ep
from tests.plugins.cupy.emulation import emulator
from tests.plugins.cupy.emulation.backend import EmulatedCupyBackend
from tests.plugins.cupy.test_emulated import _delayed_recurrent_network

emulator.build_library(Path(sys.argv[1]), sanitize=True)
if sys.argv[2] == "unpadded":
    ep._padded_zeros = lambda rt, shape: rt.zeros(shape)
ep.EPROP_STEPS = 4
emu = EmulatedCupyBackend().compile(
    _delayed_recurrent_network(), rule=sl.EProp(), readout=sl.Readout("o", "per_step"), dtype="float64", device="cpu"
)
rng = np.random.default_rng(4)
x, labels = rng.random((30, 5, 6)) < 0.4, rng.integers(0, 3, 5)
for tile in (4, 8):
    ep.EPROP_PRE_TILE = tile
    emu.loss_and_grads(x, labels)
print(sorted(k for k, n in emu.rt.kernels.launches.items() if k.startswith("eprop_synapse_chunk") and n))
"""


def _libasan() -> str | None:
    from .emulation.emulator import gxx

    if gxx() is None:
        return None
    path = subprocess.run([gxx(), "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.skipif(_libasan() is None, reason="g++ has no AddressSanitizer runtime (libasan)")
def test_eprop_partial_tiles_read_only_within_their_allocations(tmp_path):
    """The synapse kernel's threads of a last, partial tile read up to 7 values past their row of
    ``ev_hist`` (37 recurrent neurons in tiles of 4 and 8, 6 inputs in tiles of 8): the kernels
    built with AddressSanitizer find every read inside an allocation, thanks to the padding; with
    ``ev_hist`` unpadded they report a heap buffer overflow."""
    root = Path(__file__).resolve().parents[3]
    script = tmp_path / "asan_run.py"
    script.write_text(_ASAN_RUN)
    env = {
        **os.environ,
        "LD_PRELOAD": _libasan(),
        "ASAN_OPTIONS": "detect_leaks=0",
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    runs = {}
    for how in ("padded", "unpadded"):
        cmd = [sys.executable, str(script), str(tmp_path), how]
        runs[how] = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=root)
    padded, unpadded = runs["padded"], runs["unpadded"]
    assert padded.returncode == 0 and "AddressSanitizer" not in padded.stderr, padded.stderr[-4000:]
    assert "eprop_synapse_chunk_t4_shared_rdelta_runit" in padded.stdout
    assert "eprop_synapse_chunk_t8_shared_rdelta_runit" in padded.stdout
    assert unpadded.returncode != 0 and "heap-buffer-overflow" in unpadded.stderr, unpadded.stderr[-4000:]


@pytest.mark.parametrize("group", [1, 3])
def test_eprop_synapse_warp_groups_do_not_change_the_result(emulated, group, monkeypatch):
    """``eprop_synapse_chunk`` with 1 or 3 warps per group of tiles instead of the default: 37
    recurrent neurons (two warps of 32, the second mostly idle), 10 tiles of the recurrent and 2
    of the 6 input neurons (3 divides neither) and 3 batch chunks of 2, 2 and 1 examples: every
    synapse is still taken by exactly one thread, so the gradients equal the default's bit for bit
    and the reference's within 1e-12 in float64."""
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "EPROP_STEPS", 4)
    monkeypatch.setattr(ep, "BATCH_CHUNK_MIN", 2)
    monkeypatch.setattr(ep, "BATCH_CHUNKS_MAX", 3)
    assert ep.batch_chunk(5) == (2, 3) and ep.EPROP_TILE_GROUP not in (1, 3)
    net = _delayed_recurrent_network()
    rng = np.random.default_rng(4)
    x, labels = rng.random((30, 5, 6)) < 0.4, rng.integers(0, 3, 5)
    rule, ro = sl.EProp(sl.SuperSpike(2.0)), sl.Readout("o", "per_step")
    ref = NUMPY.compile(net, rule=rule, readout=ro, dtype="float64").loss_and_grads(x, labels)
    emu = emulated.compile(net, rule=rule, readout=ro, dtype="float64", device="cpu")
    default = emu.loss_and_grads(x, labels)
    assert _chunk_kernels(emu) == {f"t{ep.EPROP_PRE_TILE}_shared"}
    monkeypatch.setattr(ep, "EPROP_TILE_GROUP", group)
    got = _events(emu, "loss_and_grads", x, labels)
    assert got.loss == default.loss == pytest.approx(ref.loss, rel=RTOL64)
    for name, value in ref.grads.items():
        np.testing.assert_array_equal(got.grads[name], default.grads[name], err_msg=name)
        assert_close(got.grads[name], value, RTOL64, name)
        assert np.any(value != 0), name


def test_synapse_chunk_threads_cover_whole_warps_and_groups():
    import spikeloom_cupy.eprop as ep

    # 37 neurons: 2 warps; 10 tiles of 4 in groups of 3: 4 groups
    assert ep.synapse_chunk_threads(3, 37, 37, 4, 3) == 3 * 4 * 3 * 2 * 32
    # the benchmark's sizes: 700 inputs, 1024 neurons, tile 4, groups of 8 (175 tiles: 22 groups)
    assert ep.synapse_chunk_threads(32, 700, 1024, 4, 8) == 32 * 22 * 8 * 1024


@pytest.mark.parametrize("group", [0, -1, 2.0, True])
def test_eprop_tile_group_out_of_range_is_refused(group, monkeypatch):
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "EPROP_TILE_GROUP", group)
    with pytest.raises(ValueError, match="EPROP_TILE_GROUP: must be an int >= 1, got"):
        ep.tile_group()


@pytest.mark.parametrize("tile", [0, 3, 16, 2.0])
def test_eprop_synapse_tile_out_of_range_is_refused(tile, monkeypatch):
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "EPROP_PRE_TILE", tile)
    with pytest.raises(ValueError, match="EPROP_PRE_TILE: must be one of 1, 2, 4, 8, got"):
        ep.pre_tile()


def test_batch_chunks():
    from spikeloom_cupy.eprop import batch_chunk

    assert batch_chunk(1) == (1, 1)
    assert batch_chunk(5) == (5, 1)
    assert batch_chunk(64) == (8, 8)
    assert batch_chunk(256) == (8, 32)
    assert batch_chunk(1000) == (32, 32)
    assert batch_chunk(1001) == (32, 32)
    assert batch_chunk(1025) == (33, 32)


def test_bool_and_uint8_inputs_reach_the_device_as_bytes(emulated):
    """compact_inputs: bool and uint8 spikes are copied as bytes and cast on the device; the
    results equal those of the same spikes given as floats (whole runs, BPTT and e-prop)."""
    from spikeloom_cupy.backend import CupyCompiled

    assert CupyCompiled.compact_inputs
    case = next(c for c in CASES if c.eprop_ok and c.recurrent)
    x, labels = case.inputs()
    x = x if isinstance(x, dict) else {case.network().built.inputs[0].name: x}
    assert all(v.dtype == np.bool_ for v in x.values())
    forms = {
        "bool": x,
        "uint8": {k: v.astype(np.uint8) for k, v in x.items()},
        "float64": {k: v.astype(np.float64) for k, v in x.items()},
    }
    for rule in ("bptt", "eprop"):
        _, emu = _pair(emulated, case, rule)
        results = {name: _events(emu, "loss_and_grads", v, labels) for name, v in forms.items()}
        runs = {name: _events(emu, "simulate", v) for name, v in forms.items()}
        for name in ("uint8", "float64"):
            assert results[name].loss == results["bool"].loss
            for g, value in results["bool"].grads.items():
                np.testing.assert_array_equal(results[name].grads[g], value)
            for pop, vars_ in runs["bool"].items():
                for v, arr in vars_.items():
                    np.testing.assert_array_equal(runs[name][pop][v], arr)


@pytest.mark.parametrize("case", CASES[:3], ids=str)
def test_the_device_agreement_helper_holds_on_the_emulated_kernels(emulated, case):
    """``assert_agrees_on_device`` is what the gpu-marked tests run on the device."""
    assert_agrees_on_device(emulated, case, "cpu")
