"""Arithmetic over whole parameter groups: `p - alpha * g`, `sqnorm(p)`, `zeros_like(p)`.

  tree (op) tree     leaves pair by field name; the groups may differ if they
                     have the same field names (per-layer scalar rates `Rates`,
                     or Meta-SGD rates of the weights' shapes); each pair
                     broadcasts like two tensors
  tree (op) tensor   the tensor (or number) meets every leaf
The result is a value of whichever operand's group has the result's leaf
types, so `p - lr * g` stays a `Net`.
"""
from __future__ import annotations

from metacc.errors import MetaccError, Span
from metacc.frontend.context import Ctx, text_of
from metacc.frontend.values import Number, Record, Tensor, Tree, kind_text


def _no_task(v, span):
    if isinstance(v, Record):
        raise MetaccError(f"{kind_text(v)} cannot take part in arithmetic", span,
                          hint=f"use one of its fields: {', '.join(v.members())}")


def pair(a: Tree, b: Tree, span: Span | None) -> list[tuple[str, Tensor, Tensor]]:
    """The leaves of two trees matched by field name (in a's order)."""
    if set(a.paths) != set(b.paths):
        only_a = [p for p in a.paths if p not in b.paths]
        only_b = [p for p in b.paths if p not in a.paths]
        parts = ([f"only {a.group.name} has {', '.join(only_a)}"] if only_a else []) + \
                ([f"only {b.group.name} has {', '.join(only_b)}"] if only_b else [])
        raise MetaccError(f"{a.group.name} and {b.group.name} do not have the same fields ({'; '.join(parts)})",
                          span, notes=[(f"{a.group.name} is declared here", a.group.span),
                                       (f"{b.group.name} is declared here", b.group.span)],
                          hint="groups combine field by field, so they need the same field names")
    return [(p, a.field(p), b.field(p)) for p in a.paths]


def _result_tree(ctx: Ctx, candidates: list[Tree], leaves: dict[str, Tensor], span: Span | None, what: str) -> Tree:
    """The new leaves (by field name) as a value of the first candidate group whose types they have."""
    for c in candidates:
        if all(leaves[f.path].type == f.type for f in c.group.fields):
            return Tree(c.group, tuple(leaves[f.path] for f in c.group.fields), span, text_of(span))
    c = candidates[0]
    bad = next((f, leaves[f.path].type) for f in c.group.fields if leaves[f.path].type != f.type)
    raise MetaccError(f"{what} does not give a {c.group.name}: field {bad[0].path} would be {bad[1]}, "
                      f"not {bad[0].type}", span,
                      hint="a group operation must keep every field's type; combine single fields instead")


def tree_unary(ctx: Ctx, prim: str, tree, span: Span | None, **params) -> Tree:
    """A one-operand primitive applied to every leaf (neg, exp, stop_gradient, ...)."""
    _no_task(tree, span)
    leaves = {p: ctx.tensor(ctx.emit(prim, [leaf], span, **params), span, f"{tree.desc}.{p}")
              for p, leaf in zip(tree.paths, tree.leaves)}
    return _result_tree(ctx, [tree], leaves, span, f"{prim}({tree.group.name})")


def tree_map(ctx: Ctx, fn, tree: Tree, span: Span | None, what: str) -> Tree:
    """fn(leaf) -> Tensor for every leaf, staying in the group."""
    leaves = {p: fn(leaf) for p, leaf in zip(tree.paths, tree.leaves)}
    return _result_tree(ctx, [tree], leaves, span, what)


def total(ctx: Ctx, parts: list[Tensor], span: Span | None) -> Tensor:
    """The sum of scalars, left to right."""
    acc = parts[0]
    for p in parts[1:]:
        acc = ctx.tensor(ctx.emit("add", [acc, p], span), span)
    return acc
