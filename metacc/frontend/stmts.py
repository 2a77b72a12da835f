"""Statements: assignment and `repeat` (return is handled by the function body).

A failing statement is reported and its targets become poison, so the rest of
the body is still checked without a cascade of follow-on errors.
"""
from __future__ import annotations

from dataclasses import replace

from metacc.errors import InternalError, MetaccError
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx, Poisoned, text_of
from metacc.frontend.dispatch import STATEMENTS, lower_expr
from metacc.frontend.values import POISON, Record, Results, Tensor, Tree, kind_text, rebuild


def run_statements(ctx: Ctx, stmts, in_loop: bool = False) -> None:
    for stmt in stmts:
        try:
            rule = STATEMENTS.get(type(stmt))
            if rule is not None:
                rule(ctx, stmt)
            elif isinstance(stmt, A.Repeat):
                raise InternalError("repeat has no lowering: import metacc.frontend.lowering")
            else:
                raise MetaccError("`return` inside a repeat body", stmt.span,
                                  hint="a repeat ends after its last step; return after the loop") if in_loop \
                    else MetaccError("unexpected `return`", stmt.span)
        except MetaccError as err:
            ctx.report(err)
            _poison(ctx, stmt)
        except Poisoned:
            _poison(ctx, stmt)


def _poison(ctx: Ctx, stmt) -> None:
    if isinstance(stmt, A.Assign):
        ctx.env.assign(stmt.target, POISON)
    elif isinstance(stmt, A.Destructure):
        for name in stmt.targets:
            ctx.env.assign(name, POISON)
    elif isinstance(stmt, A.Repeat):
        for name in A.assigned_names(stmt.body):
            if ctx.env.lookup(name) is not None:
                ctx.env.assign(name, POISON)


def lower_assign(ctx: Ctx, stmt: A.Assign | A.Destructure) -> None:
    if isinstance(stmt, A.Destructure):
        _destructure(ctx, stmt, lower_expr(ctx, stmt.value, results=True))
        return
    # a variable may shadow a dim name (`q = ...` next to a task dim q): variables are looked up first
    value = lower_expr(ctx, stmt.value)
    ctx.env.assign(stmt.target, name_value(ctx, value, stmt.target))


def _destructure(ctx: Ctx, stmt: A.Destructure, value) -> None:
    """`a, b = g(...)`: one name per result of a function with a tuple result."""
    seen: dict[str, object] = {}
    for name, span in zip(stmt.targets, stmt.target_spans):
        if name in seen and name != "_":          # `_` marks a result not used: it may repeat
            raise MetaccError(f"`{name}` is assigned twice in one destructuring", span,
                              notes=[("first here", seen[name])], hint="give each result its own name")
        seen[name] = span
    if not isinstance(value, Results):
        raise MetaccError(f"tuple assignment is not supported for one value: `{text_of(stmt.value.span)}` is "
                          f"{kind_text(value)}", stmt.comma_span,
                          hint="assign one name per statement: `a = ...` then `b = ...`; `a, b = g(...)` takes "
                               "apart the results of a function declared `-> (a: f32, b: f32)`")
    if len(value.values) != len(stmt.targets):
        raise MetaccError(f"`{value.desc}` returns {len(value.values)} results ({', '.join(value.names)}), "
                          f"but {len(stmt.targets)} names are assigned", stmt.target_spans[0],
                          expected=", ".join(value.names), found=", ".join(stmt.targets),
                          hint="name every result; a name you do not use, such as `_`, is fine")
    for name, v in zip(stmt.targets, value.values):
        ctx.env.assign(name, name_value(ctx, v, name))


def name_value(ctx: Ctx, value, name: str):
    """Give the vars of a freshly computed value the source name (`h`, `p.w1`)."""
    if isinstance(value, (Tensor, Tree, Record)):
        paths = ("",) if isinstance(value, Tensor) else value.paths
        new = []
        for path, leaf in zip(paths, value.leaves if not isinstance(value, Tensor) else (value,)):
            full = f"{name}.{path}" if path else name
            new.append(Tensor(ctx.frame.name(leaf.atom, full), leaf.origin, full))
        return rebuild(value, new, desc=name)
    if hasattr(value, "desc"):
        return replace(value, desc=name)
    return value


STATEMENTS[A.Assign] = lower_assign
STATEMENTS[A.Destructure] = lower_assign
