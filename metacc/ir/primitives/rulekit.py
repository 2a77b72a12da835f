"""What declarations share: type-rule checks and builder-level derivative helpers.

Symbolic zeros are `None`: a tangent or cotangent that is structurally zero
costs nothing and is never materialised unless something needs an array.
Every helper takes the builder `b` as an argument, so the declarations import
no builder (and so nothing above metacc.ir); metacc.ad.util re-exports them.
"""
from __future__ import annotations

from metacc.ir.core import Atom, Lit, Var
from metacc.ir.types import ShapeError, TensorType

# a partial that is the constant +1 or -1: the rule adds or negates, no multiply
ONE = "one"
MINUS_ONE = "minus_one"


# ---- type rules --------------------------------------------------------------

def need_float(t: TensorType, what: str):
    if not t.is_float:
        raise ShapeError(f"{what} needs a float tensor, got {t}")


def same_dtype(prim: str, *ts: TensorType) -> str:
    dtypes = {t.dtype for t in ts}
    if len(dtypes) != 1:
        raise ShapeError(f"{prim}: operands have different dtypes ({', '.join(str(t) for t in ts)}); "
                         "metacc never promotes silently: cast one with f32(...) or f64(...)")
    return dtypes.pop()


def norm_axes(axes, rank: int, what: str) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"{what}: axis {a} is out of range for a rank-{rank} tensor")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


# ---- derivative helpers (builder-level) ----------------------------------------

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


def mask(b, cond, like):
    """1.0 where cond holds else 0.0, in like's dtype."""
    return b.cast(cond, dtype=like.type.dtype, name="mask")


def same_op(prim: str):
    """JVP of a linear structural primitive: the tangent goes through the same primitive."""
    def rule(b, ins, outs, tans, **params):
        (t,) = tans
        return [None if t is None else b.emit(prim, t, **params)[0]]
    return rule


def max_mask(b, x, out, axes, keepdims):
    """1 where x attains its max (over axes), divided by the number of ties."""
    ax = tuple(a % x.type.rank for a in axes)
    kshape = tuple(1 if i in ax else d for i, d in enumerate(x.type.shape))
    outk = out if keepdims else b.reshape(out, shape=kshape)
    m = b.cast(b.eq(x, outk), dtype=x.type.dtype, name="argmax_mask")
    count = b.reduce_sum(m, axes=tuple(axes), keepdims=True, name="ties")
    return b.div(m, count, name="max_weight"), kshape
