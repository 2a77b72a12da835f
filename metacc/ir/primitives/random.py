"""Randomness: counter-based and reproducible (metacc/ir/rng.py); no derivative.

A draw's element is a pure function of the key and its row-major position, so
the Numba lowering computes each element where it is needed (a generator).
"""
from __future__ import annotations

from metacc.ir import rng
from metacc.ir.primitives.declare import ELEMENTWISE, GENERATOR, declare
from metacc.ir.types import NUMPY_DTYPE, ShapeError, TensorType, resolve_shape


@declare("key_fold", "random", 2, "a new key from a key and an integer (split, per-step keys)", nondiff=True,
         impl=lambda key, data, **_: rng.fold(key, data), lowering=ELEMENTWISE, surface=("fold_in",),
         scalar=lambda c: f"{c.helper('fold')}({c.x(0)}, {c.x(1)})")
def _key_fold(key, data):
    if key.dtype != "key" or key.rank != 0:
        raise ShapeError(f"expected a scalar random key, got {key}")
    if data.dtype != "i64" or data.rank != 0:
        raise ShapeError(f"fold_in needs a scalar integer, got {data}")
    return (key,)


def _flat(idx: list[str], shape_code: list[str]) -> str:
    """Row-major flat position of idx (the counter of a random draw)."""
    if not idx:
        return "0"
    expr = idx[0]
    for i, d in zip(idx[1:], shape_code[1:]):
        expr = f"({expr}) * {d} + {i}"
    return expr


def _draw_scalar(kind: str):
    def scalar(c) -> str:
        fn = c.helper(f"{kind}_{c.dt}")
        flat = _flat(c.idx, [c.dim(d) for d in c.e.outs[0].type.shape])
        return f"{fn}({c.read(0, [])}, {flat})"
    return scalar


def _draw_rule(name: str):
    def rule(key, *, shape, dtype):
        if key.dtype != "key" or key.rank != 0:
            raise ShapeError(f"{name} needs a scalar random key, got {key}")
        return (TensorType(dtype, tuple(shape)),)
    return rule


for _name, _draw, _surface in (("rng_uniform", rng.uniform, "uniform"), ("rng_normal", rng.normal, "normal")):
    declare(_name, "random", 1, params=("shape", "dtype"), nondiff=True,
            impl=lambda key, *, shape, dtype, dims, _draw=_draw, **_: _draw(key, resolve_shape(tuple(shape), dims),
                                                                            NUMPY_DTYPE[dtype]),
            lowering=GENERATOR, scalar=_draw_scalar(_name[4:]), surface=(_surface,))(_draw_rule(_name))
