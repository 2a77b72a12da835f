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

# node type -> lower(ctx, node): the value of an expression
EXPRESSIONS: dict[type, Callable] = {}
# node type -> lower(ctx, stmt): a statement run for its effect on the environment
STATEMENTS: dict[type, Callable] = {}


def lower_expr(ctx, node) -> object:
    rule = EXPRESSIONS.get(type(node))
    if rule is None:
        raise MetaccError(f"unexpected {type(node).__name__}", getattr(node, "span", None))
    return rule(ctx, node)
