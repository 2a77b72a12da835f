"""The primitive set of the IR, as today's tables: views of the declarations.

Each primitive is declared once, with its type rule and every other rule, in a
family module of metacc/ir/primitives/ (read declare.py first). This module
keeps the names the rest of the compiler imports: PRIMS (name -> Primitive,
the registry itself), infer, IMPLS (name -> reference implementation, which the
interpreter metacc.interp runs), and the family tuples UNARY, BINARY, COMPARE.

A type rule maps input types (and the eqn's params) to output types, raising
`ShapeError` with a readable message when they do not fit. The same rules
serve the front end's checking, the builder and the verifier, so a shape is
decided in exactly one place.

Families:
  unary      float -> float, elementwise            (neg, exp, ..., ipow)
  binary     float x float -> float, broadcasting   (add, ..., pow, maximum)
  compare    x x y -> bool, broadcasting (no derivative: the path is cut)
  logic      bool ops
  structural reshape, transpose, broadcast_to, sum_to, slice, pad, concatenate
  reduce     reduce_sum, reduce_max, argmax
  linalg     matmul (2-D), solve
  create     full, eye, iota, dim_size, one_hot
  special    select, cast, stop_gradient, straight_through
  random     rng_uniform, rng_normal, key_fold (counter-based, reproducible)
  control    scan, call, grad, argmin, cg_solve (hold closed sub-functions)
  effect     diagnostic
"""
from __future__ import annotations

from typing import Callable

from metacc.ir.primitives import REGISTRY, Primitive, declare, infer, of_family
# the helpers a type rule registered with _register below uses (as before the declarations)
from metacc.ir.primitives.rulekit import need_float as _need_float
from metacc.ir.primitives.rulekit import norm_axes as _norm_axes
from metacc.ir.primitives.rulekit import same_dtype as _same_dtype
from metacc.ir.types import (FLOAT_DTYPES, Dim, ShapeError, TensorType, broadcast_shapes,  # noqa: F401
                             fmt_shape, scalar)

__all__ = ["PRIMS", "IMPLS", "Primitive", "infer", "UNARY", "BINARY", "COMPARE", "NONDIFF_FAMILIES", "NONDIFF_PRIMS",
           "_need_float", "_norm_axes", "_same_dtype"]

PRIMS: dict[str, Primitive] = REGISTRY


def _register(name: str, family: str, n_ins: int | None, doc: str = ""):
    """Declare a primitive by its type rule alone, the way of the tables before metacc/ir/primitives/;
    its other rules then go into the tables (IMPLS, JVP_RULES, ...). Prefer `declare`."""
    return declare(name, family, n_ins, doc)


# the elementwise families, in declaration order (ipow, with its static n, is not in UNARY)
UNARY = tuple(n for n in of_family("unary") if not PRIMS[n].params)
BINARY = of_family("binary")
COMPARE = of_family("compare")

# the reference implementation of every primitive that has one (control primitives recurse, so
# the interpreter, metacc.interp, evaluates them itself); read by the interpreter and by the
# front end's check of constant expressions (frontend/context.py)
IMPLS: dict[str, Callable] = {name: p.impl for name, p in PRIMS.items() if p.impl is not None}

NONDIFF_FAMILIES = ("compare", "logic", "random")
NONDIFF_PRIMS = tuple(n for n, p in PRIMS.items() if p.nondiff and p.family not in NONDIFF_FAMILIES + ("effect",))
