"""Loop-invariant code motion: compute once what every iteration computes alike.

An equation in a scan body whose inputs are all loop constants (or literals,
or earlier invariant values) is moved before the loop, and its results
enter the body as new constants. Reverse-mode bodies are full of these
(transposes of the task data, seeds, zero accumulators).
"""
from __future__ import annotations

from metacc.ir.builder import Builder
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout, rebuilt
from metacc.ir.walk import map_subfuncs, with_body


def licm(fn: Func) -> Func:
    eqns: list[Eqn] = []
    for e in fn.eqns:
        e = map_subfuncs(e, licm)
        if e.prim == "scan" and e.params["length"] > 1:
            hoisted, e = _hoist(e)
            eqns += hoisted
        eqns.append(e)
    return with_body(fn, eqns)


def _hoist(e: Eqn):
    body: Func = e.params["body"]
    layout = ScanLayout.of(e)
    invariant: set[Var] = set(layout.consts(body.ins))
    moved: list[Eqn] = []
    kept: list[Eqn] = []
    for be in body.eqns:
        vars_in = [a for a in be.ins if isinstance(a, Var)]
        if all(a in invariant for a in vars_in) and not list(be.subfuncs()):
            moved.append(be)
            invariant.update(be.outs)
        else:
            kept.append(be)
    if not moved:
        return [], e
    # outside the loop: the body's constant inputs are the scan's constant operands
    outer_of: dict = dict(zip(layout.consts(body.ins), layout.consts(e.ins)))
    hoisted = []
    for be in moved:
        outs = tuple(Var(v.name, v.type) for v in be.outs)
        hoisted.append(Eqn(be.prim, tuple(outer_of.get(a, a) if isinstance(a, Var) else a for a in be.ins),
                           outs, be.params, be.span))
        outer_of.update(zip(be.outs, outs))
    # moved values the remaining body (or its outputs) still reads become new constants
    reads = {a for be in kept for a in be.ins if isinstance(a, Var)} | {a for a in body.outs if isinstance(a, Var)}
    new_consts = [v for be in moved for v in be.outs if v in reads]
    inner = {v: Var(v.name, v.type) for v in new_consts}
    ren = lambda a: inner.get(a, a) if isinstance(a, Var) else a  # noqa: E731
    consts, carry, xs = layout.split_ins(body.ins)
    new_body = Func(body.name, consts + tuple(inner[v] for v in new_consts) + carry + xs,
                    tuple(Eqn(be.prim, tuple(ren(a) for a in be.ins), be.outs, be.params, be.span) for be in kept),
                    tuple(ren(a) for a in body.outs), body.span)
    # the new constants go after the old ones, before the carry
    consts, carry, xs = layout.split_ins(e.ins)
    ins = consts + tuple(outer_of[v] for v in new_consts) + carry + xs
    return hoisted, rebuilt(e, ins, e.outs, new_body, n_consts=layout.n_consts + len(new_consts))


__all__ = ["licm", "Builder"]
