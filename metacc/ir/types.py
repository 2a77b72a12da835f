"""Tensor types of the IR: a dtype and a shape whose dims are ints or symbols.

Symbolic dims (`n`, `k`) stand for sizes known only when a kernel is called;
every symbol of a function is bound by the shape of one of its inputs.
Broadcasting follows NumPy, decided statically: a dim broadcasts only when it
is the literal 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Dim = int | str

FLOAT_DTYPES = ("f32", "f64")
INT_DTYPES = ("i64",)
DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool", "key")

NUMPY_DTYPE = {"f32": np.float32, "f64": np.float64, "i64": np.int64,
               "bool": np.bool_, "key": np.uint64}


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...] = ()

    def __post_init__(self):
        assert self.dtype in DTYPES, self.dtype
        assert all(isinstance(d, (int, str)) for d in self.shape), self.shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(d for d in self.shape if isinstance(d, str))

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        if not self.shape:
            return self.dtype
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def scalar(dtype: str) -> TensorType:
    return TensorType(dtype, ())


class ShapeError(Exception):
    """A type rule's complaint; the front end turns it into a MetaccError with a span."""


def broadcast_shapes(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(rank):
        dim: Dim = 1
        for s in shapes:
            k = axis - (rank - len(s))
            if k < 0:
                continue
            d = s[k]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif dim != d:
                raise ShapeError(f"shapes {' and '.join(fmt_shape(x) for x in shapes)} do not broadcast "
                                 f"(axis {axis}: {dim} vs {d})")
        out.append(dim)
    return tuple(out)


def fmt_shape(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def resolve_shape(shape: tuple[Dim, ...], dims: dict[str, int]) -> tuple[int, ...]:
    """Concrete shape of a (possibly symbolic) shape under dim bindings."""
    return tuple(d if isinstance(d, int) else dims[d] for d in shape)
