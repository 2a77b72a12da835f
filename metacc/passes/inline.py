"""Inline every `call` before lowering.

A call's value is its callee's body with the arguments substituted (`remat`
only matters to the AD transforms, which have already run), and inlining lets
the fusion and buffer planning see across the call boundary. Scan bodies are
inlined into too, recursively.
"""
from __future__ import annotations

from dataclasses import replace

from metacc.errors import InternalError
from metacc.ir.core import Atom, Eqn, Func, Var
from metacc.ir.walk import any_eqn


def inline_calls(fn: Func) -> Func:
    if not _has_work(fn):
        return fn
    eqns: list[Eqn] = []
    env: dict[Var, Atom] = {}

    def sub(a):
        return env.get(a, a) if isinstance(a, Var) else a

    for e in fn.eqns:
        ins = tuple(sub(a) for a in e.ins)
        if e.prim == "call":
            callee = inline_calls(e.params["fn"])
            inner: dict[Var, Atom] = dict(zip(callee.ins, ins))
            for ce in callee.eqns:
                outs = tuple(Var(v.name, v.type) for v in ce.outs)
                inner.update(zip(ce.outs, outs))
                eqns.append(Eqn(ce.prim, tuple(inner.get(a, a) if isinstance(a, Var) else a for a in ce.ins),
                                outs, ce.params, ce.span or e.span))
            for v, a in zip(e.outs, callee.outs):
                env[v] = inner.get(a, a) if isinstance(a, Var) else a
            continue
        if e.prim in ("grad", "argmin"):
            raise InternalError(f"lowering needs expanded IR: run metacc.ad.expand before lowering "
                                f"(found a {e.prim} equation in {fn.name})")
        params = e.params
        if e.prim == "scan":
            params = dict(params, body=inline_calls(params["body"]))
        eqns.append(Eqn(e.prim, ins, e.outs, params, e.span))
    return replace(fn, eqns=tuple(eqns), outs=tuple(sub(a) for a in fn.outs))


def _has_work(fn: Func) -> bool:
    return any_eqn(fn, lambda e: e.prim in ("call", "grad", "argmin"))
