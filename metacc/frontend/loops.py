"""`repeat K @annotations { body }` -> `scan` equations.

The carried values are the variables defined before the loop that the body
assigns (parameter groups carry all their leaves). The body becomes a closed
sub-function: inputs = the outer values it uses (consts, captured on use) and
then the carry; outputs = the carry after one step. Variables first assigned
inside the body are local to it.

Annotations, exactly:
  @first_order        every grad(...) result in the body is wrapped in
                      stop_gradient: inner gradients are constants (FOMAML)
  @truncate(T)        the first K-T steps are first-order, the last T are
                      differentiated: two scans (one full scan when T >= K)
  @checkpoint(every=c) / @checkpoint(snapshots=s)
                      a `checkpoint` param on the scan telling the AD
                      transform how to trade memory for recomputation; the
                      values and gradients are unchanged
Every scan gets a `label` param naming the source line, for explanations.

`repeat K as k`: one more carried value counts the steps (metacc.frontend.loop_index),
and the body sees k = i64(count); @truncate's second scan continues the count of the first.
"""
from __future__ import annotations

from dataclasses import dataclass

from metacc.errors import MetaccError, Span, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend import loop_index
from metacc.frontend.context import Ctx, Poisoned
from metacc.frontend.convert import MAX_SIZE, as_tensor, static_int
from metacc.frontend.frame import Frame
from metacc.frontend.stmts import name_value, run_statements
from metacc.frontend.values import DimValue, Number, Tensor, kind_text, leaf_paths, leaves, rebuild, structure

ANNOTATIONS = ("first_order", "truncate", "checkpoint")


@dataclass(frozen=True)
class Plan:
    first_order: bool = False
    truncate: int | None = None
    checkpoint: dict | None = None


@dataclass(frozen=True)
class Segment:
    length: int
    first_order: bool
    note: str            # what this scan is, for the label


def _annotations(ctx: Ctx, node: A.Repeat, k: int) -> Plan:
    seen: dict[str, Span] = {}
    first_order, truncate, checkpoint = False, None, None
    for a in node.annotations:
        if a.name not in ANNOTATIONS:
            raise MetaccError(f"unknown annotation @{a.name}", a.span, expected=", ".join("@" + n for n in ANNOTATIONS),
                              found="@" + a.name, hint=did_you_mean(a.name, ANNOTATIONS))
        if a.name in seen:
            raise MetaccError(f"@{a.name} is given twice", a.span, notes=[("first given here", seen[a.name])])
        seen[a.name] = a.span
        if a.name == "first_order":
            if a.args or a.kwargs:
                raise MetaccError("@first_order takes no arguments", a.span)
            first_order = True
        elif a.name == "truncate":
            if len(a.args) != 1 or a.kwargs:
                raise MetaccError("@truncate takes one argument: how many final steps are differentiated",
                                  a.span, expected="@truncate(T)")
            truncate = static_int(ctx, a.args[0], "the argument of @truncate")
            if truncate < 0:
                raise MetaccError(f"@truncate({truncate}) needs a count of 0 or more", a.span)
        else:
            if a.args or len(a.kwargs) != 1 or a.kwargs[0].name not in ("every", "snapshots"):
                raise MetaccError("@checkpoint takes one of every=c or snapshots=s", a.span,
                                  expected="@checkpoint(every=10) or @checkpoint(snapshots=4)",
                                  hint="every=c stores the carried values every c steps and recomputes the "
                                       "rest; snapshots=s keeps at most s stored states per level")
            kw = a.kwargs[0]
            n = static_int(ctx, kw.value, f"{kw.name} of @checkpoint")
            if n < 1:
                raise MetaccError(f"@checkpoint({kw.name}={n}) needs a positive count", kw.span)
            if kw.name == "snapshots" and n == 1 and k > 1:
                # one stored state per level splits nothing: the recomputed segment is the whole
                # loop again, and an O(1)-memory reverse sweep would recompute it K times over
                raise MetaccError(f"@checkpoint(snapshots=1) cannot checkpoint a loop of {k} steps", kw.span,
                                  hint="snapshots=s splits the loop into s stored segments per level, so it "
                                       "needs s >= 2 (e.g. snapshots=2); every=c stores one state every c steps")
            if kw.name == "snapshots":
                levels = snapshot_levels(k, n)
                if levels > MAX_CHECKPOINT_LEVELS:
                    # each level is one more loop nested in the generated code and one more
                    # recomputation sweep in every derivative of it (Python itself refuses
                    # more than 20 nested blocks)
                    fewer = next(s for s in range(n + 1, k + 1) if snapshot_levels(k, s) <= MAX_CHECKPOINT_LEVELS)
                    raise MetaccError(f"@checkpoint(snapshots={n}) over {k} steps nests {levels} levels of "
                                      f"recomputation; at most {MAX_CHECKPOINT_LEVELS} are compiled", kw.span,
                                      hint=f"use snapshots={fewer} or more, or every=c (one stored state every c "
                                           "steps, one level)")
            checkpoint = {kw.name: n}
    if first_order and truncate is not None:
        raise MetaccError("@first_order and @truncate together", seen["truncate"],
                          notes=[("@first_order is here", seen["first_order"])],
                          hint="@first_order already treats every step first-order; @truncate(T) differentiates "
                               "the last T steps. Keep one of them")
    return Plan(first_order, truncate, checkpoint)


# How many nested recomputation levels a snapshots=s schedule may make (metacc.ad.loops.segment
# splits a loop of K steps into s segments and recurses while a segment is longer than s):
# 10 levels cover K = 2^12 steps with s = 2 and K = 4^12 with s = 4.
MAX_CHECKPOINT_LEVELS = 10


def snapshot_levels(k: int, s: int) -> int:
    """The nesting depth of the segment loops metacc.ad.loops.segment builds for K steps."""
    levels, length = 0, k
    while s > 1:
        seg = -(-length // s)
        if seg <= s or seg >= length:
            break
        levels, length = levels + 1, seg
    return levels


def _segments(k: int, plan: Plan) -> list[Segment]:
    if plan.truncate is None:
        return [Segment(k, plan.first_order, "first-order" if plan.first_order else "")]
    t = plan.truncate
    if t >= k:
        return [Segment(k, False, f"truncate({t}) keeps all {k} steps")]
    if t == 0:
        return [Segment(k, True, "first-order: truncate(0)")]
    return [Segment(k - t, True, f"first-order part of truncate({t})"),
            Segment(t, False, f"differentiated part of truncate({t})")]


def lower_repeat(ctx: Ctx, node: A.Repeat) -> None:
    k = static_int(ctx, node.count, "the trip count of repeat")
    if not 1 <= k <= MAX_SIZE:
        raise MetaccError(f"repeat needs between 1 and {MAX_SIZE} steps, not {k}", node.count.span)
    plan = _annotations(ctx, node, k)
    loop_index.check_index_name(node)
    carried = [n for n in A.assigned_names(node.body) if ctx.env.lookup(n) is not None]
    if not carried:
        raise MetaccError("this repeat changes nothing outside its body", node.span,
                          hint="a loop carries the variables defined before it that its body assigns, "
                               "e.g. `p = theta` before `repeat 5 { p = p - ... }`")
    values = [_initial(ctx, n, node) for n in carried]
    index = loop_index.start_value() if node.index is not None else None
    for seg in _segments(k, plan):
        values, index = _scan(ctx, node, carried, values, seg, plan.checkpoint, index, k)
    for name, value in zip(carried, values):
        ctx.env.assign(name, value)


def _initial(ctx: Ctx, name: str, node: A.Repeat):
    value = ctx.lookup(name)
    if isinstance(value, (Number, DimValue)):
        # a number carried by a loop needs a dtype now: the function's float type (f32(0.0) picks another)
        return name_value(ctx, as_tensor(ctx, value, None, node.span, f"`{name}`"), name)
    if isinstance(value, Tensor) or hasattr(value, "leaves"):
        return value
    raise MetaccError(f"`{name}` is {kind_text(value)} and cannot be carried by a loop", node.span)


def _scan(ctx: Ctx, node: A.Repeat, names: list[str], values: list, seg: Segment, checkpoint, index, k: int):
    """One scan of the loop (two for @truncate); `index`: the loop index's value before it
    (None without `as k`). Returns the carried values and the index after it."""
    sub = Frame(ctx.frame, node.span)
    env = ctx.env.child()
    for name, value in zip(names, values):
        inputs = [Tensor(sub.input(_leaf_name(name, path), leaf.type), leaf.origin, leaf.desc)
                  for path, leaf in zip(leaf_paths(value), leaves(value))]
        env.assign(name, rebuild(value, inputs))
    body_ctx = ctx.but(frame=sub, env=env, first_order=ctx.first_order or seg.first_order)
    if index is not None:
        count = sub.input("step_count", loop_index.COUNT_TYPE)
        env.assign(node.index, loop_index.bind(body_ctx, count, node, k))
    before = ctx.unit.reporter.count
    run_statements(body_ctx, node.body, in_loop=True)
    if ctx.unit.reporter.count > before:
        raise Poisoned("repeat body")
    finals = [_final(body_ctx, name, value, node) for name, value in zip(names, values)]
    outs = [leaf.atom for v in finals for leaf in leaves(v)]
    if index is not None:
        outs.append(loop_index.step(body_ctx, count, node.span))
    body = sub.func("repeat_body" + ("_first_order" if seg.first_order else ""), outs, node.span, consts_first=True)
    consts = sub.captured_outer()
    init = [leaf.atom for v in values for leaf in leaves(v)] + ([index] if index is not None else [])
    label = f"repeat at {node.span.short()}" + (f" ({seg.note})" if seg.note else "")
    params = dict(body=body, length=seg.length, n_consts=len(consts), n_carry=len(init), reverse=False, label=label)
    if checkpoint:
        params["checkpoint"] = dict(checkpoint)
    # the carries leave the loop under the names of the values they carry (`p.w1`)
    out_names = [_leaf_name(name, path) for name, value in zip(names, values) for path in leaf_paths(value)]
    out_names += ["step_count"] if index is not None else []
    results = ctx.frame.emit("scan", consts + init, node.span, names=out_names, **params)
    new_values, i = [], 0
    for name, value in zip(names, values):
        n = len(leaves(value))
        new_leaves = []
        for atom in results[i:i + n]:
            new_leaves.append(Tensor(atom, node.span, atom.name))
        new_values.append(rebuild(value, new_leaves, origin=node.span, desc=name))
        i += n
    return new_values, (results[i] if index is not None else None)


def _leaf_name(name: str, path: str) -> str:
    return f"{name}.{path}" if path else name


def _final(ctx: Ctx, name: str, before, node: A.Repeat):
    after = ctx.lookup(name)
    if isinstance(after, (Number, DimValue)) and isinstance(before, Tensor) and before.type.rank == 0:
        after = as_tensor(ctx, after, before.type.dtype, node.span, f"`{name}`")
    if structure(after) != structure(before):
        hint = None
        if isinstance(after, Tensor) and isinstance(before, Tensor) and after.type.shape == before.type.shape:
            hint = f"cast it with {before.type.dtype}(...) or initialise it as {after.type.dtype}(...) before the loop"
        raise MetaccError(f"`{name}` is carried by this loop but its type changes from {kind_text(before)} "
                          f"to {kind_text(after)} in one step", after.origin or node.span,
                          notes=[("the loop is here", node.span)], expected=kind_text(before),
                          found=kind_text(after), hint=hint or "a carried value keeps its type from step to step")
    return after
