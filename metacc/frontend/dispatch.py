"""Lowering by kind of node: the one entry point for an expression, and the tables behind it.

The front end lowers by mutual recursion (a call's arguments are expressions, a
loop's body statements, a grad(...) holds an expression). Each module that owns
a kind of node registers its function here when imported, so the modules that
need to lower a sub-expression import this module, not each other: exprs.py
(names, fields, operators), calls.py (calls), indexing.py (x[i]),
differentiate.py (argmin), stmts.py (assignments), loops.py (repeat).
metacc/frontend/lowering.py imports them all.
"""
from __future__ import annotations

from typing import Callable

from metacc.errors import MetaccError
from metacc.frontend.values import Results, kind_text

# node type -> lower(ctx, node): the value of an expression
EXPRESSIONS: dict[type, Callable] = {}
# node type -> lower(ctx, stmt): a statement run for its effect on the environment
STATEMENTS: dict[type, Callable] = {}


def lower_expr(ctx, node, results: bool = False) -> object:
    """The value of an expression. `results`: a call of a function with a tuple result may
    give its Results whole (where they are destructured or returned), else that is an error."""
    rule = EXPRESSIONS.get(type(node))
    if rule is None:
        raise MetaccError(f"unexpected {type(node).__name__}", getattr(node, "span", None))
    value = rule(ctx, node)
    if isinstance(value, Results) and not results:
        raise results_needs_destructuring(value, node.span)
    return value


def results_needs_destructuring(value: Results, span) -> MetaccError:
    """A call of a function with a tuple result, used where one value is needed."""
    names = ", ".join(value.names)
    return MetaccError(f"`{value.desc}` returns {len(value.values)} results ({names}): destructure them first",
                       span, found=kind_text(value),
                       hint=f"assign them to names, `{names} = {value.desc}`, then use one of them "
                            "(results are not indexed: g(...)[0] is not supported)")
