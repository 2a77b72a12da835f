"""The transforms of a whole function: jvp_func, vjp_func, grad_func.

Each expands the function's grad/argmin/call equations first (metacc.ad.expand),
then emits its forward (jvp.py) or forward-and-backward sweeps (vjp.py) into a
new function. They sit above expand, which itself emits backward sweeps
(a grad(...) inside the program), so that jvp.py and vjp.py need not import it.
"""
from __future__ import annotations

from metacc.ad.expand import expand
from metacc.ad.jvp import jvp_inline
from metacc.ad.util import materialize
from metacc.ad.vjp import check_connected_inputs, float_inputs, vjp_inline
from metacc.errors import InternalError
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Lit, Var


def jvp_func(fn: Func, wrt=None, name: str | None = None) -> Func:
    """ins = fn.ins + tangents of the wrt inputs; outs = fn.outs + tangents of the float outputs
    (not of the last fn.n_aux outputs, which are auxiliary: never differentiated)."""
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


def vjp_func(fn: Func, wrt=None, name: str | None = None, out_mask=None) -> Func:
    """ins = fn.ins + one cotangent per float output (where out_mask allows);
    outs = fn.outs + cotangents of the wrt inputs (zeros materialised)."""
    fn = expand(fn)
    wrt = float_inputs(fn) if wrt is None else list(wrt)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    out_bars = []
    for k, a in enumerate(fn.outs):
        take = a.type.is_float and (out_mask is None or out_mask[k])
        out_bars.append(b.input(_nm(a) + "_bar", a.type) if take else None)
    outs, in_bars = vjp_inline(b, fn, args, out_bars, wrt)
    in_bars = [materialize(b, g, fn.ins[i].type, name=fn.ins[i].name + "_bar") for g, i in zip(in_bars, wrt)]
    return b.build(name or fn.name + "_vjp", list(outs) + in_bars)


def grad_func(fn: Func, wrt=None, name: str | None = None, check_connected: bool = True) -> Func:
    """Value and gradient: fn has one float scalar output (then its fn.n_aux auxiliary ones);
    outs = (value, *aux, *grads of wrt)."""
    n_aux = fn.n_aux        # auxiliary outputs: returned after the value, never differentiated
    fn = expand(fn)
    if len(fn.outs) - n_aux != 1 or fn.outs[0].type.rank != 0 or not fn.outs[0].type.is_float:
        raise InternalError(f"grad_func needs a scalar float function, {fn.name} returns "
                            f"{', '.join(map(str, fn.out_types))}")
    wrt = float_inputs(fn) if wrt is None else list(wrt)
    if check_connected:
        check_connected_inputs(Func(fn.name, fn.ins, fn.eqns, fn.outs[:1], fn.span), wrt,
                               what=f"the first result of {fn.name}" if n_aux else f"the value of {fn.name}",
                               callable_name=fn.name)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    seed = Lit(1.0, fn.outs[0].type)
    outs, in_bars = vjp_inline(b, fn, args, [seed] + [None] * n_aux, wrt)
    in_bars = [materialize(b, g, fn.ins[i].type, name=fn.ins[i].name + "_bar") for g, i in zip(in_bars, wrt)]
    return b.build(name or fn.name + "_grad", list(outs) + in_bars)


def _nm(a) -> str:
    return a.name if isinstance(a, Var) else "out"
