"""Reference BPTT against central finite differences (method in gradcheck.py)."""

from __future__ import annotations

import numpy as np
import pytest

import spikeloom as sl

from .gradcheck import finite_difference, smooth_superspike

BETA = 5.0


def _network(kind: str, reset: str, scale_input: bool, seed: int) -> sl.Network:
    pop = sl.ALIF if kind == "ALIF" else sl.LIF
    extra = {"beta": 0.3, "tau_adapt": 50.0} if kind == "ALIF" else {}
    return sl.Network(
        [
            sl.SpikeInput("inp", 5),
            pop(
                "h",
                6,
                tau_mem=sl.Gamma(20.0),
                tau_syn=5.0,
                reset=reset,
                scale_input=scale_input,
                train_tau_mem=True,
                train_tau_syn=True,
                **extra,
            ),
            sl.LIF("h2", 4, tau_mem=10.0),
            sl.LI("out", 3, tau_syn=3.0, scale_input=scale_input, train_tau_mem=True),
        ],
        [
            sl.Connection("inp", "h", weight=sl.Normal(0.5, 0.5)),
            sl.Connection("h", "h", delay=2),
            sl.Connection("h", "h2", delay=3),
            sl.Connection("h2", "out"),
            sl.Connection("h", "out"),
        ],
        seed=seed,
    )


@pytest.mark.parametrize(
    "kind, reset, scale_input, mode",
    [
        ("ALIF", "subtract", False, "per_step"),
        ("LIF", "zero", True, "max"),
        ("ALIF", "zero", False, "mean"),
        ("LIF", "subtract", True, "last"),
    ],
)
def test_bptt_matches_finite_differences(kind, reset, scale_input, mode):
    rng = np.random.default_rng(0)
    net = _network(kind, reset, scale_input, seed=1)
    compiled = sl.get_backend("numpy").compile(
        net,
        rule=sl.BPTT(surrogate=sl.SuperSpike(BETA), detach_reset=False),
        readout=sl.Readout("out", mode, c_reg=1e-4),
        dtype="float64",
    )
    compiled._spike_fn = smooth_superspike(BETA)
    x = rng.random((25, 2, 5)) < 0.3
    labels = np.array([0, 2])
    grads = compiled.loss_and_grads(x, labels).grads
    assert set(grads) == {
        "inp_to_h.weight",
        "h_to_h.weight",
        "h_to_h2.weight",
        "h2_to_out.weight",
        "h_to_out.weight",
        "out.bias",
        "h.alpha_mem",
        "h.alpha_syn",
        "out.alpha_mem",
    }
    checked = 0
    for name, g in grads.items():
        for _ in range(4):
            idx = tuple(int(rng.integers(0, s)) for s in g.shape)
            if name == "h_to_h.weight" and idx[0] == idx[1]:
                assert g[idx] == 0  # no self-synapse, no gradient
                continue
            fd = finite_difference(compiled, x, labels, name, idx)
            assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-9), name
            checked += 1
    assert checked > 25


def test_detach_reset_changes_the_gradient():
    rng = np.random.default_rng(3)
    net = _network("LIF", "subtract", False, seed=2)
    x = rng.random((30, 2, 5)) < 0.4
    labels = np.array([1, 0])
    out = {}
    for detach in (True, False):
        c = sl.get_backend("numpy").compile(
            net, rule=sl.BPTT(detach_reset=detach), readout=sl.Readout("out"), dtype="float64"
        )
        out[detach] = c.loss_and_grads(x, labels)
    assert out[True].loss == out[False].loss
    assert not np.allclose(out[True].grads["inp_to_h.weight"], out[False].grads["inp_to_h.weight"])


def test_surrogate_is_zero_while_refractory():
    """With a refractory period as long as the run, only the first spike's step can pass gradient."""
    net = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("h", 1, refractory=1000.0, tau_mem=1e6), sl.LI("out", 2)],
        [sl.Connection("inp", "h", weight=0.6), sl.Connection("h", "out", weight=np.array([[1.0, -1.0]]))],
    )
    x = np.ones((10, 1, 1))
    ref = sl.get_backend("numpy").compile(
        net, rule=sl.BPTT(surrogate=sl.Triangle(1.0)), readout=sl.Readout("out"), dtype="float64"
    )
    z = ref.simulate(x, record={"h": ("z",)})["h"]["z"][:, 0, 0]
    assert z.tolist() == [0, 0, 1] + [0] * 7  # delay 1; V: 0, 0.6, 1.2 -> spike, then refractory
    g_ref = ref.loss_and_grads(x, np.array([0])).grads["inp_to_h.weight"]
    free = sl.Network(
        [sl.SpikeInput("inp", 1), sl.LIF("h", 1, tau_mem=1e6), sl.LI("out", 2)],
        [sl.Connection("inp", "h", weight=0.6), sl.Connection("h", "out", weight=np.array([[1.0, -1.0]]))],
    )
    c_free = sl.get_backend("numpy").compile(
        free, rule=sl.BPTT(surrogate=sl.Triangle(1.0)), readout=sl.Readout("out"), dtype="float64"
    )
    assert not np.allclose(g_ref, c_free.loss_and_grads(x, np.array([0])).grads["inp_to_h.weight"])


def test_sparse_connections_get_gradient_only_on_synapses():
    rng = np.random.default_rng(5)
    net = sl.Network(
        [sl.SpikeInput("inp", 8), sl.LIF("h", 6, tau_syn=5.0, v_thresh=0.5), sl.LI("out", 2)],
        [
            sl.Connection("inp", "h", connectivity=sl.FixedProbability(0.4), weight=sl.Normal(0.4, 0.3)),
            sl.Connection("h", "h", connectivity=sl.FixedProbability(0.5)),
            sl.Connection("h", "out"),
        ],
        seed=4,
    )
    c = sl.get_backend("numpy").compile(net, rule=sl.BPTT(), readout=sl.Readout("out"), dtype="float64")
    grads = c.loss_and_grads(rng.random((20, 3, 8)) < 0.3, np.array([0, 1, 1])).grads
    for conn in net.built.connections[:2]:
        g = grads[f"{conn.name}.weight"]
        assert np.all(g[~conn.mask] == 0)
        assert np.any(g[conn.mask] != 0)


def test_float32_gradients_close_to_float64():
    rng = np.random.default_rng(7)
    net = _network("ALIF", "subtract", False, seed=3)
    x = rng.random((20, 2, 5)) < 0.3
    labels = np.array([2, 1])
    res = {
        dt: sl.get_backend("numpy")
        .compile(net, rule=sl.BPTT(), readout=sl.Readout("out"), dtype=dt)
        .loss_and_grads(x, labels)
        for dt in ("float32", "float64")
    }
    for name, g64 in res["float64"].grads.items():
        g32 = res["float32"].grads[name]
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=2e-3, atol=1e-5 * np.abs(g64).max())
