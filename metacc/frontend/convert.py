"""Coercions between kinds of values, and compile-time evaluation.

Numbers become IR literals of the dtype they meet; a named dimension becomes
a literal when it is a size and a `dim_size` equation when it is symbolic.
Places that need a value at compile time (trip counts, axes, shapes) evaluate
an expression and insist on a whole number or a dimension.
"""
from __future__ import annotations

from metacc.errors import MetaccError, Span
from metacc.frontend import ast as A
from metacc.frontend.dispatch import lower_expr
from metacc.frontend.context import MAX_ELEMENTS, Ctx, check_elements  # noqa: F401 (re-exported)
from metacc.frontend.values import DimValue, Number, Record, Tensor, Tree, kind_text
from metacc.ir.core import Lit
from metacc.ir.types import Dim, scalar

MAX_SIZE = 2 ** 31 - 1     # sizes and trip counts index arrays in the generated code

# the largest finite value and the smallest positive (subnormal) value of each float dtype
FLOAT_RANGE = {"f32": (3.4028234663852886e38, 1.401298464324817e-45),
               "f64": (1.7976931348623157e308, 5e-324)}


def check_float_range(value, dtype: str, span: Span | None, what: str = "the number", text: str = "") -> None:
    """A number that becomes inf or 0 in `dtype` is an error, never a silent inf or zero."""
    if dtype not in FLOAT_RANGE or isinstance(value, bool):
        return
    big, tiny = FLOAT_RANGE[dtype]
    mag = abs(float(value))
    if mag > big:
        raise MetaccError(f"{what} {text or format(value, 'g')} overflows {dtype}: its largest value is {big:.7g}", span,
                          hint="use f64 for this value, or rescale it" if dtype == "f32" else "rescale it")
    if 0 < mag < tiny / 2:
        raise MetaccError(f"{what} {text or format(value, 'g')} underflows {dtype}: it would be 0", span,
                          hint=f"the smallest positive {dtype} is about {tiny:.2g}; write 0.0 if zero is meant")


def literal(ctx: Ctx, num: Number, dtype: str, span: Span | None) -> Tensor:
    """A number as a literal of `dtype` (checked: no silent truncation or bool arithmetic)."""
    value = num.value
    if dtype == "key":
        raise MetaccError("a number cannot be used as a random key", span,
                          hint="take a `key` argument and derive keys with fold_in(key, i)")
    if dtype == "bool" and not isinstance(value, bool):
        raise MetaccError(f"the number {value} cannot meet a boolean mask", span,
                          hint="compare first (x > 0), or cast the mask with f32(...)")
    if dtype != "bool" and isinstance(value, bool):
        raise MetaccError(f"`{str(value).lower()}` cannot meet a {dtype} value", span,
                          hint="true and false combine with comparisons (masks) only")
    if dtype == "i64" and not num.is_int:
        raise MetaccError(f"the float {value} cannot meet an i64 value", span,
                          hint="cast the integer operand with f32(...) or f64(...)")
    check_float_range(value, dtype, num.origin or span, text=num.desc if num.desc and " " not in num.desc else "")
    return Tensor(Lit(value if dtype == "bool" else (int(value) if dtype == "i64" else float(value)),
                      scalar(dtype)), num.origin or span, num.desc)


def dim_tensor(ctx: Ctx, d: DimValue, dtype: str, span: Span | None):
    """A named dim as a number (a size) or a dim_size equation (a symbol)."""
    if isinstance(d.dim, int):
        return Number(d.dim, d.origin, d.desc)
    return ctx.tensor(ctx.emit("dim_size", [], span, dims=(d.dim,), dtype=dtype), span, d.desc)


def as_tensor(ctx: Ctx, value, dtype: str | None, span: Span | None, what: str) -> Tensor:
    """Any single-tensor value as a Tensor; numbers take `dtype` (or the default float)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, DimValue):
        value = dim_tensor(ctx, value, dtype or ctx.default_float, span)
        if isinstance(value, Tensor):
            return value
    if isinstance(value, Number):
        if dtype is None:
            dtype = "bool" if isinstance(value.value, bool) else ctx.default_float
        return literal(ctx, value, dtype, span)
    raise MetaccError(f"{what} must be a tensor, not {kind_text(value)}", span,
                      hint=_structured_hint(value))


def _structured_hint(value) -> str | None:
    if isinstance(value, Tree):
        return f"use one field (e.g. `{value.desc}.{value.paths[0]}`), or a tree reduction such as sqnorm(...)"
    if isinstance(value, Record):
        return f"use one of its fields: {', '.join(value.members())}"
    return None


# ---- compile-time values ----------------------------------------------------

def static_int(ctx: Ctx, node: A.Expr, what: str) -> int:
    value = lower_expr(ctx, node)
    if isinstance(value, Number) and value.is_int:
        if abs(value.value) > MAX_SIZE:
            # counts, axes and class numbers index arrays in the generated code
            raise MetaccError(f"{what} is too large ({value.value})", node.span,
                              hint=f"compile-time whole numbers here are at most {MAX_SIZE}")
        return value.value
    if isinstance(value, DimValue) and isinstance(value.dim, int):
        return value.dim
    raise MetaccError(f"{what} must be a compile-time whole number", node.span,
                      expected="a literal such as 5, or an `int` argument", found=kind_text(value),
                      hint="declare a compile-time constant as an argument `K: int = 5`")


def static_number(ctx: Ctx, node: A.Expr, what: str) -> float | int:
    value = lower_expr(ctx, node)
    if isinstance(value, Number) and not isinstance(value.value, bool):
        return value.value
    if isinstance(value, DimValue) and isinstance(value.dim, int):
        return value.dim
    raise MetaccError(f"{what} must be a number known at compile time", node.span,
                      expected="a literal such as 0.01", found=kind_text(value))


def static_dim(ctx: Ctx, node: A.Expr, what: str) -> Dim:
    value = lower_expr(ctx, node)
    if isinstance(value, Number) and value.is_int:
        if value.value < 0:
            raise MetaccError(f"{what} cannot be negative ({value.value})", node.span)
        if value.value > MAX_SIZE:
            raise MetaccError(f"{what} is too large ({value.value})", node.span, hint=f"sizes are at most {MAX_SIZE}")
        return value.value
    if isinstance(value, DimValue):
        return value.dim
    raise MetaccError(f"{what} must be a size: a whole number or a dimension such as n", node.span,
                      found=kind_text(value), hint="sizes are known when the program is compiled or called; "
                                                   "they cannot be computed from tensor values")


def static_shape(ctx: Ctx, node: A.Expr, what: str) -> tuple[Dim, ...]:
    """`[a, b]` (or a single size) as a shape."""
    if isinstance(node, A.ListExpr):
        return tuple(static_dim(ctx, item, f"each dim of {what}") for item in node.items)
    return (static_dim(ctx, node, what),)


def static_ints(ctx: Ctx, node: A.Expr, what: str) -> tuple[int, ...]:
    """`[0, 1]` or `0` as a tuple of whole numbers (axes, permutations)."""
    items = node.items if isinstance(node, A.ListExpr) else (node,)
    return tuple(static_int(ctx, item, what) for item in items)


def normalize_axes(axes, rank: int, span: Span | None, what: str) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise MetaccError(f"{what}: axis {a} is out of range for a rank-{rank} tensor", span,
                              hint=f"axes run from 0 to {rank - 1} (or -{rank} to -1 from the end)" if rank
                              else "a scalar has no axes")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise MetaccError(f"{what}: an axis is repeated in {tuple(axes)}", span)
    return tuple(sorted(out))
