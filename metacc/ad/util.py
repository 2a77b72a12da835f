"""Small helpers shared by the forward- and reverse-mode rules.

Symbolic zeros are `None`: a tangent or cotangent that is structurally zero
costs nothing and is never materialised unless something needs an array.
"""
from __future__ import annotations

from metacc.ir.core import Atom, Lit, Var
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
