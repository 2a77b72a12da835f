"""Parameter initialisers (program.Init) as NumPy draws from one seeded generator.

fan_in is shape[0] for 2-D weights (an `x @ w` layer maps shape[0] inputs to
shape[1] outputs), the product of all but the last dim for higher ranks, and
1 for vectors and scalars; fan_out is the last dim.
"""
from __future__ import annotations

import math

import numpy as np

from metacc.errors import MetaccError
from metacc.ir.types import NUMPY_DTYPE, TensorType
from metacc.program import Field


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        return 1, (shape[0] if shape else 1)
    return math.prod(shape[:-1]), shape[-1]


def init_field(f: Field, rng: np.random.Generator, dtype: str, group: str) -> np.ndarray:
    t: TensorType = f.type
    if t.symbols:
        raise MetaccError(f"{group}.{f.path} has symbolic dims {t}; a parameter needs a fixed shape")
    shape = tuple(int(d) for d in t.shape)
    init = f.init
    kind, args = (init.kind, init.args) if init is not None else ("zeros", ())
    fan_in, fan_out = _fans(shape)
    if kind == "he_normal":
        x = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    elif kind == "glorot_normal":
        x = rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))
    elif kind == "normal":
        x = rng.standard_normal(shape) * (args[0] if args else 1.0)
    elif kind == "uniform":
        lo, hi = args if len(args) == 2 else (0.0, 1.0)
        x = rng.uniform(lo, hi, shape)
    elif kind == "zeros":
        x = np.zeros(shape)
    elif kind == "ones":
        x = np.ones(shape)
    elif kind == "const":
        x = np.full(shape, args[0] if args else 0.0)
    else:
        raise MetaccError(f"{group}.{f.path}: unknown initialiser '{kind}'",
                          hint="use he_normal, glorot_normal, normal(std), uniform(lo, hi), zeros, ones or const(v)")
    # np.array, not ascontiguousarray: the latter turns a scalar parameter into shape (1,)
    return np.array(x, dtype=NUMPY_DTYPE[dtype], order="C")
