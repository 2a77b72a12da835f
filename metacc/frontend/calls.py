"""User functions: calls are inlined, each with its own dim bindings.

A call binds the callee's arguments to the caller's values and unifies the
callee's symbolic dims with the caller's dims (ints or the caller's own
symbols), then lowers the callee's body again into the caller's frame. There
is no call primitive for user functions: the IR sees straight-line code with
source spans of the callee's lines.
"""
from __future__ import annotations

from dataclasses import replace

from metacc.errors import MetaccError, Span, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx, Env, Poisoned, text_of
from metacc.frontend.convert import as_tensor, literal
from metacc.frontend.declarations import ArgSig, Signature
from metacc.frontend.values import DimValue, Number, Record, Results, Tensor, Tree, kind_text
from metacc.ir.types import Dim, TensorType


def lower_call(ctx: Ctx, node: A.Call):
    unit = ctx.unit
    name = node.func
    if name in unit.decls.signatures:
        return inline_call(ctx, unit.decls.signatures[name], node)
    if name in unit.decls.failed:
        raise Poisoned(name)            # its declaration's error is already reported
    from metacc.frontend.builtins import BUILTINS, call_builtin
    if name in BUILTINS:
        return call_builtin(ctx, BUILTINS[name], node)
    if name in unit.decls.groups or name in unit.decls.tasks:
        raise MetaccError(f"`{name}` is a type and cannot be called", node.func_span,
                          hint="values of params groups come in as arguments; zeros_like(p) makes a zero one")
    known = list(BUILTINS) + list(unit.decls.fn_decls)
    raise MetaccError(f"unknown function `{name}`", node.func_span, hint=did_you_mean(name, known))


# ---- binding arguments ------------------------------------------------------------

def _bind(ctx: Ctx, sig: Signature, node: A.Call) -> list:
    from metacc.frontend.exprs import lower_expr
    params = sig.args
    if len(node.args) > len(params):
        raise MetaccError(f"{sig.name} takes {len(params)} argument{'s' * (len(params) != 1)}, "
                          f"got {len(node.args) + len(node.kwargs)}", node.span,
                          expected=_signature_text(sig), notes=[("declared here", sig.decl.name_span)])
    values: dict[str, object] = {}
    for p, arg in zip(params, node.args):
        values[p.name] = (lower_expr(ctx, arg), arg.span)
    for kw in node.kwargs:
        if sig.arg(kw.name) is None:
            raise MetaccError(f"{sig.name} has no argument `{kw.name}`", kw.span, expected=_signature_text(sig),
                              hint=did_you_mean(kw.name, [p.name for p in params]))
        if kw.name in values:
            raise MetaccError(f"argument `{kw.name}` of {sig.name} is given twice", kw.span)
        values[kw.name] = (lower_expr(ctx, kw.value), kw.span)
    out = []
    for p in params:
        if p.name in values:
            out.append(values[p.name])
        elif p.default is not None:
            out.append((Number(p.default, p.span, p.name), node.span))
        else:
            raise MetaccError(f"call of {sig.name} is missing the argument `{p.name}`", node.span,
                              expected=_signature_text(sig), notes=[("declared here", p.span)],
                              hint=f"call it as {_signature_text(sig)}")
    return out


def _signature_text(sig: Signature) -> str:
    return f"{sig.name}(" + ", ".join(f"{a.name}: {a.type_name}" for a in sig.args) + ")"


def _unify(ctx: Ctx, sig: Signature, bound: list, node: A.Call) -> tuple[list, dict[str, Dim]]:
    dims: dict[str, tuple[Dim, str]] = {}
    out = []
    for p, (value, span) in zip(sig.args, bound):
        out.append(_check_arg(ctx, sig, p, value, span, dims))
    return out, {s: d for s, (d, _) in dims.items()}


def _mismatch(sig: Signature, p: ArgSig, value, span: Span, extra: str = "") -> MetaccError:
    notes = [(f"`{p.name}` is declared here", p.span)]
    if getattr(value, "origin", None) is not None and value.origin != span:
        notes.append((f"`{value.desc}` comes from here", value.origin))
    hint = None
    if p.kind == "tensor" and isinstance(value, Tensor):
        hint = ("sizes in the signature are fixed, and a dim symbol stands for one size per call: "
                "reshape, slice or transpose the argument to fit")
    elif p.kind in ("params", "task"):
        hint = f"pass a value of {p.type_name}, e.g. an argument declared `{p.name}: {p.type_name}`"
    return MetaccError(f"argument `{p.name}` of {sig.name} must be {p.type_name}, not {kind_text(value)}{extra}",
                       span, expected=p.type_name, found=kind_text(value), notes=notes, hint=hint)


def _check_arg(ctx: Ctx, sig: Signature, p: ArgSig, value, span: Span, dims: dict):
    if p.kind == "params":
        if not (isinstance(value, Tree) and value.group.name == p.group.name):
            raise _mismatch(sig, p, value, span)
        return value
    if p.kind == "task":
        if not (isinstance(value, Record) and value.task.name == p.task.name and not value.prefix):
            raise _mismatch(sig, p, value, span)
        for f, leaf in zip(p.task.fields, value.leaves):
            _unify_dims(sig, p, f.type, leaf, span, dims)
        return value
    if p.kind == "static":
        if isinstance(value, DimValue) and isinstance(value.dim, int):
            value = Number(value.dim, value.origin, value.desc)
        if not (isinstance(value, Number) and value.is_int):
            raise MetaccError(f"argument `{p.name}: int` of {sig.name} must be a compile-time whole number", span,
                              found=kind_text(value), hint="pass a literal or an `int` argument of the caller")
        return value
    if isinstance(value, (Number, DimValue)):
        if p.type.rank != 0:
            raise _mismatch(sig, p, value, span)
        if isinstance(value, Number):
            return literal(ctx, value, p.type.dtype, span)
        value = as_tensor(ctx, value, p.type.dtype, span, f"argument `{p.name}`")
    if not isinstance(value, Tensor):
        raise _mismatch(sig, p, value, span)
    want, got = p.type, value.type
    if want.dtype != got.dtype or want.rank != got.rank:
        hint = (f"cast it with {want.dtype}(...)" if want.rank == got.rank and want.is_float and got.is_float
                else None)
        err = _mismatch(sig, p, value, span)
        err.hint = hint
        raise err
    _unify_dims(sig, p, want, value, span, dims)
    return value


def _unify_dims(sig: Signature, p: ArgSig, want: TensorType, value: Tensor, span: Span, dims: dict) -> None:
    """Bind the callee's dim symbols in `want` to the dims of the caller's value (checked consistent)."""
    got = value.type
    for want_d, got_d in zip(want.shape, got.shape):
        if isinstance(want_d, int):
            if want_d != got_d:
                raise _mismatch(sig, p, value, span, f" (expected size {want_d}, found {got_d})")
        elif want_d in dims and dims[want_d][0] != got_d:
            bound, by = dims[want_d]
            raise MetaccError(f"dim `{want_d}` of {sig.name} is {bound} from argument `{by}`, but argument "
                              f"`{p.name}` has {got_d} there", span, expected=str(_subst(want, dims)),
                              found=str(got), notes=[(f"`{p.name}` is declared here", p.span)],
                              hint="arguments that share a dim symbol must agree in that dim")
        else:
            dims.setdefault(want_d, (got_d, p.name))


def _subst(t: TensorType, dims: dict) -> TensorType:
    return t.with_shape(tuple(dims[d][0] if isinstance(d, str) and d in dims else d for d in t.shape))


def _relabel(value, name: str):
    """Inside the callee, messages name an argument by the callee's name for it."""
    if isinstance(value, Tensor):
        return Tensor(value.atom, value.origin, name)
    if isinstance(value, (Tree, Record, Number)):
        return replace(value, desc=name)
    return value


# ---- bodies -------------------------------------------------------------------------

def inline_call(ctx: Ctx, sig: Signature, node: A.Call):
    unit = ctx.unit
    if not unit.ensure_lowered(sig.name, node.func_span):
        raise Poisoned(sig.name)
    unit.count_equations(node.span, calls=1)
    values, dims = _unify(ctx, sig, _bind(ctx, sig, node), node)
    env = Env()
    for p, v in zip(sig.args, values):
        env.assign(p.name, _relabel(v, p.name))
    callee = Ctx(unit, ctx.frame, env, dims, sig, ctx.first_order, ctx.calls + ((sig.name, node.span),))
    try:
        result = check_result(callee, lower_body(callee, sig.decl))
    except MetaccError as err:
        callee.report(err)
        raise Poisoned(sig.name) from None
    if isinstance(result, Results):
        return Results(tuple(_located(v, node.span, f"{n} of {text_of(node.span)}")
                             for v, n in zip(result.values, result.names)),
                       result.names, node.span, text_of(node.span))
    return _located(result, node.span, text_of(node.span))


def _located(value, span: Span, desc: str):
    if isinstance(value, Tensor):
        return Tensor(value.atom, span, desc)
    return replace(value, origin=span, desc=desc)


def results_needs_destructuring(value: Results, span: Span) -> MetaccError:
    """A call of a function with a tuple result, used where one value is needed."""
    names = ", ".join(value.names)
    return MetaccError(f"`{value.desc}` returns {len(value.values)} results ({names}): destructure them first",
                       span, found=kind_text(value),
                       hint=f"assign them to names, `{names} = {value.desc}`, then use one of them "
                            "(results are not indexed: g(...)[0] is not supported)")


def lower_body(ctx: Ctx, decl: A.FnDecl):
    """Run a function body; returns the value of its `return`."""
    from metacc.frontend.exprs import lower_expr
    from metacc.frontend.stmts import run_statements
    body = decl.body
    returns = [i for i, s in enumerate(body) if isinstance(s, A.Return)]
    if not returns:
        raise MetaccError(f"{decl.kind} {decl.name} has no `return`", decl.name_span,
                          hint=f"end the body with `return <value of type {text_of(decl.result.span)}>`")
    first = returns[0]
    if first != len(body) - 1:
        ctx.report(MetaccError("statements after `return` are never run", body[first + 1].span,
                               notes=[("the function returns here", body[first].span)],
                               hint="`return` must be the last statement of the body"))
    run_statements(ctx, body[:first])
    value = body[first].value
    if isinstance(value, A.TupleExpr) and not value.parens:      # return a, b
        return Results(tuple(lower_expr(ctx, v) for v in value.items),
                       tuple(r.name for r in ctx.sig.results), value.span, text_of(value.span))
    if isinstance(value, A.TupleExpr):
        raise MetaccError("results are returned without parentheses: `return a, b`", value.span,
                          found=f"return {text_of(value.span)}",
                          hint=f"write `return {', '.join(text_of(v.span) for v in value.items)}`")
    return lower_expr(ctx, value, results=True)      # `return g(...)` may hand g's tuple result on whole


def check_result(ctx: Ctx, value):
    """The returned value, checked against the signature (with this call's dims)."""
    sig = ctx.sig
    span = sig.decl.body[-1].span if sig.decl.body else sig.decl.name_span
    node = None
    for s in sig.decl.body:
        if isinstance(s, A.Return):
            span, node = s.value.span, s.value
            break
    if not sig.aux:
        if isinstance(value, Results):
            if isinstance(node, A.TupleExpr):
                raise MetaccError(f"{sig.name} returns one value ({text_of(sig.result.type_span)}), but this "
                                  f"is {len(value.values)}", span, expected=text_of(sig.result.type_span),
                                  found=kind_text(value), notes=[("the signature says so here",
                                                                   sig.result.type_span)],
                                  hint="declare named results, e.g. `-> (loss: f32, acc: f32)`, or return one value")
            raise results_needs_destructuring(value, span)
        return _check_one(ctx, sig.result, value, span)
    want = sig.results
    names = ", ".join(r.name for r in want)
    if not isinstance(value, Results) or len(value.values) != len(want):
        found = kind_text(value) if isinstance(value, Results) else "one value"
        raise MetaccError(f"{sig.name} returns {len(want)} results ({names}), but this is {found}", span,
                          expected=f"return {names}", found=found,
                          notes=[("the signature says so here", sig.decl.result.span)],
                          hint=f"return one value per declared result, separated by commas: `return {names}`")
    items = node.items if isinstance(node, A.TupleExpr) else [None] * len(want)
    checked = [_check_one(ctx, r, v, item.span if item is not None else span)
               for r, v, item in zip(want, value.values, items)]
    return Results(tuple(checked), tuple(r.name for r in want), value.origin, value.desc)


def _check_one(ctx: Ctx, r: ArgSig, value, span: Span):
    sig = ctx.sig
    note = [("the signature says so here", r.type_span)]
    if isinstance(value, Results):
        raise results_needs_destructuring(value, span)
    who = f"{sig.name}'s result `{r.name}` must be" if r.name else f"{sig.name} must return"
    if r.kind == "params":
        if isinstance(value, Tree) and value.group.name == r.group.name:
            return value
        raise MetaccError(f"{who} a {r.group.name}, but this is {kind_text(value)}", span,
                          expected=r.group.name, found=kind_text(value), notes=note)
    want = r.type.with_shape(tuple(ctx.dims.get(d, d) if isinstance(d, str) else d for d in r.type.shape))
    if isinstance(value, Number) and want.rank == 0:
        return literal(ctx, value, want.dtype, span)
    if isinstance(value, DimValue) and want.rank == 0:
        value = as_tensor(ctx, value, want.dtype, span, "the result")
    if not isinstance(value, Tensor) or value.type != want:
        hint = None
        if isinstance(value, Tensor) and value.type.shape == want.shape and value.type.is_float and want.is_float:
            hint = f"cast it with {want.dtype}(...)"
        elif isinstance(value, Tensor) and want.rank == 0 and value.type.is_float:
            hint = "reduce it to a scalar, e.g. with sum(...) or mean(...)"
        raise MetaccError(f"{who} {want}, but this is {kind_text(value)}", span,
                          expected=str(want), found=kind_text(value), notes=note, hint=hint)
    return value
