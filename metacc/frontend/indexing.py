"""Static indexing and slicing: `x[0:5, :]`, `x[:, 0]`, `x[-1]`; and `alpha[k]` by the
index of a `repeat K as k` loop (metacc.frontend.loop_index).

Bounds are compile-time whole numbers. Slices lower to the `slice` primitive;
an integer index is a one-element slice followed by a `reshape` that drops
the axis. A symbolic axis (size known only at call time) can only be taken
whole (`:`), because its bounds cannot be checked.
"""
from __future__ import annotations

from metacc.errors import MetaccError
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx, text_of
from metacc.frontend import loop_index
from metacc.frontend.convert import static_int
from metacc.frontend.values import Record, Tensor, Tree, kind_text


def _bound(ctx: Ctx, node, what: str):
    return None if node is None else static_int(ctx, node, what)


def lower_index(ctx: Ctx, node: A.Index) -> Tensor:
    from metacc.frontend.exprs import lower_expr
    x = lower_expr(ctx, node.obj)
    if not isinstance(x, Tensor):
        raise MetaccError(f"only tensors can be indexed, not {kind_text(x)}", node.span,
                          hint="params groups and tasks have fields: p.w1, t.support.x"
                          if isinstance(x, (Tree, Record)) else None)
    shape = x.type.shape
    if len(node.subscripts) > len(shape):
        raise MetaccError(f"too many indices: `{text_of(node.obj.span)}` is {x.type} (rank {len(shape)}), "
                          f"indexed with {len(node.subscripts)}", node.span)
    starts, stops, steps, drop = [], [], [], []
    by_index = []           # (axis, the loop index, its trip count, where it is written)
    subs = list(node.subscripts) + [None] * (len(shape) - len(node.subscripts))
    for axis, (dim, sub) in enumerate(zip(shape, subs)):
        if sub is None:
            starts.append(0), stops.append(dim), steps.append(1)
            continue
        if isinstance(sub, A.SliceExpr):
            a, b, s = (_bound(ctx, sub.start, "a slice bound"), _bound(ctx, sub.stop, "a slice bound"),
                       _bound(ctx, sub.step, "a slice step"))
            if s is not None and s < 1:
                raise MetaccError(f"a slice step must be positive, not {s}", sub.span)
            if isinstance(dim, str):
                if (a or 0) != 0 or b is not None or (s or 1) != 1:
                    raise MetaccError(f"axis {axis} of `{text_of(node.obj.span)}` has the symbolic size {dim}; "
                                      "it can only be taken whole", sub.span, expected=":",
                                      hint="sizes of symbolic axes are known only at call time; "
                                           "slice a fixed-size axis, or make this dim a number in the signature")
                starts.append(0), stops.append(dim), steps.append(1)
                continue
            start, stop, step = slice(a, b, s).indices(dim)
            if len(range(start, stop, step)) == 0:
                raise MetaccError(f"the slice selects nothing from an axis of size {dim}", sub.span)
            starts.append(start), stops.append(max(stop, start)), steps.append(step)
            continue
        index = ctx.lookup(sub.id) if isinstance(sub, A.Name) else None
        count = loop_index.trip_count(ctx, index)
        if count is not None:           # x[k]: the whole axis now, the element after the slice
            starts.append(0), stops.append(dim), steps.append(1)
            by_index.append((axis, index, count, sub.span))
            drop.append(axis)
            continue
        i = static_int(ctx, sub, "an index")
        if isinstance(dim, str):
            raise MetaccError(f"cannot index axis {axis} of `{text_of(node.obj.span)}`: its size {dim} is symbolic",
                              sub.span, hint="only fixed-size axes can be indexed by a number")
        if not -dim <= i < dim:
            raise MetaccError(f"index {i} is out of range for an axis of size {dim}", sub.span)
        i %= dim
        starts.append(i), stops.append(i + 1), steps.append(1)
        drop.append(axis)
    out = ctx.emit("slice", [x], node.span, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    for axis, index, count, span in by_index:
        out = loop_index.take(ctx, ctx.tensor(out, node.span), axis, index, count, span, node.span).atom
    if drop:
        kept = tuple(d for axis, d in enumerate(out.type.shape) if axis not in drop)
        out = ctx.emit("reshape", [out], node.span, shape=kept)
    return ctx.tensor(out, node.span)
