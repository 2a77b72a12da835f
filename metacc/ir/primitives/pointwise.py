"""Pointwise primitives: one output element from the operands' elements at the same index.

unary (neg, exp, ..., ipow), binary (add, ..., maximum), compare (lt, ..., ne),
logic (and, or, not), select and cast. Each declaration holds its type rule, its
NumPy reference (`impl`), its elementwise partials (forward and reverse mode are
derived from them; written in IR primitives, so they differentiate again), its
Numba scalar expression, its surface name and its folding on numbers.

A scalar lowering is `scalar(c)`: `c.x(j)` is the code of operand j at the output
element's (broadcast) index, `c.dt` the output dtype, `c.lit(v, dt)` a literal,
`c.helper(name)` a helper from metacc/backend/helpers.py (returned, and linked).
"""
from __future__ import annotations

import math
import operator

import numpy as np

from metacc.ir.primitives.declare import ELEMENTWISE, declare
from metacc.ir.primitives.rulekit import (MINUS_ONE, ONE, broadcast, differentiable, mask, need_float,
                                          same_dtype, sum_to)
from metacc.ir.types import FLOAT_DTYPES, NUMPY_DTYPE, ShapeError, TensorType, broadcast_shapes


def _unary_rule(name: str):
    def rule(x):
        need_float(x, name)
        return (x,)
    return rule


def unary(name: str, impl, partials, scalar, fold=None, surface: bool = True, domain: str | None = None):
    """Declare a float -> float elementwise primitive (surface name = its name unless surface=False)."""
    declare(name, "unary", 1, impl=lambda x, **_: impl(x), partials=partials, lowering=ELEMENTWISE,
            scalar=scalar, surface=(name,) if surface else (), fold=fold, domain=domain)(_unary_rule(name))


def np_call(fn: str):
    """Scalar lowering by the NumPy ufunc of that name (Numba compiles it per element)."""
    return lambda c: f"np.{fn}({c.x(0)})"


def _sigmoid(x):
    # stable in both tails: exp of a non-positive number only
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _sigmoid_number(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus_number(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# the order here is the order of UNARY (the rule tests' cases follow it)
unary("neg", np.negative, lambda b, ins, out: [MINUS_ONE], lambda c: f"(-{c.x(0)})",
      fold=lambda x: -x, surface=False)
unary("exp", np.exp, lambda b, ins, out: [out], np_call("exp"), fold=math.exp)
unary("log", np.log, lambda b, ins, out: [b.div(1.0, ins[0])], np_call("log"), fold=math.log,
      domain="positive")
unary("log1p", np.log1p, lambda b, ins, out: [b.div(1.0, b.add(ins[0], 1.0))], np_call("log1p"),
      fold=math.log1p, domain="positive")
unary("sqrt", np.sqrt, lambda b, ins, out: [b.div(0.5, out)], np_call("sqrt"), fold=math.sqrt,
      domain="positive")
unary("abs", np.abs, lambda b, ins, out: [b.sign(ins[0])], np_call("abs"), fold=abs, domain="away_from_zero")
unary("tanh", np.tanh, lambda b, ins, out: [b.sub(1.0, b.mul(out, out))], np_call("tanh"), fold=math.tanh)
unary("sigmoid", _sigmoid, lambda b, ins, out: [b.mul(out, b.sub(1.0, out))],
      lambda c: f"{c.helper('sigmoid_' + c.dt)}({c.x(0)})", fold=_sigmoid_number)
# np.maximum (not a comparison) so that NaN propagates as in NumPy
unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype), lambda b, ins, out: [mask(b, b.gt(ins[0], 0.0), ins[0])],
      lambda c: f"np.maximum({c.x(0)}, {c.lit(0, c.dt)})", fold=lambda x: max(x, 0), domain="away_from_zero")
unary("softplus", lambda x: np.logaddexp(x, np.zeros_like(x)), lambda b, ins, out: [b.sigmoid(ins[0])],
      lambda c: f"{c.helper('softplus_' + c.dt)}({c.x(0)})", fold=_softplus_number)
unary("sin", np.sin, lambda b, ins, out: [b.cos(ins[0])], np_call("sin"), fold=math.sin)
unary("cos", np.cos, lambda b, ins, out: [b.neg(b.sin(ins[0]))], np_call("cos"), fold=math.cos)
unary("sign", np.sign, lambda b, ins, out: [None], np_call("sign"), fold=lambda x: (x > 0) - (x < 0),
      domain="away_from_zero")


def _ipow_impl(x, *, n, **_):
    return (x ** n).astype(x.dtype) if n >= 0 else (1 / x ** -n).astype(x.dtype)


def _ipow_partials(b, ins, out, *, n):
    x = ins[0]
    if n == 0:
        return [b.full(shape=x.type.shape, value=0.0, dtype=x.type.dtype)]
    if n == 1:
        return [ONE]
    lower = x if n == 2 else b.ipow(x, n=n - 1)
    return [b.mul(lower, float(n))]


def _ipow_scalar(c) -> str:
    n, x, dt = c.params["n"], c.x(0), c.dt
    if n == 0:
        return c.lit(1, dt)
    if abs(n) <= 4:                   # repeated products: exact and vectorisable
        prod = " * ".join([x] * abs(n))
        return f"({prod})" if n > 0 else f"({c.lit(1, dt)} / ({prod}))"
    return f"np.power({x}, {c.lit(n, dt)})"


@declare("ipow", "unary", 1, "x ** n for a static integer n", params=("n",), impl=_ipow_impl,
         partials=_ipow_partials, lowering=ELEMENTWISE, scalar=_ipow_scalar)
def _ipow(x, *, n: int):
    need_float(x, "ipow")
    return (x,)


def _binary_rule(name: str):
    def rule(x, y):
        dtype = same_dtype(name, x, y)
        if dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{name} needs float operands, got {x} and {y}")
        return (TensorType(dtype, broadcast_shapes(x.shape, y.shape)),)
    return rule


def binary(name: str, impl, partials, scalar, fold, surface: bool = False):
    """Declare a float x float -> float broadcasting primitive."""
    declare(name, "binary", 2, impl=lambda x, y, **_: impl(x, y), partials=partials, lowering=ELEMENTWISE,
            scalar=scalar, fold=fold, surface=(name,) if surface else ())(_binary_rule(name))


def infix(op: str):
    return lambda c: f"({c.x(0)} {op} {c.x(1)})"


binary("add", lambda x, y: x + y, lambda b, ins, out: [ONE, ONE], infix("+"), lambda a, b: a + b)
binary("sub", lambda x, y: x - y, lambda b, ins, out: [ONE, MINUS_ONE], infix("-"), lambda a, b: a - b)
binary("mul", lambda x, y: x * y, lambda b, ins, out: [ins[1], ins[0]], infix("*"), lambda a, b: a * b)
binary("div", lambda x, y: x / y, lambda b, ins, out: [b.div(1.0, ins[1]), b.neg(b.div(out, ins[1]))],
       infix("/"), lambda a, b: a / b)
binary("pow", np.power, lambda b, ins, out: [b.mul(ins[1], b.pow(ins[0], b.sub(ins[1], 1.0))),
                                             b.mul(out, b.log(ins[0]))],
       lambda c: f"np.power({c.x(0)}, {c.x(1)})", lambda a, b: a ** b)
# ties go to the first operand, so exactly one side gets the derivative
binary("maximum", np.maximum,
       lambda b, ins, out: [mask(b, b.ge(ins[0], ins[1]), out), mask(b, b.lt(ins[0], ins[1]), out)],
       lambda c: f"np.maximum({c.x(0)}, {c.x(1)})", max, surface=True)
binary("minimum", np.minimum,
       lambda b, ins, out: [mask(b, b.le(ins[0], ins[1]), out), mask(b, b.gt(ins[0], ins[1]), out)],
       lambda c: f"np.minimum({c.x(0)}, {c.x(1)})", min, surface=True)


def _compare_rule(name: str):
    def rule(x, y):
        same_dtype(name, x, y)
        return (TensorType("bool", broadcast_shapes(x.shape, y.shape)),)
    return rule


# comparisons: no derivative (the path is cut); the surface is the operator
for _name, _op, _fn in (("lt", "<", operator.lt), ("le", "<=", operator.le), ("gt", ">", operator.gt),
                        ("ge", ">=", operator.ge), ("eq", "==", operator.eq), ("ne", "!=", operator.ne)):
    declare(_name, "compare", 2, impl=lambda x, y, _fn=_fn, **_: _fn(x, y), nondiff=True, lowering=ELEMENTWISE,
            scalar=infix(_op), fold=_fn)(_compare_rule(_name))


def _logic_rule(name: str):
    def rule(x, y):
        if x.dtype != "bool" or y.dtype != "bool":
            raise ShapeError(f"{name} needs boolean operands, got {x} and {y}")
        return (TensorType("bool", broadcast_shapes(x.shape, y.shape)),)
    return rule


declare("logical_and", "logic", 2, impl=lambda x, y, **_: np.logical_and(x, y), nondiff=True,
        lowering=ELEMENTWISE, scalar=infix("&"))(_logic_rule("logical_and"))
declare("logical_or", "logic", 2, impl=lambda x, y, **_: np.logical_or(x, y), nondiff=True,
        lowering=ELEMENTWISE, scalar=infix("|"))(_logic_rule("logical_or"))


@declare("logical_not", "logic", 1, impl=lambda x, **_: np.logical_not(x), nondiff=True, lowering=ELEMENTWISE,
         scalar=lambda c: f"(not {c.x(0)})")
def _not(x):
    if x.dtype != "bool":
        raise ShapeError(f"not needs a boolean operand, got {x}")
    return (x,)


def _select_jvp(b, ins, outs, tans, **_):
    c, x, y = ins
    _, tx, ty = tans
    if tx is None and ty is None:
        return [None]
    zero = b.lit(0.0, outs[0].type.dtype)
    return [broadcast(b, b.select(c, tx if tx is not None else zero, ty if ty is not None else zero),
                      outs[0].type.shape)]


def _select_vjp(b, ins, outs, gs, **_):
    c, x, y = ins
    (g,) = gs
    zero = b.lit(0.0, g.type.dtype)
    return [None,
            sum_to(b, b.select(c, g, zero), x.type) if differentiable(x) else None,
            sum_to(b, b.select(c, zero, g), y.type) if differentiable(y) else None]


@declare("select", "special", 3, "where(c, a, b)", impl=lambda c, a, b, **_: np.where(c, a, b),
         jvp=_select_jvp, vjp=_select_vjp, lowering=ELEMENTWISE, surface=("where",),
         scalar=lambda c: f"({c.x(1)} if {c.x(0)} else {c.x(2)})")
def _select(c, a, b):
    if c.dtype != "bool":
        raise ShapeError(f"where's condition must be boolean (a comparison), got {c}")
    dtype = same_dtype("where", a, b)
    return (TensorType(dtype, broadcast_shapes(c.shape, a.shape, b.shape)),)


def _cast_jvp(b, ins, outs, tans, dtype, **_):
    (t,) = tans
    if t is None or not outs[0].type.is_float:
        return [None]
    return [b.cast(t, dtype=dtype)]


def _cast_vjp(b, ins, outs, gs, **_):
    (x,), (g,) = ins, gs
    return [b.cast(g, dtype=x.type.dtype) if differentiable(x) else None]


def _cast_scalar(c) -> str:
    src = c.e.ins[0].type.dtype
    if src == c.dt:
        return c.x(0)
    if c.dt == "bool":
        return f"({c.x(0)} != {c.lit(0, src)})"
    return c.cast(c.x(0), c.dt)


@declare("cast", "special", 1, params=("dtype",),
         impl=lambda x, *, dtype, **_: np.asarray(x).astype(NUMPY_DTYPE[dtype]),
         jvp=_cast_jvp, vjp=_cast_vjp, lowering=ELEMENTWISE, scalar=_cast_scalar, surface=("f32", "f64"))
def _cast(x, *, dtype: str):
    return (x.with_dtype(dtype),)
