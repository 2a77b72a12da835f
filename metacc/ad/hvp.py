"""Hessian-vector products as forward-over-reverse: the JVP of the gradient.

No Hessian is ever formed: the cost is a small constant times a gradient.
"""
from __future__ import annotations

from metacc.ad.transforms import grad_func, jvp_func
from metacc.ad.vjp import float_inputs
from metacc.ir.builder import Builder, inline
from metacc.ir.core import Func
from metacc.passes.dce import dce


def hvp_func(fn: Func, wrt=None, name: str | None = None, with_value: bool = False) -> Func:
    """ins = fn.ins + one direction v per wrt input; outs = (*grads, *H v), and
    the value last when `with_value` (for metacc.ad.poison)."""
    wrt = float_inputs(fn) if wrt is None else list(wrt)
    g = grad_func(fn, wrt)
    gj = jvp_func(g, wrt)       # ins: fn.ins + v; outs: value, grads, value_dot, grads_dot
    n = len(wrt)
    b = Builder(span=fn.span)
    names = [v.name for v in gj.ins]
    for j, i in enumerate(wrt):         # the directions: gj's inputs after fn's own
        names[len(fn.ins) + j] = "v_" + fn.ins[i].name.replace(".", "_")
    args = [b.input(n, v.type) for n, v in zip(names, gj.ins)]
    outs = inline(b, gj, args)
    results = list(outs[1:1 + n]) + list(outs[2 + n:2 + 2 * n]) + ([outs[0]] if with_value else [])
    # the products are named after what they differentiate; every result passes through (one var may be two)
    names = [None] * n + ["hv_" + fn.ins[i].name.replace(".", "_") for i in wrt] + [None] * int(with_value)
    return dce(b.build(name or fn.name + "_hvp", b.name_results(0, results, names)))
