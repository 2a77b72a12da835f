"""Small helpers shared by the forward- and reverse-mode rules.

Symbolic zeros are `None`: a tangent or cotangent that is structurally zero
costs nothing and is never materialised unless something needs an array.
"""
from __future__ import annotations

from metacc.ir.core import Atom, Eqn, Lit, Var
from metacc.ir.types import TensorType


def zeros(b, t: TensorType, name: str = "zeros"):
    return b.full(shape=t.shape, value=0.0, dtype=t.dtype, name=name)


def materialize(b, value, t: TensorType, name: str = "zeros"):
    return zeros(b, t, name) if value is None else value


def add_any(b, x, y, name: str = "acc"):
    """x + y where either may be a symbolic zero."""
    if x is None:
        return y
    if y is None:
        return x
    return b.add(x, y, name=name)


def sum_to(b, x, t: TensorType, name: str | None = None):
    """Undo broadcasting: sum x down to type t's shape (identity when shapes agree)."""
    if x is None:
        return None
    if x.type.shape == t.shape:
        return x
    return b.sum_to(x, shape=t.shape, name=name or "sum_to")


def broadcast(b, x, shape, name: str | None = None):
    if x is None or x.type.shape == tuple(shape):
        return x
    return b.broadcast_to(x, shape=tuple(shape), name=name or "bcast")


def differentiable(a: Atom) -> bool:
    """Only float vars carry tangents; literals, ints, bools and keys do not."""
    return isinstance(a, Var) and a.type.is_float


def is_lit(a) -> bool:
    return isinstance(a, Lit)


def cite(b, mark: int, span, adjoint: bool = False) -> None:
    """Point the equations emitted into b since `mark` at the primal statement they
    differentiate. The builder's default span is the whole function's (or the loop's):
    the primal's line says more, and is what metacc.nonfinite reports for a derivative.
    With `adjoint`, they are also marked as its adjoint (the backward sweep), which the
    printer and the Numba lowering announce with `# adjoint of: <statement>`."""
    if span is None:
        return
    target = span.as_adjoint() if adjoint else span
    for i in range(mark, len(b.eqns)):
        old = b.eqns[i]
        mine = old.span is None or old.span is b.span or old.span is span
        if mine or (adjoint and not old.span.adjoint):
            b.eqns[i] = Eqn(old.prim, old.ins, old.outs, old.params, target if mine else old.span.as_adjoint())
