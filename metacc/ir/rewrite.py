"""Rebuild a function equation by equation, replacing some equations.

    rewrite(fn, replace, recurse)

`replace(b, eqn, ins)` returns the new outputs of an equation it rewrites
(emitting whatever it needs into the builder `b`), or None to keep it;
kept equations have their sub-functions mapped through `recurse`. The
expansion of grad/argmin and the lowering of CG solves are both this walk.
"""
from __future__ import annotations

from typing import Callable

from metacc.ir.builder import Builder
from metacc.ir.core import Eqn, Func, Var


def rewrite(fn: Func, replace: Callable[[Builder, Eqn, list], list | None],
            recurse: Callable[[Func], Func]) -> Func:
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    env: dict = dict(zip(fn.ins, args))

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        outs = replace(b, e, ins)
        if outs is None:
            params = {k: (recurse(v) if isinstance(v, Func) else v) for k, v in e.params.items()}
            outs = b.emit(e.prim, *ins, names=[v.name for v in e.outs], span=e.span, **params)
        env.update(zip(e.outs, outs))
    return b.build(fn.name, [read(a) for a in fn.outs], span=fn.span)
