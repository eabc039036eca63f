"""``ColumnBags.sum_rows`` is ``x^T G`` for a sparse ``x`` given by its entries, whatever the
block size: blocks that end mid-way, empty blocks, empty columns and counts other than 1; and so
is the compiled kernel (Numba), with one part or several."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeloom_torch import chunk_compiled, column_bags  # noqa: E402
from spikeloom_torch.column_bags import ColumnBags  # noqa: E402


@pytest.mark.parametrize("block_rows", [1, 7, 64, 2048])
@pytest.mark.parametrize("counts", [False, True])
def test_sum_rows_equals_dense_product(monkeypatch, block_rows, counts):
    monkeypatch.setattr(column_bags, "COMPILED_MIN_WORK", float("inf"))
    monkeypatch.setattr(column_bags, "BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(block_rows)
    R, n, m = 300, 30, 9
    x = (rng.random((R, n)) < 0.05) * (rng.integers(1, 4, size=(R, n)) if counts else 1)
    x[40:90] = 0  # empty blocks
    x[:, 3] = 0  # an empty column
    rows, cols = np.nonzero(x)
    G = rng.standard_normal((R, m))
    bags = ColumnBags(rows, cols, n, x[rows, cols] if counts else None, torch.float64)
    got = bags.sum_rows(torch.from_numpy(G)).numpy()
    assert len(bags._bags) == len({r // block_rows for r in rows})
    np.testing.assert_allclose(got, x.T.astype(np.float64) @ G, rtol=1e-12, atol=1e-12)


def _sparse_case(rng, R, n, m, counts, dtype):
    x = (rng.random((R, n)) < 0.05) * (rng.integers(1, 4, size=(R, n)) if counts else 1)
    x[:, 3] = 0  # an empty column
    rows, cols = np.nonzero(x)
    G = rng.standard_normal((R, m)).astype(dtype)
    return x, rows, cols, G


@pytest.mark.skipif(not chunk_compiled.AVAILABLE, reason="needs Numba")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sum_rows_equals_dense_product(monkeypatch, threads, counts, dtype):
    monkeypatch.setattr(column_bags, "COMPILED_MIN_WORK", 0)
    rng = np.random.default_rng(threads + 2 * counts)
    x, rows, cols, G = _sparse_case(rng, 500, 40, 17, counts, dtype)
    bags = ColumnBags(rows, cols, 40, x[rows, cols].astype(np.uint8) if counts else None, torch.from_numpy(G).dtype)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = bags.sum_rows(torch.from_numpy(G)).numpy()
    finally:
        torch.set_num_threads(old)
    assert bags._bags is None  # the torch path's bags were never made
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, x.T.astype(np.float64) @ G.astype(np.float64), rtol=tol, atol=tol)


def test_no_entries():
    bags = ColumnBags(np.zeros(0, np.int64), np.zeros(0, np.int64), 5, None, torch.float64)
    assert torch.equal(bags.sum_rows(torch.ones((8, 3), dtype=torch.float64)), torch.zeros((5, 3), dtype=torch.float64))
