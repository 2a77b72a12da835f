"""Device versions of the counter-based random numbers (metacc.ir.rng, metacc.backend.helpers):
splitmix64 on uint64, bit for bit the interpreter's and the CPU's, under the names the task
body calls (fold, uniform_f32/f64, normal_f32/f64).

On the device a uint64 add or multiply wraps around silently, which the mixing relies on.
The CUDA simulator runs device functions as Python on NumPy scalars, which warn on every
wrap-around: there the mixing runs under np.errstate(over="ignore"), the same arithmetic.
"""
from __future__ import annotations

import numpy as np
from numba import config, cuda

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)

if config.ENABLE_CUDASIM:
    @cuda.jit(device=True)
    def mix(z):
        with np.errstate(over="ignore"):
            z = np.uint64(z) + GOLDEN
            z = (z ^ (z >> np.uint64(30))) * M1
            z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))
else:
    @cuda.jit(device=True)
    def mix(z):
        z = z + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


@cuda.jit(device=True)
def fold(key, data):
    return mix(np.uint64(key) ^ mix(np.uint64(data)))


@cuda.jit(device=True)
def uniform53(key, counter):
    bits = mix(np.uint64(key) ^ mix(np.uint64(counter)))
    return np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@cuda.jit(device=True)
def uniform_f64(key, counter):
    return uniform53(key, counter)


@cuda.jit(device=True)
def uniform_f32(key, counter):
    return np.float32(uniform53(key, counter))


@cuda.jit(device=True)
def normal_f64(key, counter):
    # Box-Muller on counters 2j and 2j + 1, in float64 like metacc.ir.rng
    u1 = uniform53(key, 2 * counter)
    u2 = uniform53(key, 2 * counter + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


@cuda.jit(device=True)
def normal_f32(key, counter):
    return np.float32(normal_f64(key, counter))
