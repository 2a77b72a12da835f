"""Reductions: reduce_sum, reduce_max (sinks that close a fused loop nest) and argmax."""
from __future__ import annotations

import numpy as np

from metacc.ir.core import Lit
from metacc.ir.primitives.declare import HOOK, SINK, declare
from metacc.ir.primitives.rulekit import broadcast, max_mask, need_float, norm_axes, same_op
from metacc.ir.types import TensorType


def _reduced(x, axes, keepdims, what):
    ax = norm_axes(axes, x.rank, what)
    if keepdims:
        return tuple(1 if i in ax else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in ax)


def _reduce_sum_vjp(b, ins, outs, gs, axes, keepdims=False, **_):
    (x,), (g,) = ins, gs
    if isinstance(g, Lit):          # the seed of a gradient: a constant array, no reshaping needed
        return [b.full(shape=x.type.shape, value=g.value, dtype=x.type.dtype)]
    if not keepdims:
        ax = tuple(a % x.type.rank for a in axes)
        g = b.reshape(g, shape=tuple(1 if i in ax else d for i, d in enumerate(x.type.shape)))
    return [broadcast(b, g, x.type.shape)]


@declare("reduce_sum", "reduce", 1, params=("axes", "keepdims"),
         impl=lambda x, *, axes, keepdims=False, **_: np.sum(x, axis=tuple(axes), keepdims=keepdims),
         jvp=same_op("reduce_sum"), vjp=_reduce_sum_vjp, lowering=SINK, surface=("sum", "mean"))
def _reduce_sum(x, *, axes: tuple[int, ...], keepdims: bool = False):
    need_float(x, "sum")
    return (x.with_shape(_reduced(x, axes, keepdims, "sum")),)


def _reduce_max_jvp(b, ins, outs, tans, axes, keepdims=False, **_):
    (t,) = tans
    if t is None:
        return [None]
    weight, _ = max_mask(b, ins[0], outs[0], axes, keepdims)
    return [b.reduce_sum(b.mul(weight, t), axes=tuple(axes), keepdims=keepdims)]


def _reduce_max_vjp(b, ins, outs, gs, axes, keepdims=False, **_):
    (x,), (g,) = ins, gs
    weight, kshape = max_mask(b, x, outs[0], axes, keepdims)
    gk = g if keepdims else b.reshape(g, shape=kshape)
    return [b.mul(weight, gk)]


@declare("reduce_max", "reduce", 1, params=("axes", "keepdims"),
         impl=lambda x, *, axes, keepdims=False, **_: np.max(x, axis=tuple(axes), keepdims=keepdims),
         jvp=_reduce_max_jvp, vjp=_reduce_max_vjp, lowering=SINK, surface=("max", "min"))
def _reduce_max(x, *, axes: tuple[int, ...], keepdims: bool = False):
    need_float(x, "max")
    return (x.with_shape(_reduced(x, axes, keepdims, "max")),)


@declare("argmax", "reduce", 1, params=("axis",), nondiff=True,
         impl=lambda x, *, axis, **_: np.argmax(x, axis=axis).astype(np.int64), lowering=HOOK, surface=("argmax",))
def _argmax(x, *, axis: int):
    return (TensorType("i64", _reduced(x, (axis,), False, "argmax")),)
