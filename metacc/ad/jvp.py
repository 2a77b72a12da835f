"""Forward mode: JVP rules, one per primitive, each emitting IR.

A rule receives the builder, the primal inputs and outputs (already emitted),
the input tangents (None = symbolic zero) and the eqn's params, and returns
the output tangents. Elementwise primitives share the partials table
(metacc.ad.partials) with reverse mode. Loops and calls are in loops.py.
"""
from __future__ import annotations

from metacc.ad.partials import MINUS_ONE, ONE, partials
from metacc.ad.util import add_any, broadcast, differentiable, materialize
from metacc.errors import InternalError
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Var
from metacc.ir.primitives.rulekit import max_mask  # noqa: F401  (today's name: metacc.ad.vjp imports it)
from metacc.ir.prims import PRIMS

JVP_RULES: dict = {}


def _elementwise(b, ins, outs, tans, prim, **params):
    out = outs[0]
    total = None
    for p, t in zip(partials(b, prim, ins, out, params), tans):
        if t is None or p is None:
            continue
        term = t if p == ONE else b.neg(t) if p == MINUS_ONE else b.mul(p, t)
        total = add_any(b, total, broadcast(b, term, out.type.shape))
    return [total]


def _from_partials(prim: str):
    return lambda b, ins, outs, tans, **prm: _elementwise(b, ins, outs, tans, prim, **prm)


def _no_derivative(b, ins, outs, tans, **_):
    return [None] * len(outs)


# derived from the declarations: partials (pointwise), a JVP rule, or none (integers, booleans,
# keys, creation); scan, call, argmin and cg_solve have control rules (metacc.ad.loops)
for _name, _prim in PRIMS.items():
    if _prim.partials is not None:
        JVP_RULES[_name] = _from_partials(_name)
    elif _prim.jvp is not None:
        JVP_RULES[_name] = _prim.jvp
    elif _prim.nondiff:
        JVP_RULES[_name] = _no_derivative


def jvp_inline(b: Builder, fn: Func, args, arg_tans) -> tuple[list, list]:
    """Emit fn's primal and tangent computation into b; returns (outs, out_tangents)."""
    from metacc.ad.loops import JVP_CONTROL
    env: dict = dict(zip(fn.ins, args))
    tan: dict = {v: t for v, t in zip(fn.ins, arg_tans) if t is not None and v.type.is_float}

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        in_tans = [tan.get(a) if differentiable(a) else None for a in e.ins]
        active = any(t is not None for t in in_tans)
        if active and e.prim in JVP_CONTROL:
            outs, out_tans = JVP_CONTROL[e.prim](b, e, ins, in_tans)
        else:
            outs = b.emit(e.prim, *ins, names=[v.name for v in e.outs], span=e.span, **e.params)
            out_tans = [None] * len(outs)
            if active:
                rule = JVP_RULES.get(e.prim)
                if rule is None:
                    raise InternalError(f"no JVP rule for primitive {e.prim!r}")
                mark = len(b.eqns)
                out_tans = rule(b, ins, list(outs), in_tans, **e.params)
                _name_new(b, mark, out_tans, outs, "_dot")
                b.cite(mark, e.span)
        env.update(zip(e.outs, outs))
        for v, t in zip(e.outs, out_tans):
            if t is not None and v.type.is_float:
                tan[v] = t
    outs = [read(a) for a in fn.outs]
    return outs, [tan.get(a) if isinstance(a, Var) else None for a in fn.outs]


def _name_new(b: Builder, mark: int, results, primals, suffix: str):
    """Give derivative values readable names (h_dot, w_bar)."""
    fresh = {v for eq in b.eqns[mark:] for v in eq.outs}
    for r, p in zip(results, primals):
        if isinstance(r, Var) and r in fresh and p is not None:
            r.name = p.name + suffix


def jvp_func(fn: Func, wrt=None, name: str | None = None) -> Func:
    """ins = fn.ins + tangents of the wrt inputs; outs = fn.outs + tangents of the float outputs
    (not of the last fn.n_aux outputs, which are auxiliary: never differentiated)."""
    from metacc.ad.expand import expand
    n_keep = len(fn.outs) - fn.n_aux
    fn = expand(fn)
    wrt = [i for i, v in enumerate(fn.ins) if v.type.is_float] if wrt is None else list(wrt)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    tans = [None] * len(args)
    for i in wrt:
        tans[i] = b.input(fn.ins[i].name + "_dot", fn.ins[i].type)
    outs, out_tans = jvp_inline(b, fn, args, tans)
    out_tans = [materialize(b, t, a.type, name=_nm(a) + "_dot")
                for t, a in zip(out_tans[:n_keep], outs) if a.type.is_float]
    return b.build(name or fn.name + "_jvp", list(outs) + out_tans)


def _nm(a) -> str:
    return a.name if isinstance(a, Var) else "out"
