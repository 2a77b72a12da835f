"""The spellings of a float precision that every `dtype=` argument accepts.

.meta programs write f32 and f64; NumPy users write 'float32', np.float64 or
np.dtype('float64'). All of them name the same two precisions, so each
public `dtype=` (metacc.compile, Group.init, the task samplers) goes through
`float_dtype` and gets 'f32' or 'f64' back, or a MetaccError that lists what
is accepted.
"""
from __future__ import annotations

import numpy as np

from metacc.errors import MetaccError

_NAMES = {"f32": "f32", "float32": "f32", "f64": "f64", "float64": "f64"}
SPELLINGS = "'f32', 'f64', 'float32', 'float64', np.float32, np.float64 or np.dtype('float32' / 'float64')"


def float_dtype(dtype, where: str, allow_none: bool = False) -> str | None:
    """'f32' / 'f64' for any accepted spelling of dtype (None passes through when allow_none)."""
    if dtype is None and allow_none:
        return None
    if isinstance(dtype, str):
        if dtype in _NAMES:
            return _NAMES[dtype]
    elif dtype is not None and not isinstance(dtype, (bool, int, float)):
        # types (np.float64) and dtype objects; not None, which np.dtype reads as float64,
        # nor numbers such as 1.0, which it refuses anyway
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            dt = None
        if dt == np.float32:
            return "f32"
        if dt == np.float64:
            return "f64"
    also = "None (the precision the program declares), " if allow_none else ""
    raise MetaccError(f"{where}: dtype must be a float precision", expected=also + SPELLINGS,
                      found=repr(dtype))
