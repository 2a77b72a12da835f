"""Operators on tensors and numbers: + - * / ^, comparisons, and/or/not, @.

Numbers fold at compile time; a number meeting a tensor becomes a literal of
the tensor's dtype; `x ^ n` with a whole number n is the `ipow` primitive.
Parameter groups and tasks are handed to `metacc.frontend.trees`.
"""
from __future__ import annotations

import math

from metacc.errors import MetaccError, Span
from metacc.frontend.context import Ctx, text_of
from metacc.frontend.convert import as_tensor, dim_tensor, literal
from metacc.frontend.values import DimValue, Number, Record, Tensor, Tree, kind_text
from metacc.ir.prims import PRIMS

SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^", "maximum": "maximum",
          "minimum": "minimum", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
          "and": "and", "or": "or", "matmul": "@"}
COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")

_LIMIT = 2 ** 62      # folded whole numbers stay far from int64 overflow


def _int_pow_too_big(a, b) -> bool:
    """Would the whole number a ** b pass _LIMIT? Decided from bit lengths, without computing it:
    Python ints are unbounded, and 3 ^ 3 ^ 3 ^ 3 would take longer than anyone waits."""
    if not (isinstance(a, int) and isinstance(b, int)) or b < 0 or abs(a) < 2:
        return False
    return b * (abs(a).bit_length() - 1) > _LIMIT.bit_length()


def _fold(prim: str, a, b, span: Span | None):
    if prim == "pow" and _int_pow_too_big(a, b):
        raise MetaccError(f"the constant {a} ^ {b} is too large", span,
                          hint=f"whole numbers computed at compile time stay below 2^62 (about {_LIMIT:.1e})")
    try:
        r = NUMBER_FOLD[prim](a, b)
    except ZeroDivisionError:
        raise MetaccError("division by zero in a constant expression", span) from None
    except OverflowError:
        raise MetaccError("a constant expression overflows", span) from None
    if isinstance(r, complex) or (isinstance(r, int) and not isinstance(r, bool) and abs(r) > _LIMIT):
        raise MetaccError("a constant expression has no real, representable value", span)
    if isinstance(r, float) and not math.isfinite(r):
        # Python floats overflow to inf without an exception (1e200 * 1e200)
        raise MetaccError("a constant expression overflows: its value is not finite", span,
                          hint="the largest f64 is about 1.8e308 (f32: 3.4e38)")
    return r


def _as_operand(ctx: Ctx, v, other, span):
    """Dims become numbers or dim_size tensors (of the other operand's dtype)."""
    if isinstance(v, DimValue):
        dtype = other.type.dtype if isinstance(other, Tensor) and other.type.is_float else ctx.default_float
        return dim_tensor(ctx, v, dtype, span)
    return v


def _check_plain(v, symbol: str, span):
    if isinstance(v, (Tensor, Number)):
        return
    raise MetaccError(f"`{symbol}` cannot take {kind_text(v)}", span,
                      hint="use a field of the task, e.g. t.support.x" if isinstance(v, Record) else None)


def elementwise(ctx: Ctx, prim: str, a, b, span: Span | None, desc: str | None = None):
    """a (prim) b for add sub mul div pow maximum minimum and the comparisons."""
    if isinstance(a, (Tree, Record)) or isinstance(b, (Tree, Record)):
        from metacc.frontend.trees import tree_binary
        return tree_binary(ctx, prim, a, b, span)
    desc = desc if desc is not None else text_of(span)
    a, b = _as_operand(ctx, a, b, span), _as_operand(ctx, b, a, span)
    symbol = SYMBOL[prim]
    _check_plain(a, symbol, span)
    _check_plain(b, symbol, span)
    if isinstance(a, Number) and isinstance(b, Number):
        if isinstance(a.value, bool) or isinstance(b.value, bool):
            if prim not in ("eq", "ne"):
                raise MetaccError(f"`{symbol}` cannot take true/false", span)
        return Number(_fold(prim, a.value, b.value, span), span, desc)
    if prim == "pow" and isinstance(b, Number) and b.is_int:
        x = as_tensor(ctx, a, None, span, "the base of ^")
        return ctx.tensor(ctx.emit("ipow", [x], span, what="`^`", n=b.value), span, desc)
    dtype = (a if isinstance(a, Tensor) else b).type.dtype
    x = a if isinstance(a, Tensor) else literal(ctx, a, dtype, span)
    y = b if isinstance(b, Tensor) else literal(ctx, b, dtype, span)
    what = f"`{symbol}`" if len(symbol) <= 2 else symbol
    return ctx.tensor(ctx.emit(prim, [x, y], span, what=what), span, desc)


def negate(ctx: Ctx, v, span: Span | None):
    if isinstance(v, (Tree, Record)):
        from metacc.frontend.trees import tree_unary
        return tree_unary(ctx, "neg", v, span)
    v = _as_operand(ctx, v, None, span)
    if isinstance(v, Number):
        if isinstance(v.value, bool):
            raise MetaccError("`-` cannot take true/false", span, hint="use `not` for masks")
        return Number(-v.value, span, text_of(span))
    return ctx.tensor(ctx.emit("neg", [v], span, what="`-`"), span)


def logical(ctx: Ctx, op: str, a, b, span: Span | None):
    """and / or / not (b is None) over boolean masks."""
    vals = [v for v in (a, b) if v is not None]
    if all(isinstance(v, Number) for v in vals):
        if not all(isinstance(v.value, bool) for v in vals):
            raise MetaccError(f"`{op}` combines true/false or comparisons, not numbers", span)
        r = (not vals[0].value) if op == "not" else (vals[0].value and vals[1].value) if op == "and" \
            else (vals[0].value or vals[1].value)
        return Number(r, span, text_of(span))
    ts = [as_tensor(ctx, v, "bool", span, f"an operand of `{op}`") for v in vals]
    prim = {"and": "logical_and", "or": "logical_or", "not": "logical_not"}[op]
    return ctx.tensor(ctx.emit(prim, ts, span, what=f"`{op}`"), span)


def matmul(ctx: Ctx, a, b, span: Span | None):
    for v, side in ((a, "left"), (b, "right")):
        if not isinstance(v, Tensor):
            raise MetaccError(f"the {side} operand of @ must be a matrix, not {kind_text(v)}", span,
                              hint="multiply by a number with *" if isinstance(v, (Number, DimValue)) else None)
    return ctx.tensor(ctx.emit("matmul", [a, b], span, what="`@`"), span)


# ---- compile-time math on numbers (keeps `exp(0.5) * x` in x's dtype) ----------

# the primitives' folding on Python numbers, declared with them (metacc/ir/primitives/)
NUMBER_MATH = {n: p.fold for n, p in PRIMS.items() if p.family == "unary" and p.fold is not None}
NUMBER_FOLD = {n: p.fold for n, p in PRIMS.items() if p.family in ("binary", "compare") and p.fold is not None}


def fold_unary(prim: str, num: Number, span: Span | None) -> Number:
    if isinstance(num.value, bool):
        raise MetaccError(f"{prim} cannot take true/false", span)
    try:
        value = NUMBER_MATH[prim](num.value)
        if isinstance(value, float) and not math.isfinite(value):
            raise OverflowError
        return Number(value, span, text_of(span))
    except (ValueError, OverflowError):
        raise MetaccError(f"{prim}({num.value}) has no real, finite value", span) from None
