"""float32 sum and mean are accurate (issue 9, numerics): summed in f32 one element after
another, sum(ones(2^25)) stopped at 2^24 = 16777216 and its mean at 0.5. The lowering
accumulates f32 totals and row sums in f64 (metacc/backend/lower.py); the bar is NumPy's
pairwise summation, whose error bound the results must meet."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.interp import evaluate

SRC = """
fn total(x: f32[n]) -> f32 {
    return sum(x)
}
fn average(x: f32[n]) -> f32 {
    return mean(x)
}
fn rows(x: f32[m, n]) -> f32[m] {
    return sum(x, 1)
}
fn row_means(x: f32[m, n]) -> f32[m] {
    return mean(x, 1)
}
"""

U = 2.0 ** -24        # unit roundoff of float32


def pairwise_bound(x: np.ndarray) -> float:
    """The classic bound of pairwise summation, gamma_ceil(log2 n) * sum|x|, plus the final
    rounding of the result to f32 (NumPy's pairwise sum with 128-element blocks is within it)."""
    k = int(np.ceil(np.log2(x.size)))
    exact = float(np.sum(np.abs(x.astype(np.float64))))
    return k * U / (1 - k * U) * exact + U * abs(float(np.sum(x.astype(np.float64))))


@pytest.fixture(scope="module")
def mod():
    return metacc.compile(SRC)


def test_sum_and_mean_of_2_25_ones_are_exact(mod):
    x = np.ones(2 ** 25, np.float32)
    s, m = mod.total(x), mod.average(x)
    assert s.dtype == np.float32 and float(s) == 2.0 ** 25
    assert m.dtype == np.float32 and float(m) == 1.0
    # the reference interpreter (NumPy, pairwise) agrees
    assert float(evaluate(mod.total.fn.ir, [x])[0]) == 2.0 ** 25


def test_row_sums_past_2_24_are_exact(mod):
    x = np.ones((1, 2 ** 24 + 8), np.float32)
    assert mod.rows(x).tolist() == [2.0 ** 24 + 8]
    assert mod.row_means(x).tolist() == [1.0]


@pytest.mark.parametrize("draw", ["uniform", "normal"])
def test_random_sums_meet_the_pairwise_bound(mod, draw):
    rng = np.random.default_rng(7)
    x = (rng.random(2 ** 20) if draw == "uniform" else rng.normal(1.0, 3.0, 2 ** 20)).astype(np.float32)
    exact = float(np.sum(x.astype(np.float64)))
    bound = pairwise_bound(x)
    assert abs(float(mod.total(x)) - exact) <= bound
    assert abs(float(mod.average(x)) - exact / x.size) <= bound / x.size + U * abs(exact / x.size)
    if draw == "uniform":
        # the bound is tight enough to fail a sequential f32 sum (what the kernels did)
        assert abs(float(np.cumsum(x, dtype=np.float32)[-1]) - exact) > bound
    rows = x.reshape(4, -1)
    got = mod.rows(rows)
    for r, g in zip(rows, got):
        assert abs(float(g) - float(np.sum(r.astype(np.float64)))) <= pairwise_bound(r)
