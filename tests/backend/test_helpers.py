"""The compiled matmul and transpose helpers against NumPy in float64.

The register-tiled paths (runtime/simd.py) split every product into full
tiles, narrower tiles and element-wise edges, and pick a transposed
formulation for some shapes; the shapes here reach each of those paths, at
nonzero offsets into larger buffers whose other elements must stay untouched.
"""
from __future__ import annotations

import numpy as np
import pytest

from metacc.backend.helpers import mm_nn, mm_nt, mm_tn, mm_tt, transpose_n, vector_registers

SHAPES = [(10, 40, 40), (40, 10, 40), (40, 40, 10), (10, 40, 1), (10, 1, 40), (1, 40, 1), (7, 13, 21),
          (3, 0, 9), (5, 3, 17), (9, 9, 33), (4, 4, 8), (16, 8, 16), (2, 2, 2), (1, 1, 1), (33, 5, 3),
          # the 5-register tiles (WIDE_TILES): 4 + 4 + 2 + 1 rows, wide tiles then narrower columns
          (11, 7, 93), (6, 3, 85), (3, 40, 40),
          # one output column, transposed (out^T is out's memory): P1's h^T @ g
          (40, 10, 1), (16, 9, 1),
          # scratch past the stack block (helpers.SCRATCH): a transposed operand, a transposed result
          (5, 70, 70), (72, 3, 61)]
DTYPES = [np.float32, np.float64]
PAD = 5          # sentinel elements before and after each output


def _buffer(x: np.ndarray, lead: int, dtype) -> np.ndarray:
    return np.concatenate([np.full(lead, 7.0), x.ravel(), np.full(3, 7.0)]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", ["nn", "tn", "nt", "tt"])
def test_matmul_matches_numpy(variant, shape, dtype):
    m, kk, n = shape
    rng = np.random.default_rng(m * 1000 + kk * 10 + n)
    A, B = rng.normal(size=(m, kk)), rng.normal(size=(kk, n))
    stored_a = A.T if variant[0] == "t" else A      # mm_t*: a is stored as [kk, m]
    stored_b = B.T if variant[1] == "t" else B      # mm_*t: b is stored as [n, kk]
    fn = {"nn": mm_nn, "tn": mm_tn, "nt": mm_nt, "tt": mm_tt}[variant]
    a, b = _buffer(stored_a, 3, dtype), _buffer(stored_b, 2, dtype)
    out = np.full(PAD + m * n + PAD, np.nan, dtype)
    fn(a, 3, b, 2, out, PAD, m, kk, n)
    got = out[PAD:PAD + m * n].reshape(m, n).astype(np.float64)
    want = A.astype(dtype).astype(np.float64) @ B.astype(dtype).astype(np.float64)
    tol = 2e-5 if dtype == np.float32 else 1e-13
    scale = max(1.0, float(np.abs(A).max(initial=0) * np.abs(B).max(initial=0) * kk))
    assert np.all(np.abs(got - want) <= tol * scale), np.abs(got - want).max()
    assert np.isnan(out[:PAD]).all() and np.isnan(out[PAD + m * n:]).all(), "wrote outside its output"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("rows,cols", [(40, 40), (8, 8), (4, 4), (13, 21), (10, 40), (40, 10), (1, 9),
                                       (17, 3), (0, 5), (16, 24)])
def test_transpose_matches_numpy(rows, cols, dtype):
    src = np.random.default_rng(rows * 100 + cols).normal(size=3 + rows * cols).astype(dtype)
    dst = np.full(4 + rows * cols + 4, np.nan, dtype)
    transpose_n(src, 3, dst, 4, rows, cols)
    assert np.array_equal(dst[4:4 + rows * cols], src[3:].reshape(rows, cols).T.ravel())
    assert np.isnan(dst[:4]).all() and np.isnan(dst[4 + rows * cols:]).all()


def test_matmul_propagates_nan_and_inf():
    """A NaN in an operand reaches exactly the outputs it touches (no silent zero, no spreading)."""
    m, kk, n = 10, 40, 40
    A, B = np.ones((m, kk)), np.ones((kk, n))
    A[3, 5] = np.nan
    B[7, 11] = np.inf
    out = np.empty(m * n)
    mm_nn(A.ravel(), 0, B.ravel(), 0, out, 0, m, kk, n)
    got = out.reshape(m, n)
    with np.errstate(invalid="ignore"):
        want = A @ B
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8], ids=["i32", "i64", "u8"])
def test_transpose_of_other_widths(dtype):
    """Register blocks of 8, 4 and 32 lanes (the last element by element)."""
    rows, cols = 37, 70
    src = np.arange(rows * cols).astype(dtype)
    dst = np.zeros(rows * cols, dtype)
    transpose_n(src, 0, dst, 0, rows, cols)
    assert np.array_equal(dst, src.reshape(rows, cols).T.ravel())


def test_vector_registers_read_from_the_feature_string():
    assert vector_registers("+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw") == 32
    assert vector_registers("+avx,+avx2,+fma,-avx512f,-avx512vl") == 16
    assert vector_registers("+sse2,+neon") == 16
    assert vector_registers() in (16, 32)           # this machine's, whichever it is
