"""Loop carries that never change become loop constants.

A carry whose body returns it unchanged leaves the loop with its initial
value: uses of that output read the initial value instead, and the body gets
it as a constant. The reverse loop of a first-order inner loop is the common
case (the cotangent of the adapted weights passes through every step
untouched); once its carries are gone, dead-code elimination drops the loop.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout, rebuilt
from metacc.ir.walk import map_subfuncs, subst, with_body, with_parts


def passthrough(fn: Func) -> Func:
    sub: dict[Var, object] = {}
    eqns: list[Eqn] = []
    for e in fn.eqns:
        e = map_subfuncs(with_parts(e, [subst(a, sub) for a in e.ins]), passthrough)
        if e.prim == "scan":
            e, found = _constant_carries(e)
            sub.update(found)
        eqns.append(e)
    return with_body(fn, eqns, [subst(a, sub) for a in fn.outs])


def _constant_carries(e: Eqn):
    body: Func = e.params["body"]
    layout = ScanLayout.of(e)
    nc, nk = layout.n_consts, layout.n_carry
    fixed = [j for j in range(nk) if body.outs[j] is body.ins[layout.carry_in(j)]]
    if not fixed or e.params["length"] < 1:
        return e, {}
    keep = [j for j in range(nk) if j not in fixed]
    # the carries passed through unchanged become constants (after the others)
    order = list(range(nc)) + [nc + j for j in fixed] + [nc + j for j in keep] + list(range(nc + nk, len(body.ins)))
    _, ys = layout.split_outs(body.outs)
    new_body = Func(body.name, tuple(body.ins[i] for i in order), body.eqns,
                    tuple(body.outs[j] for j in keep) + ys, body.span)
    new_ins = tuple(e.ins[i] for i in order)
    new_outs = tuple(e.outs[j] for j in keep) + layout.split_outs(e.outs)[1]
    found = {e.outs[j]: e.ins[layout.carry_in(j)] for j in fixed}
    return rebuilt(e, new_ins, new_outs, new_body, n_consts=nc + len(fixed), n_carry=len(keep)), found
