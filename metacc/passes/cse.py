"""Common-subexpression elimination: one equation per distinct computation.

Two equations are the same when they apply the same primitive with the same
params to the same atoms. Sub-functions compare by identity and are CSE'd
inside. Reverse mode recomputes partials (tanh's 1 - y^2 in two places, a
transpose of the same weight); this pass keeps one.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.walk import map_subfuncs, subst, with_body, with_parts


def _key_param(v):
    if isinstance(v, Func):
        return ("func", id(v))
    if isinstance(v, dict):
        return tuple(sorted((k, _key_param(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_key_param(x) for x in v)
    return v


def cse(fn: Func) -> Func:
    seen: dict = {}
    sub: dict[Var, Var] = {}
    eqns: list[Eqn] = []
    for e in fn.eqns:
        e = map_subfuncs(with_parts(e, [subst(a, sub) for a in e.ins]), cse)
        if e.prim not in ("rng_uniform", "rng_normal"):
            key = (e.prim, tuple(("v", id(a)) if isinstance(a, Var) else ("l", a.value, a.type) for a in e.ins),
                   _key_param(e.params))
            prev = seen.get(key)
            if prev is not None:
                sub.update(zip(e.outs, prev.outs))
                continue
            seen[key] = e
        eqns.append(e)
    return with_body(fn, eqns, [subst(a, sub) for a in fn.outs])


__all__ = ["cse", "Lit"]
