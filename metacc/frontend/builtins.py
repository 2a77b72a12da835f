"""The builtin functions: one registry, one argument binder.

Each builtin declares its arguments in a small spec, e.g.

    @builtin("sum", "x, axis?:axes, keepdims?:flag")

`name?` is optional (keyword or positional); after the colon comes the kind,
which says how the argument is evaluated before the implementation sees it:

    value   (default) any value: tensor, number, params group, ...
    int     a compile-time whole number        shape   [a, b] or one size
    dim     a size: a number or a dim symbol    axes    0 or [0, 1] (may be negative)
    number  a compile-time number               flag    true or false
    dtype   f32, f64, i64 or bool               values  a list [a, b] of values
    node    the unevaluated syntax

The implementations live in lib_*.py, grouped by what they do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from metacc.errors import MetaccError, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx
from metacc.frontend.convert import static_dim, static_int, static_ints, static_number, static_shape
from metacc.frontend.values import kind_text


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    required: bool


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[Param, ...]
    impl: Callable
    doc: str
    raw: bool = False           # impl(ctx, node) binds its own arguments (grad)

    def usage(self) -> str:
        return f"{self.name}(" + ", ".join(p.name if p.required else f"{p.name}=..." for p in self.params) + ")"


BUILTINS: dict[str, Builtin] = {}


def _parse_spec(spec: str) -> tuple[Param, ...]:
    params = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, kind = item.partition(":")
        required = not name.endswith("?")
        params.append(Param(name.rstrip("?"), kind or "value", required))
    return tuple(params)


def builtin(names: str, spec: str, doc: str = ""):
    """Register impl(ctx, node, **arguments) under each space-separated name."""
    def wrap(impl):
        for n in names.split():
            BUILTINS[n] = Builtin(n, _parse_spec(spec), impl, doc)
        return impl
    return wrap


def raw_builtin(names: str, usage: str, doc: str = ""):
    def wrap(impl):
        for n in names.split():
            BUILTINS[n] = Builtin(n, _parse_spec(usage), impl, doc, raw=True)
        return impl
    return wrap


# ---- binding ----------------------------------------------------------------------

def _flag(ctx: Ctx, node, what: str) -> bool:
    if isinstance(node, A.Bool):
        return node.value
    raise MetaccError(f"{what} must be true or false", node.span, found=getattr(node, "id", None))


def _dtype(ctx: Ctx, node, what: str) -> str:
    from metacc.frontend.declarations import DTYPE_NAMES
    if isinstance(node, A.Name) and node.id in DTYPE_NAMES:
        return ctx.unit.decls.dtype(node.id)
    raise MetaccError(f"{what} must be an element type", node.span, expected="f32, f64, i64 or bool",
                      hint=did_you_mean(node.id, DTYPE_NAMES) if isinstance(node, A.Name) else None)


def _values(ctx: Ctx, node, what: str) -> list:
    from metacc.frontend.exprs import lower_expr
    if not isinstance(node, A.ListExpr):
        raise MetaccError(f"{what} must be a list of tensors [a, b, ...]", node.span)
    if not node.items:
        raise MetaccError(f"{what} is an empty list", node.span)
    return [lower_expr(ctx, item) for item in node.items]


def _value(ctx: Ctx, node, what: str):
    from metacc.frontend.exprs import lower_expr
    return lower_expr(ctx, node)


CONVERT = {
    "value": _value, "int": static_int, "dim": static_dim, "shape": static_shape, "axes": static_ints,
    "number": static_number, "flag": _flag, "dtype": _dtype, "values": _values,
    "node": lambda ctx, node, what: node,
}


def bind(ctx: Ctx, b: Builtin, node: A.Call) -> dict:
    if len(node.args) > len(b.params):
        raise MetaccError(f"{b.name} takes at most {len(b.params)} argument{'s' * (len(b.params) != 1)}, "
                          f"got {len(node.args)}", node.span, expected=b.usage())
    given: dict[str, object] = dict(zip((p.name for p in b.params), node.args))
    for kw in node.kwargs:
        names = [p.name for p in b.params]
        if kw.name not in names:
            raise MetaccError(f"{b.name} has no argument `{kw.name}`", kw.span, expected=b.usage(),
                              hint=did_you_mean(kw.name, names))
        if kw.name in given:
            raise MetaccError(f"argument `{kw.name}` of {b.name} is given twice", kw.span)
        given[kw.name] = kw.value
    out = {}
    for p in b.params:
        if p.name not in given:
            if p.required:
                raise MetaccError(f"{b.name} is missing its argument `{p.name}`", node.span, expected=b.usage())
            continue
        out[p.name] = CONVERT[p.kind](ctx, given[p.name], f"`{p.name}` of {b.name}")
    return out


def call_builtin(ctx: Ctx, b: Builtin, node: A.Call):
    if b.raw:
        return b.impl(ctx, node)
    return b.impl(ctx, node, **bind(ctx, b, node))


def reject(value, node, what: str, allowed: str, hint: str | None = None):
    """The usual error for a value of the wrong kind."""
    raise MetaccError(f"{what} must be {allowed}, not {kind_text(value)}", node.span, hint=hint)


# the implementations register themselves on import
from metacc.frontend import lib_array, lib_ad, lib_math, lib_random  # noqa: E402,F401
# lib_conv registers itself from metacc/frontend/__init__.py: it only imports this module,
# so it stays out of the front end's import cycle
