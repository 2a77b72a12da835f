"""The traversal every pass shares: reach every equation, substitute atoms, rebuild only what changed.

    all_eqns(fn)               every equation of fn and of its sub-functions (scan bodies,
                               call/argmin/grad functions), each before its own sub-functions
    any_eqn(fn, pred)          whether some equation anywhere satisfies pred
    subst(a, sub)              an atom through a substitution {Var: atom}
    map_subfuncs(e, f)         e with each sub-function mapped through f
    with_parts(e, ins, params) e with new operands/params
    with_body(fn, eqns, outs)  fn with new equations/outputs

The three rebuilders return the very same object when nothing differs (by
identity, element by element), so a pass that rewrote nothing returns its
input: callers memoize by identity and the pass driver detects a fixpoint by it.
"""
from __future__ import annotations

from typing import Callable, Iterator

from metacc.ir.core import Eqn, Func, Var


def all_eqns(fn: Func) -> Iterator[Eqn]:
    for e in fn.eqns:
        yield e
        for s in e.subfuncs():
            yield from all_eqns(s)


def any_eqn(fn: Func, pred: Callable[[Eqn], bool]) -> bool:
    return any(pred(e) for e in all_eqns(fn))


def subst(a, sub: dict):
    return sub.get(a, a) if isinstance(a, Var) else a


def _same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(x is y for x, y in zip(xs, ys))


def map_subfuncs(e: Eqn, f: Callable[[Func], Func]) -> Eqn:
    new = {k: f(v) for k, v in e.params.items() if isinstance(v, Func)}
    if all(new[k] is e.params[k] for k in new):
        return e
    return Eqn(e.prim, e.ins, e.outs, {**e.params, **new}, e.span)


def with_parts(e: Eqn, ins=None, params: dict | None = None) -> Eqn:
    ins = e.ins if ins is None else tuple(ins)
    params = e.params if params is None else params
    if _same(ins, e.ins) and (params is e.params or (params.keys() == e.params.keys()
                                                     and all(params[k] is e.params[k] for k in params))):
        return e
    return Eqn(e.prim, ins, e.outs, params, e.span)


def with_body(fn: Func, eqns=None, outs=None) -> Func:
    eqns = fn.eqns if eqns is None else tuple(eqns)
    outs = fn.outs if outs is None else tuple(outs)
    if _same(eqns, fn.eqns) and _same(outs, fn.outs):
        return fn
    return Func(fn.name, fn.ins, eqns, outs, fn.span)
