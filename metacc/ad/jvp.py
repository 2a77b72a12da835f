"""Forward mode: push tangents through a function, one equation at a time.

Each equation's rule (metacc.ad.rules.JVP_RULES: the same table and signature
for every primitive, loops and calls included) emits its primal and the
tangents of its outputs. jvp_func (the whole function) is in transforms.py.
"""
from __future__ import annotations

from metacc.ad.rules import emit_primal, jvp_rule
from metacc.ad.util import differentiable
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Var


def jvp_inline(b: Builder, fn: Func, args, arg_tans) -> tuple[list, list]:
    """Emit fn's primal and tangent computation into b; returns (outs, out_tangents)."""
    env: dict = dict(zip(fn.ins, args))
    tan: dict = {v: t for v, t in zip(fn.ins, arg_tans) if t is not None and v.type.is_float}

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        in_tans = [tan.get(a) if differentiable(a) else None for a in e.ins]
        if any(t is not None for t in in_tans):
            mark = len(b.eqns)
            outs, out_tans = jvp_rule(e.prim)(b, e, ins, in_tans)
            out_tans = b.name_results(mark, out_tans, [v.name + "_dot" for v in e.outs])
            b.cite(mark, e.span)
        else:
            outs, out_tans = emit_primal(b, e, ins), [None] * len(e.outs)
        env.update(zip(e.outs, outs))
        for v, t in zip(e.outs, out_tans):
            if t is not None and v.type.is_float:
                tan[v] = t
    outs = [read(a) for a in fn.outs]
    return outs, [tan.get(a) if isinstance(a, Var) else None for a in fn.outs]
