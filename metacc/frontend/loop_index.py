"""The step index of `repeat K as k { ... }`, and tensors indexed by it (`alpha[k]`).

`k` is carried by the loop's scan like any other value, so it is the loop
counter under every lowering of the loop (@truncate's two scans continue one
count, @checkpoint's segments recompute it, derivative loops carry it without
a tangent: it depends on no input). The IR has no integer arithmetic, so the
count is carried as an f64 scalar (exact to 2^53 steps), 0.0 then +1.0 per step,
and the body sees `k = i64(count)`. The unit remembers which IR values are loop indices and their trip
count, so that `alpha[k]` can be checked against alpha's size when compiling.

An index by `k` selects with a one-hot mask, `sum(x * (iota(D) == k))` along
the axis: ordinary primitives, so every derivative kind (and derivatives of
derivatives) comes from their rules. It costs D multiply-adds per element
selected, which is nothing for per-step rates and schedules.
"""
from __future__ import annotations

from metacc.errors import MetaccError, Span
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx, text_of
from metacc.frontend.values import Tensor
from metacc.ir.core import Lit
from metacc.ir.types import TensorType

INDEX_TYPE = TensorType("i64", ())
COUNT_TYPE = TensorType("f64", ())


def check_index_name(node: A.Repeat) -> None:
    """The body may read `k`, never assign it (its value is the step number)."""
    if node.index is None:
        return
    if node.index in A.assigned_names(node.body):
        raise MetaccError(f"the loop index `{node.index}` is assigned in the body of its loop", node.index_span,
                          hint=f"`{node.index}` counts the steps (0 to K-1); compute from it under another "
                               f"name, e.g. `rate = 0.5 ^ f32({node.index})`")


def start_value() -> Lit:
    return Lit(0.0, COUNT_TYPE)


def bind(ctx: Ctx, count, node: A.Repeat, trip_count: int) -> Tensor:
    """The index's value in the body (count: the scan body's input carrying it)."""
    atom = ctx.emit("cast", [count], node.index_span, name=node.index, dtype="i64")
    ctx.unit.loop_indices[atom] = trip_count
    return Tensor(atom, node.index_span, node.index)


def step(ctx: Ctx, count, span: Span):
    return ctx.emit("add", [count, Lit(1.0, COUNT_TYPE)], span, name="step_count")


def trip_count(ctx: Ctx, value) -> int | None:
    """K when value is the index of a `repeat K as k` (k itself, or a name bound to it)."""
    if isinstance(value, Tensor):
        return ctx.unit.loop_indices.get(value.atom)
    return None


def take(ctx: Ctx, x: Tensor, axis: int, index: Tensor, count: int, sub_span: Span, span: Span) -> Tensor:
    """x with `axis` replaced by its element at the loop index (kept as size 1)."""
    size = x.type.shape[axis]
    if isinstance(size, str):
        raise MetaccError(f"cannot index axis {axis} of `{text_of(span)}` by the loop index: its size {size} "
                          "is symbolic", sub_span, hint="index a fixed-size axis, e.g. `alpha: f32[K]`")
    if size < count:
        raise MetaccError(f"the loop index `{index.desc}` runs to {count - 1}, but axis {axis} of "
                          f"`{text_of(span)}` has size {size}", sub_span,
                          expected=f"an axis of size {count} or more", found=str(x.type),
                          hint=f"declare one entry per step, e.g. `{x.type.dtype}[{count}]`")
    positions = ctx.emit("iota", [], span, n=size, dtype="i64")
    hit = ctx.emit("eq", [positions, index.atom], span)
    mask = ctx.emit("cast", [hit], span, dtype=x.type.dtype)
    shape = tuple(size if a == axis else 1 for a in range(x.type.rank))
    if x.type.rank > 1:
        mask = ctx.emit("reshape", [mask], span, shape=shape)
    picked = ctx.emit("mul", [x.atom, mask], span)
    kept = ctx.emit("reduce_sum", [picked], span, axes=(axis,), keepdims=True)
    return ctx.tensor(kept, span)
