"""One table of partial derivatives for elementwise primitives.

`PARTIALS[prim](b, ins, out)` returns, for each input, the elementwise
partial derivative d out / d in_i as an IR value (built with the builder `b`),
or ONE / MINUS_ONE where the partial is the constant ±1 (so no multiply is
emitted). Both forward mode (out_dot = sum_i partial_i * in_dot_i) and reverse
mode (in_bar_i = sum_to(partial_i * out_bar)) are driven by this one table,
so the two directions cannot disagree. Every partial is written in IR
primitives, so it can itself be differentiated (second order and beyond).
"""
from __future__ import annotations

ONE = "one"
MINUS_ONE = "minus_one"


def _mask(b, cond, like):
    """1.0 where cond holds else 0.0, in like's dtype."""
    return b.cast(cond, dtype=like.type.dtype, name="mask")


def _ipow(b, x, out, n):
    if n == 0:
        return [b.full(shape=x.type.shape, value=0.0, dtype=x.type.dtype)]
    if n == 1:
        return [ONE]
    lower = x if n == 2 else b.ipow(x, n=n - 1)
    return [b.mul(lower, float(n))]


PARTIALS = {
    "neg": lambda b, ins, out: [MINUS_ONE],
    "exp": lambda b, ins, out: [out],
    "log": lambda b, ins, out: [b.div(1.0, ins[0])],
    "log1p": lambda b, ins, out: [b.div(1.0, b.add(ins[0], 1.0))],
    "sqrt": lambda b, ins, out: [b.div(0.5, out)],
    "abs": lambda b, ins, out: [b.sign(ins[0])],
    "tanh": lambda b, ins, out: [b.sub(1.0, b.mul(out, out))],
    "sigmoid": lambda b, ins, out: [b.mul(out, b.sub(1.0, out))],
    "relu": lambda b, ins, out: [_mask(b, b.gt(ins[0], 0.0), ins[0])],
    "softplus": lambda b, ins, out: [b.sigmoid(ins[0])],
    "sin": lambda b, ins, out: [b.cos(ins[0])],
    "cos": lambda b, ins, out: [b.neg(b.sin(ins[0]))],
    "sign": lambda b, ins, out: [None],
    "add": lambda b, ins, out: [ONE, ONE],
    "sub": lambda b, ins, out: [ONE, MINUS_ONE],
    "mul": lambda b, ins, out: [ins[1], ins[0]],
    "div": lambda b, ins, out: [b.div(1.0, ins[1]), b.neg(b.div(out, ins[1]))],
    "pow": lambda b, ins, out: [b.mul(ins[1], b.pow(ins[0], b.sub(ins[1], 1.0))),
                                b.mul(out, b.log(ins[0]))],
    # ties go to the first operand, so exactly one side gets the derivative
    "maximum": lambda b, ins, out: [_mask(b, b.ge(ins[0], ins[1]), out), _mask(b, b.lt(ins[0], ins[1]), out)],
    "minimum": lambda b, ins, out: [_mask(b, b.le(ins[0], ins[1]), out), _mask(b, b.gt(ins[0], ins[1]), out)],
}


def partials(b, prim: str, ins, out, params):
    if prim == "ipow":
        return _ipow(b, ins[0], out, params["n"])
    return PARTIALS[prim](b, ins, out)
