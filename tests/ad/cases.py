"""One small program per primitive, for the rule tests.

Each case builds a Func with float64 inputs (the first `n_diff` are
differentiated) and gives input generators that stay inside the primitive's
smooth domain (positive for log and sqrt, away from kinks for relu and abs,
distinct entries for max).
"""
from __future__ import annotations

import numpy as np

from metacc.ir.builder import Builder
from metacc.ir.prims import BINARY, UNARY
from metacc.ir.types import TensorType

F = "f64"


def t(*shape):
    return TensorType(F, tuple(shape))


def away_from_zero(rng, shape):
    x = rng.uniform(0.3, 1.5, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def normal(rng, shape):
    return rng.normal(size=shape)


DOMAIN = {"log": positive, "sqrt": positive, "log1p": positive, "abs": away_from_zero,
          "relu": away_from_zero, "sign": away_from_zero}


class Case:
    def __init__(self, name, build, gens, n_diff=None, smooth=True, ref=None):
        self.name, self.build, self.gens = name, build, gens
        # ref: a function with the derivative the construct is defined to have
        # (stop_gradient, straight_through), for the finite-difference oracle
        self.ref = ref
        self.n_diff = len(gens) if n_diff is None else n_diff
        self.smooth = smooth          # False: derivative is zero / piecewise (still checked)

    def func(self):
        return self.build()

    def args(self, rng):
        return [g(rng) for g in self.gens]


def _unary(prim, **params):
    def build():
        b = Builder()
        x = b.input("x", t(3, 2))
        return b.build(prim, [b.emit(prim, x, **params)[0]])
    gen = DOMAIN.get(prim, normal)
    return Case(prim if not params else f"{prim}{params}", build, [lambda r: gen(r, (3, 2))])


def _binary(prim, sx, sy):
    def build():
        b = Builder()
        x, y = b.input("x", t(*sx)), b.input("y", t(*sy))
        return b.build(prim, [b.emit(prim, x, y)[0]])
    gx = positive if prim in ("pow", "div") else normal
    gy = positive if prim == "div" else normal
    return Case(f"{prim}{sx}{sy}", build, [lambda r: gx(r, sx), lambda r: gy(r, sy)])


def _single(name, in_shapes, body, gens=None, n_diff=None, ref=None):
    def make(fbody):
        def build():
            b = Builder()
            xs = [b.input(f"x{i}", t(*s)) for i, s in enumerate(in_shapes)]
            out = fbody(b, *xs)
            return b.build(name, out if isinstance(out, list) else [out])
        return build
    gens = gens or [(lambda s: lambda r: normal(r, s))(s) for s in in_shapes]
    return Case(name, make(body), gens, n_diff, ref=make(ref) if ref else None)


def _scan_case(reverse):
    """A loop with consts, carry, per-iteration inputs and stacked outputs."""
    def build():
        bb = Builder()
        w = bb.input("w", t(2, 2))
        h = bb.input("h", t(1, 2))
        x = bb.input("x", t(1, 2))
        h2 = bb.tanh(bb.add(bb.matmul(h, w), x), name="h")
        y = bb.mul(h2, h2, name="y")
        body = bb.build("cell", [h2, y])
        b = Builder()
        w0, h0, xs = b.input("w", t(2, 2)), b.input("h0", t(1, 2)), b.input("xs", t(4, 1, 2))
        hT, ys = b.emit("scan", w0, h0, xs, body=body, length=4, n_consts=1, n_carry=1, reverse=reverse)
        return b.build("rnn", [b.add(b.reduce_sum(ys, axes=(0, 1, 2)), b.reduce_sum(hT, axes=(0, 1)))])
    return Case(f"scan(reverse={reverse})", build,
                [lambda r: 0.5 * normal(r, (2, 2)), lambda r: normal(r, (1, 2)), lambda r: normal(r, (4, 1, 2))])


def _call_case():
    def build():
        sb = Builder()
        x = sb.input("x", t(3))
        sub = sb.build("inner", [sb.sin(sb.mul(x, x))])
        b = Builder()
        y = b.input("y", t(3))
        (z,) = b.emit("call", y, fn=sub, remat=True)
        return b.build("outer", [b.mul(z, y)])
    return Case("call(remat)", build, [lambda r: normal(r, (3,))])


def _solve_body(b, a, rhs):
    return b.solve(b.add(a, b.mul(b.eye(n=3, dtype=F), 4.0)), rhs)


CASES = (
    [_unary(p) for p in UNARY]
    + [_unary("ipow", n=n) for n in (0, 1, 2, 3, -2)]
    + [_binary(p, (3, 2), (3, 2)) for p in BINARY]
    + [_binary(p, (3, 2), (2,)) for p in ("add", "sub", "mul", "div", "maximum")]
    + [_binary(p, (3, 1), (1, 2)) for p in ("mul", "pow", "minimum")]
    + [
        _single("select", [(3, 2), (3, 2)], lambda b, x, y: b.select(b.gt(x, y), b.mul(x, y), b.sin(y))),
        _single("cast", [(3,)], lambda b, x: b.cast(b.mul(x, x), dtype=F)),
        _single("stop_gradient", [(3,)], lambda b, x: b.add(b.stop_gradient(b.mul(x, x)), b.sin(x)),
                ref=lambda b, x: b.sin(x)),
        _single("straight_through", [(3,)], lambda b, x: b.straight_through(
            b.cast(b.gt(x, 0.0), dtype=F), b.sigmoid(x)), ref=lambda b, x: b.sigmoid(x)),
        _single("reshape", [(2, 3)], lambda b, x: b.sin(b.reshape(x, shape=(3, 2)))),
        _single("transpose", [(2, 3)], lambda b, x: b.mul(b.transpose(x, perm=(1, 0)), b.transpose(x, perm=(1, 0)))),
        _single("broadcast_to", [(1, 3)], lambda b, x: b.sin(b.broadcast_to(x, shape=(2, 1, 3)))),
        _single("sum_to", [(2, 4, 3)], lambda b, x: b.sin(b.sum_to(x, shape=(4, 1)))
                if False else b.sin(b.sum_to(x, shape=(1, 3)))),
        _single("slice", [(4, 3)], lambda b, x: b.exp(b.slice(x, starts=(1, 0), stops=(4, 3), steps=(2, 1)))),
        _single("pad", [(2, 3)], lambda b, x: b.exp(b.pad(x, shape=(4, 3), starts=(1, 0), stops=(4, 3), steps=(2, 1)))),
        _single("concatenate", [(2, 3), (1, 3)], lambda b, x, y: b.sin(b.concatenate(x, b.mul(y, y), axis=0))),
        _single("reduce_sum", [(2, 3, 4)], lambda b, x: b.sin(b.reduce_sum(x, axes=(0, 2)))),
        _single("reduce_sum_keep", [(2, 3)], lambda b, x: b.mul(b.reduce_sum(x, axes=(1,), keepdims=True), x)),
        _single("reduce_max", [(3, 4)], lambda b, x: b.sin(b.reduce_max(x, axes=(1,)))),
        _single("reduce_max_keep", [(3, 4)], lambda b, x: b.mul(b.reduce_max(x, axes=(0, 1), keepdims=True), x)),
        _single("matmul", [(3, 4), (4, 2)], lambda b, x, y: b.matmul(x, y)),
        _single("solve", [(3, 3), (3, 2)], _solve_body),
        _single("dim_size", [(3,)], lambda b, x: b.mul(x, b.dim_size(dims=(3, 2), dtype=F))),
        _single("full_eye_iota", [(3, 3)], lambda b, x: b.add(b.mul(x, b.eye(n=3, dtype=F)),
                                                              b.full(shape=(3, 3), value=2.0, dtype=F))),
        _single("one_hot", [(3, 4)], lambda b, x: b.mul(x, b.one_hot(b.argmax(x, axis=1), n=4, dtype=F))),
        _scan_case(False),
        _scan_case(True),
        _call_case(),
    ]
)

# primitives the rule tests reach only through other cases or dedicated tests
COVERED_ELSEWHERE = {"compare": "through select/relu/max cases", "logic": "bool only",
                     "grad": "expanded before AD (test_nested)", "argmin": "test_implicit",
                     "cg_solve": "test_implicit", "random": "no derivative (test_nodiff)",
                     "diagnostic": "no outputs, no derivative (tests/runtime/test_convergence.py)"}

# the convolution and pooling family has its own file
from tests.ad.conv_cases import conv_cases  # noqa: E402

CASES = CASES + conv_cases()
