"""Algebraic folding: identities that AD produces in bulk.

  x * 1, 1 * x, x * ones, x + 0, x - 0, x / 1  -> x    (when the shape is unchanged)
  neg(neg(x)), stop_gradient(stop_gradient(x)) -> one op
  reshape/broadcast_to/sum_to to x's own shape, cast to x's own dtype -> x
  transpose(transpose(x)) with inverse perms -> x
  transpose(a @ b) -> transpose(b) @ transpose(a), when nothing else reads a @ b
      (reverse mode writes the adjoint of x^T @ y as the transpose of a
      product; computed directly, the product takes the matmul helpers'
      fast shape and the transposes fold into their operand order)
  x + zeros, zeros + x  (zeros from `full` with value 0) -> x   (accumulation folding)
  x * zeros, zeros * x -> zeros of the output shape; ops on literals alone -> literal
Each rewrite keeps types exactly, so the verifier still holds.
"""
from __future__ import annotations

import numpy as np

from metacc.ir.builder import Builder
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.prims import PRIMS
from metacc.ir.types import NUMPY_DTYPE, TensorType
from metacc.ir.walk import map_subfuncs, with_body, with_parts


def _is_lit(a, value) -> bool:
    return isinstance(a, Lit) and a.value == value


def fold(fn: Func) -> Func:
    zero_of: set[Var] = set()     # vars known to be all zeros (from full(0))
    one_of: set[Var] = set()      # vars known to be all ones (from full(1))
    defs: dict[Var, Eqn] = {}
    sub: dict[Var, object] = {}
    b = Builder(span=fn.span)
    b.ins = list(fn.ins)

    def read(a):
        while isinstance(a, Var) and a in sub:
            a = sub[a]
        return a

    uses = _use_counts(fn)
    for e in fn.eqns:
        ins = tuple(read(a) for a in e.ins)
        e = map_subfuncs(e, fold)
        params = e.params
        out = e.outs[0] if len(e.outs) == 1 else None
        if out is not None and _is_transposed_product(e.prim, ins, params, defs, uses):
            d = defs[ins[0]]
            new = Eqn("matmul", (_transposed(d.ins[1], defs, b, e.span), _transposed(d.ins[0], defs, b, e.span)),
                      e.outs, {}, e.span)
            b.eqns.append(new)
            defs[out] = new
            continue
        rep = _rewrite(e.prim, ins, params, out, zero_of, defs, one_of) if out is not None else None
        if rep is not None:
            if isinstance(rep, str) and rep == "zeros":
                new = Eqn("full", (), e.outs, {"shape": out.type.shape, "value": 0.0, "dtype": out.type.dtype},
                          e.span)
                b.eqns.append(new)
                zero_of.add(out)
                defs[out] = new
            else:
                sub[out] = rep
            continue
        e = with_parts(e, ins)
        if e.prim == "full" and e.params["value"] == 0:
            zero_of.add(e.outs[0])
        if e.prim == "full" and e.params["value"] == 1:
            one_of.add(e.outs[0])
        for v in e.outs:
            defs[v] = e
        b.eqns.append(e)
    return with_body(fn, b.eqns, [read(a) for a in fn.outs])


def _use_counts(fn: Func) -> dict:
    n: dict = {}
    for e in fn.eqns:
        for a in e.ins:
            if isinstance(a, Var):
                n[a] = n.get(a, 0) + 1
    for a in fn.outs:
        if isinstance(a, Var):
            n[a] = n.get(a, 0) + 1
    return n


def _is_transposed_product(prim, ins, params, defs, uses) -> bool:
    if prim != "transpose" or params["perm"] != (1, 0) or not isinstance(ins[0], Var):
        return False
    d = defs.get(ins[0])
    return (d is not None and d.prim == "matmul" and not d.params and uses.get(ins[0], 0) == 1
            and all(a.type.rank == 2 for a in d.ins))


def _transposed(x: Var, defs, b: Builder, span) -> Var:
    """x^T: the operand of x's own transpose when it is one, else a new transpose."""
    d = defs.get(x)
    if d is not None and d.prim == "transpose" and d.params["perm"] == (1, 0):
        return d.ins[0]
    t = Var(x.name + "_t", TensorType(x.type.dtype, (x.type.shape[1], x.type.shape[0])))
    e = Eqn("transpose", (x,), (t,), {"perm": (1, 0)}, span)
    b.eqns.append(e)
    defs[t] = e
    return t


def _same(a, out) -> bool:
    return a.type == out.type


def _rewrite(prim, ins, params, out, zero_of, defs, one_of=frozenset()):
    if ins and all(isinstance(a, Lit) for a in ins) and prim in ("add", "sub", "mul", "div", "neg", "exp",
                                                                 "log", "sqrt", "ipow", "maximum", "minimum"):
        with np.errstate(all="ignore"):
            val = PRIMS[prim].impl(*[NUMPY_DTYPE[a.type.dtype](a.value) for a in ins], **params, dims={})
        return Lit(float(val), out.type)
    if prim == "mul":
        x, y = ins
        if (_is_lit(y, 1.0) or (isinstance(y, Var) and y in one_of)) and _same(x, out):
            return x
        if (_is_lit(x, 1.0) or (isinstance(x, Var) and x in one_of)) and _same(y, out):
            return y
        if (x in zero_of if isinstance(x, Var) else False) or (y in zero_of if isinstance(y, Var) else False):
            return "zeros"
    if prim == "div" and _is_lit(ins[1], 1.0) and _same(ins[0], out):
        return ins[0]
    if prim in ("add", "sub"):
        x, y = ins
        if (_is_lit(y, 0.0) or (isinstance(y, Var) and y in zero_of)) and _same(x, out):
            return x
        if prim == "add" and (_is_lit(x, 0.0) or (isinstance(x, Var) and x in zero_of)) and _same(y, out):
            return y
    if prim in ("reshape", "broadcast_to", "sum_to") and _same(ins[0], out):
        return ins[0]
    if prim == "cast" and _same(ins[0], out):
        return ins[0]
    if prim in ("neg", "stop_gradient") and isinstance(ins[0], Var):
        d = defs.get(ins[0])
        if d is not None and d.prim == prim:
            return d.ins[0] if prim == "neg" else ins[0]
    if prim == "transpose" and isinstance(ins[0], Var):
        d = defs.get(ins[0])
        if d is not None and d.prim == "transpose":
            composed = tuple(d.params["perm"][i] for i in params["perm"])
            if composed == tuple(range(len(composed))):
                return d.ins[0]
    if prim in ("transpose", "reshape", "broadcast_to", "sum_to", "neg", "slice", "pad", "reduce_sum") \
            and isinstance(ins[0], Var) and ins[0] in zero_of:
        return "zeros"
    return None
