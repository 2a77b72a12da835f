"""Helper functions the generated kernels call, emitted only when used.

The random helpers port metacc.ir.rng exactly (splitmix64 on uint64 with
wrap-around), so a kernel draws the same bits as the reference interpreter.
Every constant is typed for its dtype: float32 helpers never touch float64
except where the interpreter itself computes in float64 (random draws, which
are made in float64 and then rounded, as rng.py does).
"""
from __future__ import annotations

from metacc.backend.literals import lit

_MIX = '''
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=CACHE)
def mix(z):
    z = z + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


@njit(cache=CACHE)
def fold(key, data):
    return mix(np.uint64(key) ^ mix(np.uint64(data)))


@njit(cache=CACHE)
def uniform53(key, counter):
    bits = mix(np.uint64(key) ^ mix(np.uint64(counter)))
    return np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0)
'''

_LU = '''
@njit(error_model="numpy", cache=CACHE)
def lu_solve(a, x, piv):
    """Solve a @ X = x in place (x becomes X; a becomes its LU factors), partial pivoting."""
    n = a.shape[0]
    m = x.shape[1]
    for c in range(n):
        p = c
        best = np.abs(a[c, c])
        for r in range(c + 1, n):
            v = np.abs(a[r, c])
            if v > best:
                best = v
                p = r
        if best == 0 or best != best:
            raise ValueError("metacc: solve: the matrix is singular")
        piv[c] = p
        if p != c:
            for j in range(n):
                a[c, j], a[p, j] = a[p, j], a[c, j]
            for j in range(m):
                x[c, j], x[p, j] = x[p, j], x[c, j]
        inv = a[c, c]
        for r in range(c + 1, n):
            f = a[r, c] / inv
            a[r, c] = f
            for j in range(c + 1, n):
                a[r, j] -= f * a[c, j]
            for j in range(m):
                x[r, j] -= f * x[c, j]
    for c in range(n - 1, -1, -1):
        inv = a[c, c]
        for j in range(m):
            s = x[c, j]
            for r in range(c + 1, n):
                s -= a[c, r] * x[r, j]
            x[c, j] = s / inv
'''


def _typed(dt: str) -> dict[str, str]:
    return {"dt": dt, "zero": lit(0, dt), "one": lit(1, dt), "T": "np.float32" if dt == "f32" else "np.float64"}


_SIGMOID = '''
@njit(error_model="numpy", cache=CACHE)
def sigmoid_{dt}(x):
    # exp of a non-positive number only: stable in both tails
    e = np.exp(-np.abs(x))
    if x >= {zero}:
        return {one} / ({one} + e)
    return e / ({one} + e)
'''

_SOFTPLUS = '''
@njit(error_model="numpy", cache=CACHE)
def softplus_{dt}(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), as np.logaddexp(x, 0)
    return np.maximum(x, {zero}) + np.log1p(np.exp(-np.abs(x)))
'''

_UNIFORM = '''
@njit(cache=CACHE)
def uniform_{dt}(key, counter):
    return {T}(uniform53(key, counter))
'''

_NORMAL = '''
@njit(error_model="numpy", cache=CACHE)
def normal_{dt}(key, counter):
    # Box-Muller on counters 2j and 2j + 1, in float64 like metacc.ir.rng
    u1 = uniform53(key, 2 * counter)
    u2 = uniform53(key, 2 * counter + 1)
    return {T}(np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2))
'''

_TEMPLATES = {"sigmoid": _SIGMOID, "softplus": _SOFTPLUS, "uniform": _UNIFORM, "normal": _NORMAL}


def prelude(helpers: set[str]) -> str:
    """Source of the helpers in `helpers` (names like 'sigmoid_f32', 'fold', 'lu_solve')."""
    parts = []
    if helpers & {"fold", "uniform_f32", "uniform_f64", "normal_f32", "normal_f64"}:
        parts.append(_MIX)
    if "lu_solve" in helpers:
        parts.append(_LU)
    for name in sorted(helpers):
        base, _, dt = name.rpartition("_")
        if base in _TEMPLATES:
            parts.append(_TEMPLATES[base].format(**_typed(dt)))
    return "\n".join(p.strip("\n") + "\n\n" for p in parts)
