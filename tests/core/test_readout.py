"""Readouts and losses (SPEC §4) against a straightforward loop implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spikeloom as sl
from spikeloom.readout import MODES, check_labels, rate_regularizer, readout_loss

# -- an independent reference: loops over batch and steps -------------------------------------------


def lse(v):
    m = max(v)
    return m + math.log(sum(math.exp(u - m) for u in v))


def softmax(v):
    z = lse(v)
    return [math.exp(u - z) for u in v]


def window_steps(T, mode, window):
    if mode == "last":
        return [T - 1]
    return list(range(T))[slice(*(window or (None, None)))]


def ref_logits(Y, b, mode, steps):
    """The per-example logits (max/mean/last) and, for max, the step each class was taken from."""
    C = Y.shape[2]
    if mode == "last":
        return [float(Y[steps[0], b, c]) for c in range(C)], None
    if mode == "mean":
        return [sum(float(Y[t, b, c]) for t in steps) / len(steps) for c in range(C)], None
    logits, where = [], []
    for c in range(C):
        best_t = steps[0]
        for t in steps:
            if Y[t, b, c] > Y[best_t, b, c]:  # strict: ties keep the earliest step
                best_t = t
        logits.append(float(Y[best_t, b, c]))
        where.append(best_t)
    return logits, where


def ref_loss_value(Y, labels, mode, window=None):
    T, B, C = Y.shape
    steps = window_steps(T, mode, window)
    total = 0.0
    for b in range(B):
        if mode == "per_step":
            ce = 0.0
            for t in steps:
                ce += lse([float(v) for v in Y[t, b]]) - float(Y[t, b, labels[b]])
            total += ce / len(steps)
        else:
            logits, _ = ref_logits(Y, b, mode, steps)
            total += lse(logits) - logits[labels[b]]
    return total / B


def ref_grad(Y, labels, mode, window=None):
    T, B, C = Y.shape
    steps = window_steps(T, mode, window)
    dY = np.zeros(Y.shape)
    for b in range(B):
        if mode == "per_step":
            for t in steps:
                p = softmax([float(v) for v in Y[t, b]])
                for c in range(C):
                    dY[t, b, c] = (p[c] - (c == labels[b])) / (B * len(steps))
            continue
        logits, where = ref_logits(Y, b, mode, steps)
        p = softmax(logits)
        for c in range(C):
            g = (p[c] - (c == labels[b])) / B
            if mode == "max":
                dY[where[c], b, c] = g
            elif mode == "mean":
                for t in steps:
                    dY[t, b, c] = g / len(steps)
            else:
                dY[steps[0], b, c] = g
    return dY


def ref_predictions(Y, mode, window=None):
    T, B, C = Y.shape
    steps = window_steps(T, mode, window)
    out = []
    for b in range(B):
        if mode == "per_step":
            score = [0.0] * C
            for t in steps:
                for c, pc in enumerate(softmax([float(v) for v in Y[t, b]])):
                    score[c] += pc
        else:
            score, _ = ref_logits(Y, b, mode, steps)
        best = 0
        for c in range(C):
            if score[c] > score[best]:
                best = c
        out.append(best)
    return out


def fd_grad(Y, labels, readout, eps=1e-6):
    g = np.zeros(Y.shape)
    for idx in np.ndindex(*Y.shape):
        Yp, Ym = Y.copy(), Y.copy()
        Yp[idx] += eps
        Ym[idx] -= eps
        g[idx] = (readout_loss(Yp, labels, readout)[0] - readout_loss(Ym, labels, readout)[0]) / (2 * eps)
    return g


def random_case(seed, T=6, B=4, C=3, scale=2.0):
    rng = np.random.default_rng(seed)
    Y = rng.normal(0.0, scale, size=(T, B, C))
    labels = rng.integers(0, C, size=B)
    return Y, labels


# -- Readout validation ---------------------------------------------------------------------------


def test_readout_defaults():
    r = sl.Readout("out")
    assert r.mode == "per_step" and r.window is None and r.c_reg == 0.0 and r.target_rate == 10.0
    assert MODES == ("per_step", "max", "mean", "last")


@pytest.mark.parametrize("mode", ["sum", "Max", "", "softmax", None])
def test_unknown_mode(mode):
    with pytest.raises(ValueError, match="Readout.mode"):
        sl.Readout("out", mode)


@pytest.mark.parametrize("window", [(0, 3), (None, 2), (1, None), slice(0, 4)])
def test_last_with_window_is_an_error(window):
    with pytest.raises(ValueError, match="window"):
        sl.Readout("out", "last", window)


@pytest.mark.parametrize(
    "window, expected",
    [
        ((1, 4), (1, 4)),
        ([2, 5], (2, 5)),
        ((None, 3), (None, 3)),
        ((-3, None), (-3, None)),
        ((np.int64(1), np.int32(-1)), (1, -1)),
        (slice(2, 6), (2, 6)),
        (slice(None, -2, 1), (None, -2)),
        (None, None),
    ],
)
def test_window_accepted_forms(window, expected):
    r = sl.Readout("out", "max", window)
    assert r.window == expected
    if expected is not None:
        assert all(v is None or type(v) is int for v in r.window)


@pytest.mark.parametrize(
    "window",
    [
        (1.0, 3),
        (0, 2.5),
        ("0", 3),
        (True, 3),
        (0, False),
        (1, 2, 3),
        (1,),
        5,
        "1:3",
        slice(0, 6, 2),
        {0: 1},
    ],
)
def test_window_rejected_forms(window):
    with pytest.raises(ValueError, match="window"):
        sl.Readout("out", "mean", window)


@pytest.mark.parametrize("field", ["c_reg", "target_rate"])
@pytest.mark.parametrize("bad", [-1.0, -1e-12, float("nan"), float("inf")])
def test_negative_or_nonfinite_regulariser(field, bad):
    with pytest.raises(ValueError, match=rf"Readout\.{field}"):
        sl.Readout("out", **{field: bad})


def test_regulariser_zero_is_fine_and_converted():
    r = sl.Readout("out", c_reg=0, target_rate=0)
    assert r.c_reg == 0.0 and r.target_rate == 0.0


@pytest.mark.parametrize("name", ["", "1out", "out put", None, 3])
def test_bad_population_name(name):
    with pytest.raises(ValueError, match="Readout population"):
        sl.Readout(name)


# -- steps / windows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, expected",
    [
        (None, [0, 1, 2, 3, 4, 5]),
        ((-3, None), [3, 4, 5]),
        ((1, -1), [1, 2, 3, 4]),
        ((-4, -1), [2, 3, 4]),
        ((None, 2), [0, 1]),
        ((-100, 2), [0, 1]),
        ((4, 100), [4, 5]),
        ((-1, None), [5]),
    ],
)
def test_window_steps(window, expected):
    for mode in ("per_step", "max", "mean"):
        s = sl.Readout("out", mode, window).steps(6)
        assert list(range(6))[s] == expected
    assert list(range(6))[sl.Readout("out", "last").steps(6)] == [5]


@pytest.mark.parametrize("window", [(3, 3), (5, 2), (-1, -2), (6, None), (10, None), (None, -6), (None, 0)])
@pytest.mark.parametrize("mode", ["per_step", "max", "mean"])
def test_empty_window_is_an_error(window, mode):
    r = sl.Readout("out", mode, window)
    with pytest.raises(ValueError, match="selects no step"):
        r.steps(6)
    Y, labels = random_case(0)
    with pytest.raises(ValueError, match="selects no step"):
        readout_loss(Y, labels, r)


# -- the losses against the loop reference ---------------------------------------------------------

CASES = [
    ("per_step", None),
    ("per_step", (2, None)),
    ("per_step", (-3, -1)),
    ("max", None),
    ("max", (1, 4)),
    ("max", (-2, None)),
    ("mean", None),
    ("mean", (None, -2)),
    ("mean", (-4, 5)),
    ("last", None),
]


@pytest.mark.parametrize("mode, window", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_value_gradient_predictions(mode, window, seed):
    Y, labels = random_case(seed)
    readout = sl.Readout("out", mode, window)
    loss, dY, pred = readout_loss(Y, labels, readout)
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_loss_value(Y, labels, mode, window), rel=1e-13, abs=1e-14)
    assert dY.shape == Y.shape and dY.dtype == Y.dtype
    np.testing.assert_allclose(dY, ref_grad(Y, labels, mode, window), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(pred, ref_predictions(Y, mode, window))
    assert pred.shape == (Y.shape[1],) and pred.dtype.kind in "iu"


@pytest.mark.parametrize("mode, window", CASES)
def test_gradient_matches_central_differences(mode, window):
    Y, labels = random_case(7, T=5, B=3, C=4)
    readout = sl.Readout("out", mode, window)
    _, dY, _ = readout_loss(Y, labels, readout)
    np.testing.assert_allclose(dY, fd_grad(Y, labels, readout), rtol=1e-6, atol=1e-9)


def test_steps_outside_the_window_get_no_gradient():
    Y, labels = random_case(3, T=8)
    for mode, window, inside in [("per_step", (2, 5), [2, 3, 4]), ("mean", (-2, None), [6, 7]), ("last", None, [7])]:
        _, dY, _ = readout_loss(Y, labels, sl.Readout("out", mode, window))
        outside = [t for t in range(8) if t not in inside]
        assert np.all(dY[outside] == 0)
        assert np.all(np.abs(dY[inside]).sum(axis=(1, 2)) > 0)


def test_loss_values_by_hand():
    # two classes, one example, one step: CE = log(1 + e^{y_other - y_label})
    Y = np.array([[[0.0, 1.0]], [[2.0, 0.0]]])  # [T=2, B=1, C=2]
    lbl = np.array([0])
    l_last = readout_loss(Y, lbl, sl.Readout("o", "last"))[0]
    assert l_last == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-14)
    l_mean = readout_loss(Y, lbl, sl.Readout("o", "mean"))[0]  # logits (1, 0.5)
    assert l_mean == pytest.approx(math.log(1 + math.exp(-0.5)), rel=1e-14)
    l_max = readout_loss(Y, lbl, sl.Readout("o", "max"))[0]  # logits (2, 1)
    assert l_max == pytest.approx(math.log(1 + math.exp(-1.0)), rel=1e-14)
    l_ps = readout_loss(Y, lbl, sl.Readout("o", "per_step"))[0]
    assert l_ps == pytest.approx(0.5 * (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(-2.0))), rel=1e-14)


def test_large_logits_are_stable():
    Y = np.array([[[1000.0, 0.0, -1000.0]], [[0.0, 900.0, 0.0]]])
    lbl = np.array([1])
    for mode in MODES:
        loss, dY, _ = readout_loss(Y, lbl, sl.Readout("o", mode))
        assert math.isfinite(loss) and np.all(np.isfinite(dY))
        assert loss == pytest.approx(ref_loss_value(Y, lbl, mode), rel=1e-12)


def test_float32_logits_keep_their_dtype():
    Y, labels = random_case(4)
    Y32 = Y.astype(np.float32)
    for mode in MODES:
        loss, dY, _ = readout_loss(Y32, labels, sl.Readout("o", mode))
        assert dY.dtype == np.float32
        assert loss == pytest.approx(ref_loss_value(Y32.astype(np.float64), labels, mode), rel=1e-5)


def test_max_ties_go_to_the_first_step():
    T, B, C = 5, 2, 3
    Y = np.zeros((T, B, C))
    # example 0, class 1: maximum 2.0 at steps 1 and 3
    Y[:, 0, 1] = [0.5, 2.0, -1.0, 2.0, 1.0]
    # example 0, class 0: constant over time -> all steps tie, first one wins
    Y[:, 0, 0] = 0.7
    # example 1, class 2: maximum at steps 2 and 4 (inside window 2..4 both, first is 2)
    Y[:, 1, 2] = [3.0, 0.0, 1.5, -2.0, 1.5]
    labels = np.array([1, 0])
    _, dY, _ = readout_loss(Y, labels, sl.Readout("o", "max"))
    np.testing.assert_allclose(dY, ref_grad(Y, labels, "max"), rtol=1e-13, atol=0)
    assert dY[1, 0, 1] != 0 and dY[3, 0, 1] == 0
    assert dY[0, 0, 0] != 0 and np.all(dY[1:, 0, 0] == 0)
    assert dY[0, 1, 2] != 0 and np.all(dY[1:, 1, 2] == 0)
    # with a window that excludes step 0, the tie between steps 2 and 4 goes to step 2
    _, dYw, _ = readout_loss(Y, labels, sl.Readout("o", "max", (1, None)))
    assert dYw[2, 1, 2] != 0 and dYw[4, 1, 2] == 0 and dYw[0, 1, 2] == 0
    assert dYw[1, 0, 0] != 0 and dYw[0, 0, 0] == 0
    np.testing.assert_allclose(dYw, ref_grad(Y, labels, "max", (1, None)), rtol=1e-13, atol=0)
    # each (example, class) receives its gradient at exactly one step
    assert np.all(np.count_nonzero(dY, axis=0) <= 1)


def test_per_step_prediction_sums_probabilities_not_logits():
    # class 0 wins by a large margin at one step; class 1 wins narrowly at three steps.
    # Summed logits favour class 0, summed softmax favours class 1.
    Y = np.array([[[10.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]], [[0.0, 1.0]]])
    pred = readout_loss(Y, np.array([0]), sl.Readout("o", "per_step"))[2]
    assert Y.sum(axis=0).argmax() == 0
    assert list(pred) == [1] == ref_predictions(Y, "per_step")
    # and the window matters: only the first step -> class 0
    pred_w = readout_loss(Y, np.array([0]), sl.Readout("o", "per_step", (None, 1)))[2]
    assert list(pred_w) == [0]


def test_predictions_use_the_mode_logits():
    # max sees the spike at t=0, mean and last do not
    Y = np.array([[[5.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])
    lbl = np.array([0])
    assert list(readout_loss(Y, lbl, sl.Readout("o", "max"))[2]) == [0]
    assert list(readout_loss(Y, lbl, sl.Readout("o", "mean"))[2]) == [0]  # (5/3, 2/3)
    assert list(readout_loss(Y, lbl, sl.Readout("o", "mean", (1, None)))[2]) == [1]
    assert list(readout_loss(Y, lbl, sl.Readout("o", "last"))[2]) == [1]


# -- labels -------------------------------------------------------------------------------------------


def test_check_labels_accepts_and_converts():
    out = check_labels([0, 2, 1], 3, 3)
    assert out.dtype == np.int64 and list(out) == [0, 2, 1]
    assert list(check_labels(np.array([1.0, 0.0]), 2, 2)) == [1, 0]
    assert check_labels(np.array([1.0, 0.0]), 2, 2).dtype == np.int64
    assert list(check_labels(np.array([4, 0], dtype=np.uint8), 2, 5)) == [4, 0]


@pytest.mark.parametrize(
    "labels, batch, n_classes, match",
    [
        ([0, 3], 2, 3, "labels must lie in"),
        ([-1, 0], 2, 3, "labels must lie in"),
        ([0, 1, 2], 3, 2, "labels must lie in"),
        ([0.5, 1.0], 2, 3, "integers"),
        ([1.0, float("nan")], 2, 3, "integers"),
        ([1.0, float("inf")], 2, 3, "integers"),
        ([True, False], 2, 3, "integers"),
        (["0", "1"], 2, 3, "integers"),
        ([0, 1], 3, 3, "shape"),
        ([[0], [1]], 2, 3, "shape"),
        ([[0, 1]], 2, 3, "shape"),
        (1, 1, 3, "shape"),
        ([0, 1, 2], 2, 3, "shape"),
    ],
)
def test_check_labels_errors(labels, batch, n_classes, match):
    with pytest.raises(ValueError, match=match):
        check_labels(labels, batch, n_classes)


# -- rate regulariser ---------------------------------------------------------------------------------


def ref_reg(spikes, dt, c_reg, target):
    sq = []
    for z in spikes.values():
        T, B, N = z.shape
        for j in range(N):
            count = 0.0
            for t in range(T):
                for b in range(B):
                    count += float(z[t, b, j])
            rate_hz = count / (T * B) / (dt / 1000.0)
            sq.append((rate_hz - target) ** 2)
    return c_reg * sum(sq) / len(sq)


def test_rate_regularizer_by_hand():
    # every neuron fires every step at dt=0.5 ms -> 2000 Hz
    z = {"h": np.ones((4, 2, 3))}
    val, grads = rate_regularizer(z, 0.5, 1e-6, 10.0)
    assert val == pytest.approx(1e-6 * 1990.0**2, rel=1e-14)
    # d/dz[t,b,j] = c_reg * 2 (rate - target) / N * (1000/dt) / (T B)
    np.testing.assert_allclose(grads["h"], 1e-6 * 2 * 1990.0 / 3 * 2000.0 / 8, rtol=1e-14)
    # silent neurons at dt=1: rate 0, penalty target^2
    val0, _ = rate_regularizer({"h": np.zeros((5, 3, 2))}, 1.0, 0.5, 4.0)
    assert val0 == pytest.approx(0.5 * 16.0, rel=1e-14)


@pytest.mark.parametrize("dt", [1.0, 0.5, 2.0])
def test_rate_regularizer_value_and_gradient(dt):
    rng = np.random.default_rng(11)
    spikes = {
        "a": (rng.random((7, 3, 4)) < 0.2).astype(np.float64),
        "b": (rng.random((7, 3, 2)) < 0.05).astype(np.float64),
    }
    c_reg, target = 3e-5, 20.0
    val, grads = rate_regularizer(spikes, dt, c_reg, target)
    assert val == pytest.approx(ref_reg(spikes, dt, c_reg, target), rel=1e-13)
    eps = 1e-4
    for name, z in spikes.items():
        assert grads[name].shape == z.shape and grads[name].dtype == z.dtype
        for idx in [(0, 0, 0), (6, 2, 1), (3, 1, z.shape[2] - 1)]:
            zp = {k: v.copy() for k, v in spikes.items()}
            zm = {k: v.copy() for k, v in spikes.items()}
            zp[name][idx] += eps
            zm[name][idx] -= eps
            fd = (ref_reg(zp, dt, c_reg, target) - ref_reg(zm, dt, c_reg, target)) / (2 * eps)
            assert grads[name][idx] == pytest.approx(fd, rel=1e-6)


def test_rate_regularizer_off():
    spikes = {"a": np.ones((2, 2, 2)), "b": np.zeros((2, 2, 1))}
    val, grads = rate_regularizer(spikes, 1.0, 0.0, 10.0)
    assert val == 0.0 and grads == {"a": None, "b": None}
    assert rate_regularizer({}, 1.0, 1.0, 10.0)[0] == 0.0
