"""Special and control primitives.

stop_gradient and straight_through change only derivatives. scan, call, grad,
argmin and cg_solve hold closed sub-functions: the interpreter evaluates them
itself (they recurse), their derivative rules are metacc/ad/loops.py's control
rules (they save residuals), and all but scan are rewritten into other
primitives before lowering. diagnostic is an effect: a convergence figure
reported to the runtime (metacc/convergence.py hoists it into an output).
"""
from __future__ import annotations

import numpy as np

from metacc.ir.primitives.declare import ELEMENTWISE, EXPANDED, HOOK, declare
from metacc.ir.primitives.rulekit import need_float
from metacc.ir.scan import ScanLayout
from metacc.ir.types import ShapeError, broadcast_shapes, fmt_shape


@declare("stop_gradient", "special", 1, "identity value, zero derivative at every order",
         impl=lambda x, **_: x, jvp=lambda b, ins, outs, tans, **_: [None],
         vjp=lambda b, ins, outs, gs, **_: [None], lowering=ELEMENTWISE, scalar=lambda c: c.x(0),
         surface=("stop_gradient", "detach"))
def _stop_gradient(x):
    return (x,)


@declare("straight_through", "special", 2, "value of hard, derivative of surrogate",
         impl=lambda hard, surrogate, **_: np.broadcast_to(hard, surrogate.shape).copy(),
         jvp=lambda b, ins, outs, tans, **_: [tans[1]], vjp=lambda b, ins, outs, gs, **_: [None, gs[0]],
         lowering=ELEMENTWISE, scalar=lambda c: c.x(0), surface=("straight_through",))  # the value is the hard one
def _straight_through(hard, surrogate):
    if hard.dtype != surrogate.dtype:
        raise ShapeError(f"straight_through: hard value {hard} and surrogate {surrogate} "
                         "must have the same dtype")
    shape = broadcast_shapes(hard.shape, surrogate.shape)
    if shape != surrogate.shape:
        raise ShapeError(f"straight_through: the hard value {fmt_shape(hard.shape)} must broadcast "
                         f"to the surrogate's shape {fmt_shape(surrogate.shape)}")
    need_float(surrogate, "straight_through")
    return (surrogate,)


@declare("scan", "control", None,
         "loop of static length: ins = consts + carry + xs, outs = carry + ys (stacked on axis 0)",
         params=("body", "length", "n_consts", "n_carry", "reverse"), lowering=HOOK)
def _scan(*ins, body, length: int, n_consts: int, n_carry: int, reverse: bool = False, **_):
    layout = ScanLayout(n_consts, n_carry)
    consts, carry, xs = layout.split_ins(ins)
    want = list(consts) + list(carry) + [x.with_shape(x.shape[1:]) for x in xs]
    for x in xs:
        if not x.shape or x.shape[0] != length:
            raise ShapeError(f"scan xs must have leading dim {length}, got {x}")
    if [v.type for v in body.ins] != want:
        raise ShapeError("scan body inputs do not match consts + carry + x slices")
    carry_out, ys_row = layout.split_outs(body.out_types)
    if carry_out != carry:
        raise ShapeError("scan body must return the carry with unchanged types: "
                         + ", ".join(f"{a} -> {b}" for a, b in zip(carry, carry_out) if a != b))
    return carry_out + tuple(t.with_shape((length,) + t.shape) for t in ys_row)


@declare("call", "control", None, "apply a closed sub-function; remat=True recomputes it in the backward pass",
         params=("fn", "remat"), lowering=EXPANDED)
def _call(*ins, fn, remat: bool = False, **_):
    if list(ins) != list(fn.in_types):
        raise ShapeError(f"call {fn.name}: argument types do not match")
    return fn.out_types


@declare("grad", "control", None,
         "gradients of fn's scalar output w.r.t. its first n_wrt inputs (expanded by metacc.ad)",
         params=("fn", "n_wrt"), lowering=EXPANDED)
def _grad(*ins, fn, n_wrt: int, **_):
    if list(ins) != list(fn.in_types):
        raise ShapeError(f"grad of {fn.name}: argument types do not match")
    if len(fn.outs) != 1 or fn.outs[0].type.rank != 0 or not fn.outs[0].type.is_float:
        raise ShapeError("grad needs an expression with one float scalar value")
    for t in fn.in_types[:n_wrt]:
        if not t.is_float:
            raise ShapeError(f"cannot differentiate with respect to a {t.dtype} value")
    return tuple(fn.in_types[:n_wrt])


@declare("argmin", "control", None,
         "p* = argmin_p objective(p, *extra), solved from p_init; differentiated implicitly or unrolled",
         params=("objective", "n_p", "solver", "implicit"), lowering=EXPANDED)
def _argmin(*ins, objective, n_p: int, solver: dict, implicit: dict | None = None, **_):
    if list(ins) != list(objective.in_types):
        raise ShapeError("argmin: argument types do not match the objective's inputs")
    if len(objective.outs) != 1 or objective.outs[0].type.rank != 0:
        raise ShapeError("argmin objective must be a scalar")
    return tuple(objective.in_types[:n_p])


@declare("cg_solve", "control", None,
         "x = A^-1 b by conjugate gradients; A v = matvec(v, *consts) is symmetric positive definite. "
         "Differentiated as the exact linear solve in b; consts must carry no derivative",
         params=("matvec", "n_b", "iters", "tol"), lowering=EXPANDED)
def _cg_solve(*ins, matvec, n_b: int, iters: int, tol: float, **_):
    bs, consts = ins[:n_b], ins[n_b:]
    if list(matvec.in_types) != list(bs) + list(consts):
        raise ShapeError("cg_solve: matvec inputs must be the vector leaves then the constants")
    if list(matvec.out_types) != list(bs):
        raise ShapeError("cg_solve: matvec must return vectors of the right-hand side's types")
    return tuple(bs)


@declare("diagnostic", "effect", 1,
         "report a convergence figure (a float scalar) to the runtime: no outputs, no derivative. "
         "params: kind ('argmin' or 'cg'), tol, where (file:line:col), what, advice; the runtime "
         "warns when the figure is not <= tol (metacc.convergence)",
         params=("kind", "tol", "where", "what", "advice"), nondiff=True, lowering=EXPANDED)
def _diagnostic(x, *, kind: str, tol: float, where: str, what: str, advice: str = "", **_):
    if x.rank != 0 or not x.is_float:
        raise ShapeError(f"diagnostic needs a float scalar, got {x}")
    return ()
