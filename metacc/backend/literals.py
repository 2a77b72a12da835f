"""Scalar constants and dtype names in generated code, typed so f32 code stays f32.

Numba types a bare `0.01` as float64 and `1` as int64, and either would promote
float32 arithmetic to float64; so every float32 constant is spelled
`np.float32(...)`, which Numba folds to a float32 constant.
"""
from __future__ import annotations

import math

NP_NAME = {"f32": "np.float32", "f64": "np.float64", "i64": "np.int64", "bool": "np.bool_",
           "key": "np.uint64"}


def lit(value, dtype: str) -> str:
    if dtype == "bool":
        return "True" if value else "False"
    if dtype == "i64":
        return str(int(value))
    if dtype == "key":
        return f"np.uint64({int(value)})"
    v = float(value)
    if math.isnan(v):
        text = "np.nan"
    elif math.isinf(v):
        text = "np.inf" if v > 0 else "-np.inf"
    else:
        text = repr(v)
    return text if dtype == "f64" else f"np.float32({text})"


def cast(code: str, dtype: str) -> str:
    return f"{NP_NAME[dtype]}({code})"
