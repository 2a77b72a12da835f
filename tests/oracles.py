"""Derivative oracles from outside the code under test.

Central finite differences in float64 through the reference interpreter, the
dot-product identity for VJPs, and symmetry for HVPs. Nothing here calls the
AD transforms' own results to produce an expected value.
"""
from __future__ import annotations

import numpy as np

from metacc.interp import evaluate


def fd_jvp(fn, args, wrt, tangents, eps=1e-6):
    """(f(x + eps t) - f(x - eps t)) / 2 eps for every output of fn."""
    plus = [a.copy() for a in args]
    minus = [a.copy() for a in args]
    for i, t in zip(wrt, tangents):
        plus[i] = args[i] + eps * t
        minus[i] = args[i] - eps * t
    fp, fm = evaluate(fn, plus), evaluate(fn, minus)
    return [(np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2 * eps) for p, m in zip(fp, fm)]


def fd_grad(fn, args, i, eps=1e-6, out=0):
    g = np.zeros_like(np.asarray(args[i], dtype=np.float64))
    for idx in np.ndindex(g.shape):
        plus = [np.array(a, copy=True) for a in args]
        minus = [np.array(a, copy=True) for a in args]
        plus[i][idx] += eps
        minus[i][idx] -= eps
        g[idx] = (evaluate(fn, plus)[out] - evaluate(fn, minus)[out]) / (2 * eps)
    return g


def inner(xs, ys) -> float:
    return float(sum(np.sum(np.asarray(x) * np.asarray(y)) for x, y in zip(xs, ys)))


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))
