"""Matmuls with an inner dimension of 1 become broadcast multiplies.

`a[m, 1] @ b[1, n]` is the outer product `a * b` under NumPy broadcasting:
one multiply per element and no sum, so the two agree to the last bit (the
matmul helper's fused multiply-add onto zero rounds once, as a multiply does).
The adjoint code of a narrow layer is full of them: P1's `x @ w1` and its
adjoint `g @ transpose(w3)` run 27 times per task at K = 5. As helper calls
each cost more in the call than in the 400 multiplies; as multiplies they
join the loop nest of their neighbours (`relu(x @ w1 + b1)` becomes one pass),
and a transposed operand is read through its index like any other.

A transpose of a matrix with a unit dimension ([1, n] -> [n, 1]) keeps its
elements in the same order, so it becomes a reshape, which costs no code:
the multiply reads the operand where it already is, rather than a nest
first copying it out.

A back-end pass: the `simplified` IR keeps the user's matmul, and the
reference interpreter, which runs that IR, checks the rewrite.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func
from metacc.ir.walk import map_subfuncs, with_body


def outer_products(fn: Func) -> Func:
    eqns = []
    for e in fn.eqns:
        e = map_subfuncs(e, outer_products)
        if e.prim == "matmul" and e.ins[0].type.shape[1] == 1:
            e = Eqn("mul", e.ins, e.outs, {}, e.span)
        elif e.prim == "transpose" and e.params["perm"] == (1, 0) and 1 in e.ins[0].type.shape:
            e = Eqn("reshape", e.ins, e.outs, {"shape": e.outs[0].type.shape}, e.span)
        eqns.append(e)
    return with_body(fn, eqns)
