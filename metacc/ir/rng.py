"""Counter-based random numbers: the same bits in the interpreter and every backend.

A key is a uint64. `fold(key, i)` derives a new key; element j of a draw uses
counter j. splitmix64 is the mixing function: simple, portable to Numba and
CUDA, and good enough for sampling tasks and noise (not for cryptography).
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def fold(key, data) -> np.uint64:
    with np.errstate(over="ignore"):
        return np.uint64(mix(np.uint64(key) ^ mix(np.uint64(np.int64(data).astype(np.uint64)))))


def _uniform53(key, counters: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        bits = mix(np.uint64(key) ^ mix(counters.astype(np.uint64)))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def uniform(key, shape, dtype) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return _uniform53(key, np.arange(n)).reshape(shape).astype(dtype)


def normal(key, shape, dtype) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    j = np.arange(n)
    u1 = _uniform53(key, 2 * j)
    u2 = _uniform53(key, 2 * j + 1)
    z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
    return z.reshape(shape).astype(dtype)
