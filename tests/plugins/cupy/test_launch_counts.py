"""How much device work one time step asks for (counted on the CPU, see
``emulation/counting.py``): the fused e-prop step (its synapses in chunks of steps, or step by
step), BPTT's block loops (nothing per step) and, without them, its one kernel per step and
direction stay that way, and no step reads a device value back on the host."""

from __future__ import annotations

import pytest

import spikeloom as sl


@pytest.fixture(scope="module")
def counting(emulated):
    from .emulation import counting

    return counting


def _per_step(counting, rule, phase, mode="events"):
    net, inputs_for = counting.benchmark_setup(B=2, n_hidden=12, n_in=20)
    pair = counting.counting_compiled(net, rule, sl.Readout("out", "per_step"))
    pair[0].recurrent_mode = mode
    return counting.per_step_counts(pair, phase, inputs_for, 40, 104)


@pytest.mark.parametrize("mode", ["events", "dense"])
def test_eprop_step(counting, mode):
    from spikeloom_cupy.eprop import EPROP_PRE_TILE, EPROP_STEPS

    c = _per_step(counting, sl.EProp(), "eprop", mode)
    # neuron step, readout step, loss; per EPROP_STEPS steps one launch each for the shared
    # presynaptic traces and the synapses of both trained connections, and for the readout's gradient
    assert c["launch"] == 3 + 5 / EPROP_STEPS
    # (the benchmark's readout: a delta synapse of gain 1, no regulariser)
    synapses = f"kernel:eprop_synapse_chunk_t{EPROP_PRE_TILE}_shared_rdelta_runit"
    assert c["kernel:eprop_pre_chunk"] == c[synapses] == 2 / EPROP_STEPS
    assert c["kernel:eprop_out_grad_chunk"] == 1 / EPROP_STEPS and "kernel:eprop_out_grad" not in c
    # per EPROP_STEPS steps: the learning signals' product and the copies of the last psi (the
    # synapse kernel reads the presynaptic spikes from the stepper's rings); with dense delivery
    # one product per recurrent connection and step
    assert c.get("array_op", 0) <= (0.25 if mode == "events" else 2.25)
    # the inputs' ring holds a chunk of input without wrapping: one copy per chunk
    assert c.get("h2d", 0) <= 1 / 32 and c.get("host_sync", 0) == 0


@pytest.mark.parametrize("mode", ["events", "dense"])
def test_eprop_step_by_step(counting, mode, monkeypatch):
    """With the synapses' steps not chunked: one synapse kernel per connection and step."""
    import spikeloom_cupy.eprop as ep

    monkeypatch.setattr(ep, "EPROP_STEPS", 0)
    c = _per_step(counting, sl.EProp(), "eprop", mode)
    assert c["launch"] == 6
    assert c.get("array_op", 0) <= (1.25 if mode == "events" else 3.25)
    assert c.get("h2d", 0) <= 2 / 32 and c.get("host_sync", 0) == 0


@pytest.mark.parametrize("mode", ["events", "dense"])
def test_bptt_steps(counting, mode, monkeypatch):
    """With the block loops off, one kernel per step and direction (and with dense delivery one
    product per forward step)."""
    import spikeloom_cupy.forward as fw

    monkeypatch.setattr(fw, "BLOCK_LOOP", False)
    fwd = _per_step(counting, sl.BPTT(), "bptt_forward", mode)
    both = _per_step(counting, sl.BPTT(), "bptt", mode)
    assert fwd["launch"] == 1 and fwd.get("array_op", 0) == (0 if mode == "events" else 1)
    assert both["launch"] == 2 and both.get("host_sync", 0) == 0


@pytest.mark.parametrize("mode", ["events", "dense"])
def test_bptt_large_recurrent_population(counting, mode, monkeypatch):
    """A recurrent population above ``BLOCK_BACKWARD_MAX_N`` (and, with dense delivery, above
    ``BLOCK_FORWARD_DENSE_MAX_N``): backward one cuBLAS product and one kernel per step; forward
    the block loop with event delivery, else one product and one kernel per step."""
    import spikeloom_cupy.bptt as bp
    import spikeloom_cupy.forward as fw

    monkeypatch.setattr(fw, "BLOCK_FORWARD_DENSE_MAX_N", 0)
    monkeypatch.setattr(bp, "BLOCK_BACKWARD_MAX_N", 0)
    fwd = _per_step(counting, sl.BPTT(), "bptt_forward", mode)
    both = _per_step(counting, sl.BPTT(), "bptt", mode)
    per_step_forward = 1 if mode == "dense" else 0
    assert fwd.get("launch", 0) == fwd.get("array_op", 0) == per_step_forward
    assert both["kernel:spiking_backward_step"] == 1 and both["fn:gemm"] == 1 + per_step_forward
    assert both["launch"] == 1 + per_step_forward and both["array_op"] == 1 + per_step_forward
    assert both.get("host_sync", 0) == 0 and both.get("h2d", 0) == 0


@pytest.mark.parametrize("mode", ["events", "dense"])
def test_bptt_block_loops_launch_nothing_per_step(counting, mode):
    """The recurrent population runs as one block loop each way: no device work grows with T."""
    for phase in ("bptt_forward", "bptt"):
        c = _per_step(counting, sl.BPTT(), phase, mode)
        assert not {k: v for k, v in c.items() if v != 0}, (phase, c)
