"""Common-subexpression elimination: one equation per distinct computation.

Two equations are the same when they apply the same primitive with the same
params to the same atoms. Sub-functions compare by identity and are CSE'd
inside. Reverse mode recomputes partials (tanh's 1 - y^2 in two places, a
transpose of the same weight); this pass keeps one.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Lit, Var


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
    changed = False
    for e in fn.eqns:
        ins = tuple(sub.get(a, a) if isinstance(a, Var) else a for a in e.ins)
        params = e.params
        new_subs = {k: cse(v) for k, v in params.items() if isinstance(v, Func)}
        if any(new_subs[k] is not params[k] for k in new_subs):
            params = {**params, **new_subs}
        if ins != e.ins or params is not e.params:
            e = Eqn(e.prim, ins, e.outs, params, e.span)
            changed = True
        if e.prim not in ("rng_uniform", "rng_normal"):
            key = (e.prim, tuple(("v", id(a)) if isinstance(a, Var) else ("l", a.value, a.type) for a in ins),
                   _key_param(params))
            prev = seen.get(key)
            if prev is not None:
                sub.update(zip(e.outs, prev.outs))
                changed = True
                continue
            seen[key] = e
        eqns.append(e)
    if not changed:
        return fn
    outs = tuple(sub.get(a, a) if isinstance(a, Var) else a for a in fn.outs)
    return Func(fn.name, fn.ins, tuple(eqns), outs, fn.span)


__all__ = ["cse", "Lit"]
