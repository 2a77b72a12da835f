"""Every primitive, lowered, against the reference interpreter (float64 at 1e-10,
float32 at 2e-5). Primitives are grouped into a few functions per family so
that each family costs one Numba compile per dtype."""
from __future__ import annotations

import re

import numpy as np
import pytest

from metacc.backend import lower_source
from metacc.ir.builder import Builder
from metacc.ir.prims import PRIMS
from metacc.ir.prims import UNARY as DECLARED_UNARY
from metacc.ir.types import NUMPY_DTYPE, TensorType
from tests.backend.check import assert_matches
from tests.backend.conv_programs import conv_fn

DTYPES = ["f64", "f32"]
UNARY = list(DECLARED_UNARY)     # every declared unary primitive (metacc/ir/primitives/pointwise.py)


def T(dt, *shape):
    return TensorType(dt, tuple(shape))


def rand(rng, dt, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(NUMPY_DTYPE[dt])


def unary_fn(dt):
    b = Builder()
    x = b.input("x", T(dt, "n", 3))
    pos = b.input("pos", T(dt, "n", 3))
    outs = []
    for p in UNARY:
        arg = pos if p in ("log", "sqrt") else x
        outs.append(b.emit(p, arg, name=p)[0])
    outs += [b.ipow(x, n=k, name=f"ipow{k}") for k in (0, 1, 2, 3, -2, 5)]
    return b.build("unary_zoo", outs)


def binary_fn(dt):
    b = Builder()
    x, row = b.input("x", T(dt, "n", 3)), b.input("row", T(dt, 3))
    col, s = b.input("col", T(dt, "n", 1)), b.input("s", T(dt))
    pos = b.input("pos", T(dt, "n", 3))
    outs = [b.add(x, row), b.sub(x, col), b.mul(x, s), b.div(x, row), b.pow(pos, row),
            b.maximum(x, col), b.minimum(s, x), b.add(col, row), b.mul(s, 3.0), b.sub(2.0, x)]
    outs += [b.emit(c, x, col)[0] for c in ("lt", "le", "gt", "ge", "eq", "ne")]
    lt, gt = b.lt(x, row), b.gt(x, col)
    outs += [b.logical_and(lt, gt), b.logical_or(lt, gt), b.logical_not(lt), b.select(lt, x, row),
             b.select(gt, s, col), b.stop_gradient(x), b.straight_through(b.gt(x, 0.0).__class__ and
                                                                          b.cast(b.gt(x, 0.0), dtype=dt), x)]
    return b.build("binary_zoo", outs)


def cast_fn(dt):
    other = "f32" if dt == "f64" else "f64"
    b = Builder()
    x, i = b.input("x", T(dt, "n", 3)), b.input("i", T("i64", "n"))
    outs = [b.cast(x, dtype="i64"), b.cast(x, dtype="bool"), b.cast(b.gt(x, 0.0), dtype=dt),
            b.cast(i, dtype=dt), b.cast(b.cast(x, dtype=other), dtype=dt), b.cast(x, dtype=dt)]
    return b.build("cast_zoo", outs)


def structural_fn(dt):
    b = Builder()
    x, a3 = b.input("x", T(dt, "n", 3)), b.input("a3", T(dt, 2, 3, 4))
    row, m = b.input("row", T(dt, 3)), b.input("m", T(dt, 6, 5))
    x2 = b.input("x2", T(dt, "n", 2))
    r = b.reshape(x, shape=(3, "n"))
    outs = [r, b.mul(r, 2.0), b.reshape(a3, shape=(4, 6)), b.transpose(a3, perm=(2, 0, 1)),
            b.add(b.transpose(x, perm=(1, 0)), 1.0), b.broadcast_to(row, shape=("n", 3)),
            b.sum_to(x, shape=(1, 3)), b.sum_to(x, shape=(3,)), b.sum_to(x, shape=("n", 1)),
            b.sum_to(b.mul(x, x), shape=()),
            b.slice(m, starts=(1, 0), stops=(6, 5), steps=(2, 3)),
            b.slice(x, starts=(0, 1), stops=("n", 3), steps=(1, 1)),
            b.pad(b.slice(m, starts=(1, 0), stops=(6, 5), steps=(2, 3)), shape=(6, 5), starts=(1, 0),
                  stops=(6, 5), steps=(2, 3)),
            b.pad(x2, shape=("n", 5), starts=(0, 1), stops=("n", 3), steps=(1, 1)),
            b.concatenate(x2, x, axis=1), b.concatenate(m, m, axis=0),
            b.reshape(b.reduce_sum(x, axes=(0, 1)), shape=(1, 1)),
            b.reshape(b.slice(m, starts=(0, 0), stops=(1, 1), steps=(1, 1)), shape=())]
    return b.build("structural_zoo", outs)


def reduce_fn(dt):
    b = Builder()
    x, a3 = b.input("x", T(dt, "n", 3)), b.input("a3", T(dt, 2, 3, 4))
    sq = b.mul(x, x)
    outs = [b.reduce_sum(x, axes=(0,)), b.reduce_sum(x, axes=(1,)), b.reduce_sum(sq, axes=(0, 1)),
            b.reduce_sum(x, axes=(-1,), keepdims=True), b.reduce_sum(a3, axes=(0, 2)),
            b.reduce_max(x, axes=(0,)), b.reduce_max(sq, axes=(0, 1)), b.reduce_max(a3, axes=(1,), keepdims=True),
            b.argmax(x, axis=0), b.argmax(x, axis=1), b.argmax(a3, axis=2),
            b.reduce_sum(x, axes=())]
    return b.build("reduce_zoo", outs)


def linalg_fn(dt):
    b = Builder()
    a, w = b.input("a", T(dt, "n", 4)), b.input("w", T(dt, 4, 5))
    v, x = b.input("v", T(dt, 5, 4)), b.input("x", T(dt, 4, "n"))
    spd, rhs = b.input("spd", T(dt, "n", "n")), b.input("rhs", T(dt, "n", 2))
    col, c1, wide = b.input("col", T(dt, 4, 1)), b.input("c1", T(dt, "n", 1)), b.input("wide", T(dt, 20, 1))
    # narrow and degenerate layouts take their own paths in the helpers
    outs = [b.matmul(a, col), b.matmul(c1, b.transpose(wide, perm=(1, 0))),
            b.matmul(b.transpose(x, perm=(1, 0)), col), b.matmul(c1, b.transpose(col, perm=(1, 0))),
            b.matmul(b.transpose(b.full(shape=(20, "n"), value=0.5, dtype=dt), perm=(1, 0)), wide)]
    outs += [b.matmul(a, w), b.matmul(a, b.transpose(v, perm=(1, 0))),
            b.matmul(b.transpose(x, perm=(1, 0)), w),
            b.matmul(b.transpose(x, perm=(1, 0)), b.transpose(v, perm=(1, 0))),
            b.solve(spd, rhs), b.relu(b.add(b.matmul(a, w), 1.0))]
    return b.build("linalg_zoo", outs)


def create_fn(dt):
    b = Builder()
    x, idx = b.input("x", T(dt, "n", 3)), b.input("idx", T("i64", "n"))
    outs = [b.full(shape=("n", 3), value=2.5, dtype=dt), b.add(x, b.full(shape=(3,), value=-1.0, dtype=dt)),
            b.eye(n=3, dtype=dt), b.eye(n="n", dtype=dt), b.iota(n="n"), b.iota(n=4, dtype=dt),
            b.dim_size(dims=("n", 3), dtype=dt), b.div(x, b.dim_size(dims=("n",), dtype=dt)),
            b.one_hot(idx, n=4, dtype=dt), b.full(shape=(), value=7.0, dtype=dt)]
    return b.build("create_zoo", outs)


def random_fn(dt):
    b = Builder()
    key, step = b.input("key", T("key")), b.input("step", T("i64"))
    k2 = b.key_fold(key, step)
    k3 = b.key_fold(k2, b.lit(-3, "i64"))
    outs = [k2, k3, b.rng_uniform(k2, shape=("n", 3), dtype=dt), b.rng_normal(k3, shape=(7,), dtype=dt),
            b.rng_uniform(key, shape=(), dtype=dt)]
    x = b.input("x", T(dt, "n", 3))
    outs.append(b.add(x, b.rng_normal(key, shape=("n", 3), dtype=dt)))
    return b.build("random_zoo", outs)


def args_for(fn, rng, n=5):
    out = []
    for v in fn.ins:
        shape = tuple(n if isinstance(d, str) else d for d in v.type.shape)
        dt = v.type.dtype
        if dt == "key":
            out.append(np.uint64(0x1234ABCD))
        elif dt == "i64":
            out.append(rng.integers(0, 4, shape).astype(np.int64) if shape else np.int64(3))
        elif v.name == "pos":
            out.append(rand(rng, dt, *shape, lo=0.2, hi=2.0))
        elif v.name == "spaced":       # distinct values: no ties for a max-pool's argmax
            size = int(np.prod(shape))
            out.append(((rng.permutation(size) - size / 2) * 0.01).reshape(shape).astype(NUMPY_DTYPE[dt]))
        elif v.name == "spd":
            m = rng.normal(size=shape)
            out.append((m @ m.T + n * np.eye(n)).astype(NUMPY_DTYPE[dt]))
        elif shape:
            out.append(rand(rng, dt, *shape))
        else:
            out.append(NUMPY_DTYPE[dt](0.7))
    return out


FAMILIES = {"unary": unary_fn, "binary": binary_fn, "cast": cast_fn, "structural": structural_fn,
            "reduce": reduce_fn, "linalg": linalg_fn, "create": create_fn, "random": random_fn,
            "conv": conv_fn}


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_matches_interpreter(build, family, dt):
    fn = FAMILIES[family](dt)
    mod = build(fn)
    rng = np.random.default_rng(7)
    for n in (5, 1):            # a symbolic dim of 1 must not be mistaken for broadcasting
        assert_matches(fn, mod, args_for(fn, rng, n), dt)


def test_every_primitive_is_covered():
    used = set()
    for make in FAMILIES.values():
        for e in make("f64").eqns:
            used.add(e.prim)
    # scan: test_scan.py; call: inlined before lowering (test_scan.py); grad/argmin: expanded by
    # metacc.ad, cg_solve: turned into loops by metacc.passes.lower_cg, both before any backend;
    # diagnostic: turned into kernel outputs by metacc.convergence.hoist (tests/runtime/test_convergence.py)
    missing = set(PRIMS) - used - {"scan", "call", "grad", "argmin", "cg_solve", "diagnostic"}
    assert not missing, f"primitives without a lowering test: {sorted(missing)}"


def test_float32_source_has_no_float64_constants():
    for make in FAMILIES.values():
        src = lower_source(make("f32"))
        body = re.sub(r"np\.float32\([^()]*\)", "F32", src.split("CACHE = True", 1)[1])
        bare = re.findall(r"(?<![\w.])\d+\.\d*(?:e-?\d+)?|np\.(?:inf|nan|pi)", body)
        assert not bare, f"{make.__name__}: float64 literals in f32 code: {bare[:5]}"


def test_singular_solve_is_reported(build):
    fn = linalg_fn("f64")
    mod = build(fn)
    args = args_for(fn, np.random.default_rng(0))
    args[4] = np.zeros_like(args[4])        # spd
    with pytest.raises(ValueError, match="singular"):
        mod.ENTRY_CALL(*args)
