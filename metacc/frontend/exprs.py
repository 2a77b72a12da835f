"""Expressions -> values, emitting IR into the current frame.

Dispatch on the AST node; operators live in `arith`, calls of builtins in
`builtins`, calls of user functions in `calls`, grad/argmin in `differentiate`.
"""
from __future__ import annotations

from metacc.errors import MetaccError, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.arith import COMPARE, elementwise, logical, matmul, negate
from metacc.frontend.context import Ctx, text_of
from metacc.frontend.values import DimValue, Number, Record, Results, Tensor, Tree, kind_text


def lower_expr(ctx: Ctx, node, results: bool = False) -> object:
    """The value of an expression. `results`: a call of a function with a tuple result may
    give its Results whole (where they are destructured or returned), else that is an error."""
    kind = type(node)
    if kind is A.Num:
        return Number(node.value, node.span, text_of(node.span))
    if kind is A.Bool:
        return Number(node.value, node.span, text_of(node.span))
    if kind is A.Name:
        return lower_name(ctx, node)
    if kind is A.FieldAccess:
        return lower_field(ctx, node)
    if kind is A.BinOp:
        return lower_binop(ctx, node)
    if kind is A.UnaryOp:
        operand = lower_expr(ctx, node.operand)
        if node.op == "neg":
            return negate(ctx, operand, node.span)
        return logical(ctx, "not", operand, None, node.span)
    if kind is A.Call:
        from metacc.frontend.calls import lower_call, results_needs_destructuring
        value = lower_call(ctx, node)
        if isinstance(value, Results) and not results:
            raise results_needs_destructuring(value, node.span)
        return value
    if kind is A.Index:
        from metacc.frontend.indexing import lower_index
        return lower_index(ctx, node)
    if kind is A.Argmin:
        from metacc.frontend.differentiate import lower_argmin
        return lower_argmin(ctx, node)
    if kind is A.TupleExpr:
        raise MetaccError("a tuple (a, b) is not a value", node.span,
                          hint="tuples are only results: `return a, b` in a function declared "
                               "`-> (a: f32, b: f32)`, and `a, b = g(...)` to take them apart")
    if kind is A.ListExpr:
        raise MetaccError("a list [...] is not a value", node.span,
                          hint="lists are arguments of concat, stack, reshape, zeros, transpose, ...; "
                               "to build a tensor from pieces use concat([...], axis=0) or stack([...])")
    raise MetaccError(f"unexpected {kind.__name__}", getattr(node, "span", None))


def lower_name(ctx: Ctx, node: A.Name):
    value = ctx.lookup(node.id)
    if value is not None:
        return value
    if node.id in ctx.dims:
        return DimValue(ctx.dims[node.id], node.span, node.id)
    unit = ctx.unit
    if node.id in unit.decls.fn_decls or node.id in unit.builtin_names:
        raise MetaccError(f"`{node.id}` is a function, not a value", node.span,
                          hint=f"call it: {node.id}(...)")
    if node.id in unit.decls.groups or node.id in unit.decls.tasks:
        raise MetaccError(f"`{node.id}` is a type, not a value", node.span,
                          hint="take a value of it as an argument, e.g. `theta: Net`")
    visible = ctx.env.names() | set(ctx.dims)
    raise MetaccError(f"unknown name `{node.id}`", node.span, hint=did_you_mean(node.id, visible))


def lower_field(ctx: Ctx, node: A.FieldAccess):
    obj = lower_expr(ctx, node.obj)
    desc = text_of(node.span)
    if isinstance(obj, Tree):
        leaf = obj.field(node.name)
        if leaf is None:
            raise MetaccError(f"{obj.group.name} has no field `{node.name}`", node.span,
                              expected=", ".join(obj.paths), found=node.name,
                              hint=did_you_mean(node.name, obj.paths),
                              notes=[(f"{obj.group.name} is declared here", obj.group.span)])
        return Tensor(leaf.atom, leaf.origin, desc)
    if isinstance(obj, Record):
        member = obj.member(node.name)
        if member is None:
            raise MetaccError(f"{kind_text(obj)} has no field `{node.name}`", node.span,
                              expected=", ".join(obj.members()), found=node.name,
                              hint=did_you_mean(node.name, obj.members()),
                              notes=[(f"task {obj.task.name} is declared here", obj.task.span)])
        if isinstance(member, Tensor):
            return Tensor(member.atom, member.origin, desc)
        return member
    raise MetaccError(f"`{text_of(node.obj.span)}` is {kind_text(obj)} and has no fields", node.span,
                      hint="fields belong to params groups (p.w1) and tasks (t.support.x)")


def lower_binop(ctx: Ctx, node: A.BinOp):
    if node.op in ("and", "or"):
        return logical(ctx, node.op, lower_expr(ctx, node.left), lower_expr(ctx, node.right), node.span)
    a = lower_expr(ctx, node.left)
    b = lower_expr(ctx, node.right)
    if node.op == "matmul":
        return matmul(ctx, a, b, node.span)
    if node.op in COMPARE and (isinstance(a, Tree) or isinstance(b, Tree)):
        raise MetaccError("comparisons take tensors, not params groups", node.span,
                          hint="compare single fields, e.g. p.w1 > 0")
    return elementwise(ctx, node.op, a, b, node.span)

