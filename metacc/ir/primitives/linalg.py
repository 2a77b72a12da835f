"""Linear algebra: matmul (2-D) and solve, lowered by helpers in metacc/backend/helpers.py."""
from __future__ import annotations

import numpy as np

from metacc.errors import MetaccError
from metacc.ir.primitives.declare import HOOK, declare
from metacc.ir.primitives.rulekit import add_any, differentiable, same_dtype
from metacc.ir.types import FLOAT_DTYPES, ShapeError, TensorType


def _matmul_jvp(b, ins, outs, tans, **_):
    a, c = ins
    ta, tc = tans
    left = None if ta is None else b.matmul(ta, c)
    right = None if tc is None else b.matmul(a, tc)
    return [add_any(b, left, right)]


def _matmul_vjp(b, ins, outs, gs, **_):
    x, y = ins
    (g,) = gs
    return [b.matmul(g, b.transpose(y, perm=(1, 0))) if differentiable(x) else None,
            b.matmul(b.transpose(x, perm=(1, 0)), g) if differentiable(y) else None]


@declare("matmul", "linalg", 2, "2-D matrix product", impl=lambda a, b, **_: a @ b, jvp=_matmul_jvp,
         vjp=_matmul_vjp, lowering=HOOK)
def _matmul(a, b):
    dtype = same_dtype("@", a, b)
    if dtype not in FLOAT_DTYPES:
        raise ShapeError(f"@ needs float operands, got {a} and {b}")
    if a.rank != 2 or b.rank != 2:
        raise ShapeError(f"matmul takes 2-D operands, got {a} and {b}")
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"inner dims of {a} @ {b} differ ({a.shape[1]} vs {b.shape[0]})")
    return (TensorType(dtype, (a.shape[0], b.shape[1])),)


def _solve_impl(a, b, **_):
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise MetaccError("solve: the matrix is singular", hint="add a ridge term (lam * eye(n)) "
                          "to keep the system well-posed")


def _solve_jvp(b, ins, outs, tans, **_):
    a, _ = ins
    ta, tb = tans
    x = outs[0]
    rhs = tb
    if ta is not None:
        rhs = add_any(b, rhs, b.neg(b.matmul(ta, x)))
    return [None if rhs is None else b.solve(a, rhs)]


def _solve_vjp(b, ins, outs, gs, **_):
    a, rhs = ins
    (g,) = gs
    rhs_bar = b.solve(b.transpose(a, perm=(1, 0)), g)
    a_bar = b.neg(b.matmul(rhs_bar, b.transpose(outs[0], perm=(1, 0)))) if differentiable(a) else None
    return [a_bar, rhs_bar if differentiable(rhs) else None]


@declare("solve", "linalg", 2, "X with A @ X = B, A square, B 2-D", impl=_solve_impl, jvp=_solve_jvp,
         vjp=_solve_vjp, lowering=HOOK, surface=("solve",))
def _solve(a, b):
    dtype = same_dtype("solve", a, b)
    if dtype not in FLOAT_DTYPES:
        raise ShapeError("solve needs float operands")
    if a.rank != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"solve needs a square matrix, got {a}")
    if b.rank != 2 or b.shape[0] != a.shape[0]:
        raise ShapeError(f"solve(A, B): B must be 2-D with {a.shape[0]} rows, got {b}")
    return (b,)
