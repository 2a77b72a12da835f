"""Shared helpers of the front-end tests: example paths, inputs for IR functions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from metacc.ir.types import NUMPY_DTYPE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.meta"))


def dims_for(fn, size: int = 6) -> dict[str, int]:
    """A binding of every symbolic dim of fn to a small size."""
    return {s: size + i for i, s in enumerate(fn.symbols())}


def random_inputs(fn, rng: np.random.Generator, size: int = 6, scale: float = 0.5) -> list[np.ndarray]:
    """Inputs of the right dtypes and shapes for an IR function (labels in [0, last dim))."""
    dims = dims_for(fn, size)
    out = []
    for v in fn.ins:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in v.type.shape)
        dtype = NUMPY_DTYPE[v.type.dtype]
        if v.type.dtype == "i64":
            out.append(rng.integers(0, 5, size=shape).astype(dtype))
        elif v.type.dtype == "key":
            out.append(np.uint64(rng.integers(0, 2**63)))
        elif v.type.dtype == "bool":
            out.append(rng.random(shape) < 0.5)
        else:
            out.append((rng.normal(size=shape) * scale).astype(dtype))
    return out


def subprograms(fn):
    """The prims of fn and of every sub-function, recursively."""
    for e in fn.eqns:
        yield e
        for sub in e.subfuncs():
            yield from subprograms(sub)
