"""The reference interpreter: plain NumPy evaluation of IR functions.

It is the oracle for every backend and pass, so it favours the obvious
implementation over speed. `grad` and `argmin` equations are evaluated by
expanding them with metacc.ad first (cached per equation).
"""
from __future__ import annotations

import contextvars
from typing import Callable

import numpy as np

from metacc.errors import InternalError, MetaccError
from metacc.ir import rng
from metacc.ir.conv_ref import CONV_IMPLS
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.types import NUMPY_DTYPE, resolve_shape


def _f(fn):
    return lambda x, **_: fn(x)


def _softplus(x):
    return np.logaddexp(x, np.zeros_like(x))


def _sigmoid(x):
    # stable in both tails: exp of a non-positive number only
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _pad(x, *, shape, starts, stops, steps, dims):
    out = np.zeros(resolve_shape(tuple(shape), dims), dtype=x.dtype)
    out[tuple(slice(a, None if isinstance(b, str) else b, s) for a, b, s in zip(starts, stops, steps))] = x
    return out


def _sum_to(x, *, shape, dims):
    target = resolve_shape(tuple(shape), dims)
    lead = x.ndim - len(target)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target) if d == 1 and x.shape[lead + i] != 1)
    return np.sum(x, axis=axes, keepdims=True).reshape(target) if axes else x.reshape(target)


def _solve(a, b):
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise MetaccError("solve: the matrix is singular", hint="add a ridge term (lam * eye(n)) "
                          "to keep the system well-posed")


IMPLS: dict[str, Callable] = {
    "neg": _f(np.negative), "exp": _f(np.exp), "log": _f(np.log), "log1p": _f(np.log1p),
    "sqrt": _f(np.sqrt), "abs": _f(np.abs), "tanh": _f(np.tanh), "sigmoid": _f(_sigmoid),
    "relu": _f(lambda x: np.maximum(x, 0).astype(x.dtype)), "softplus": _f(_softplus),
    "sin": _f(np.sin), "cos": _f(np.cos), "sign": _f(np.sign),
    "ipow": lambda x, *, n, **_: (x ** n).astype(x.dtype) if n >= 0 else (1 / x ** -n).astype(x.dtype),
    "add": lambda x, y, **_: x + y, "sub": lambda x, y, **_: x - y,
    "mul": lambda x, y, **_: x * y, "div": lambda x, y, **_: x / y,
    "pow": lambda x, y, **_: np.power(x, y), "maximum": lambda x, y, **_: np.maximum(x, y),
    "minimum": lambda x, y, **_: np.minimum(x, y),
    "lt": lambda x, y, **_: x < y, "le": lambda x, y, **_: x <= y, "gt": lambda x, y, **_: x > y,
    "ge": lambda x, y, **_: x >= y, "eq": lambda x, y, **_: x == y, "ne": lambda x, y, **_: x != y,
    "logical_and": lambda x, y, **_: np.logical_and(x, y),
    "logical_or": lambda x, y, **_: np.logical_or(x, y),
    "logical_not": lambda x, **_: np.logical_not(x),
    "select": lambda c, a, b, **_: np.where(c, a, b),
    "cast": lambda x, *, dtype, **_: np.asarray(x).astype(NUMPY_DTYPE[dtype]),
    "stop_gradient": lambda x, **_: x,
    "straight_through": lambda hard, surrogate, **_: np.broadcast_to(hard, surrogate.shape).copy(),
    "reshape": lambda x, *, shape, dims, **_: np.reshape(x, resolve_shape(tuple(shape), dims)),
    "transpose": lambda x, *, perm, **_: np.transpose(x, perm),
    "broadcast_to": lambda x, *, shape, dims, **_: np.broadcast_to(x, resolve_shape(tuple(shape), dims)).copy(),
    "sum_to": _sum_to,
    "slice": lambda x, *, starts, stops, steps, **_: x[tuple(
        slice(a, None if isinstance(b, str) else b, s) for a, b, s in zip(starts, stops, steps))].copy(),
    "pad": _pad,
    "concatenate": lambda *xs, axis, **_: np.concatenate(xs, axis=axis),
    "reduce_sum": lambda x, *, axes, keepdims=False, **_: np.sum(x, axis=tuple(axes), keepdims=keepdims),
    "reduce_max": lambda x, *, axes, keepdims=False, **_: np.max(x, axis=tuple(axes), keepdims=keepdims),
    "argmax": lambda x, *, axis, **_: np.argmax(x, axis=axis).astype(np.int64),
    "matmul": lambda a, b, **_: a @ b,
    "solve": lambda a, b, **_: _solve(a, b),
    "full": lambda *, shape, value, dtype, dims, **_: np.full(resolve_shape(tuple(shape), dims), value,
                                                              dtype=NUMPY_DTYPE[dtype]),
    "eye": lambda *, n, dtype, dims, **_: np.eye(resolve_shape((n,), dims)[0], dtype=NUMPY_DTYPE[dtype]),
    "iota": lambda *, n, dtype="i64", dims, **_: np.arange(resolve_shape((n,), dims)[0]).astype(NUMPY_DTYPE[dtype]),
    "dim_size": lambda *, dims: None,  # replaced below: needs the dim values, not the param name
    "one_hot": lambda idx, *, n, dtype, **_: (np.asarray(idx)[..., None] == np.arange(n)).astype(NUMPY_DTYPE[dtype]),
    "key_fold": lambda key, data, **_: rng.fold(key, data),
    "rng_uniform": lambda key, *, shape, dtype, dims, **_: rng.uniform(key, resolve_shape(tuple(shape), dims),
                                                                       NUMPY_DTYPE[dtype]),
    "rng_normal": lambda key, *, shape, dtype, dims, **_: rng.normal(key, resolve_shape(tuple(shape), dims),
                                                                     NUMPY_DTYPE[dtype]),
}

IMPLS.update(CONV_IMPLS)


def _dim_size(*, dims, dtype, bindings):
    return NUMPY_DTYPE[dtype](np.prod(resolve_shape(tuple(dims), bindings), dtype=np.float64))


def bind_dims(fn: Func, args, dims: dict[str, int] | None = None) -> dict[str, int]:
    """Bind fn's symbolic dims from the shapes of args (checked consistent)."""
    dims = dict(dims or {})
    for v, a in zip(fn.ins, args):
        shape = np.shape(a)
        if len(shape) != v.type.rank:
            raise InternalError(f"{v.name}: expected rank {v.type.rank}, got shape {shape}")
        for d, s in zip(v.type.shape, shape):
            if isinstance(d, str):
                if dims.setdefault(d, s) != s:
                    raise InternalError(f"dim {d} bound to both {dims[d]} and {s}")
            elif d != s:
                raise InternalError(f"{v.name}: expected shape {v.type.shape}, got {shape}")
    return dims


_expanded: dict[int, tuple[Eqn, Func]] = {}


def _expand(e: Eqn) -> Func:
    """grad/argmin equations evaluate through their AD expansion (kept alive with the eqn)."""
    hit = _expanded.get(id(e))
    if hit is None or hit[0] is not e:
        from metacc.ad.expand import expand_eqn
        from metacc.passes.lower_cg import lower_cg
        hit = (e, lower_cg(expand_eqn(e)))
        _expanded[id(e)] = hit
    return hit[1]


def evaluate(fn: Func, args, dims: dict[str, int] | None = None) -> list[np.ndarray]:
    """Evaluate fn on NumPy arrays; returns its outputs as a list.

    `diagnostic` equations (a solver's convergence figure) are collected while
    the outermost call runs; it then warns (metacc.ConvergenceWarning) about any
    figure above its tolerance, as the compiled kernels do."""
    from metacc.diagnostics import finish_collecting, start_collecting
    token = start_collecting()
    ok = False
    try:
        out = _evaluate(fn, args, dims)
        ok = True
    finally:
        finish_collecting(token, ok)
    return out


# an observer of every equation evaluated (metacc.nonfinite uses it to find the
# first equation that makes a NaN or inf); None, the default, costs one lookup
# per function evaluated
_watch: contextvars.ContextVar = contextvars.ContextVar("metacc_interp_watch", default=None)


def watching(watch):
    """Context manager: call watch.begin(e) before and watch.eqn(e, ins, outs)
    after each equation (sub-functions' equations come in between), and keep
    watch.loops, a list of (scan eqn, iteration), current while a scan body runs."""
    return _Watching(watch)


class _Watching:
    def __init__(self, watch):
        self.watch = watch

    def __enter__(self):
        self.token = _watch.set(self.watch)
        return self.watch

    def __exit__(self, *exc):
        _watch.reset(self.token)
        return False


def _evaluate(fn: Func, args, dims: dict[str, int] | None = None) -> list[np.ndarray]:
    dims = bind_dims(fn, args, dims)
    watch = _watch.get()
    env: dict[Var, object] = {v: np.asarray(a) for v, a in zip(fn.ins, args)}

    def read(a):
        if isinstance(a, Lit):
            return NUMPY_DTYPE[a.type.dtype](a.value)
        return env[a]

    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        if watch is not None:
            watch.begin(e)
        outs = _eval_eqn(e, ins, dims)
        for v, val in zip(e.outs, outs):
            val = np.asarray(val)
            want = NUMPY_DTYPE[v.type.dtype]
            if val.dtype != want:
                val = val.astype(want)
            env[v] = val
        if watch is not None:
            watch.eqn(e, ins, [env[v] for v in e.outs])
    return [read(a) for a in fn.outs]


def _eval_eqn(e: Eqn, ins, dims):
    p = e.prim
    if p == "scan":
        return _scan(e, ins, dims)
    if p == "call":
        return evaluate(e.params["fn"], ins, dims)
    if p in ("grad", "argmin", "cg_solve"):
        return evaluate(_expand(e), ins, dims)
    if p == "diagnostic":
        from metacc.diagnostics import record
        record(e, ins[0])
        return []
    if p == "one_hot":
        # a label outside 0..n-1 is an error here as in the kernels (metacc.labels)
        from metacc.labels import check_values
        check_values(e, ins[0])
    if p == "dim_size":
        return [_dim_size(dims=e.params["dims"], dtype=e.params["dtype"], bindings=dims)]
    with np.errstate(all="ignore"):
        return [IMPLS[p](*ins, **e.params, dims=dims)]


def _scan(e: Eqn, ins, dims):
    prm = e.params
    body, length = prm["body"], prm["length"]
    nc, nk = prm["n_consts"], prm["n_carry"]
    consts, carry, xs = ins[:nc], list(ins[nc:nc + nk]), ins[nc + nk:]
    ys_steps: list[list] = []
    order = range(length - 1, -1, -1) if prm.get("reverse") else range(length)
    watch = _watch.get()
    for k in order:
        if watch is not None:
            watch.loops.append((e, k))
        outs = evaluate(body, list(consts) + carry + [x[k] for x in xs], dims)
        if watch is not None:
            watch.loops.pop()
        carry = outs[:nk]
        ys_steps.append(outs[nk:])
    n_ys = len(body.outs) - nk
    ys = []
    for j in range(n_ys):
        t = body.outs[nk + j].type
        if length == 0:
            ys.append(np.zeros((0,) + resolve_shape(t.shape, dims), NUMPY_DTYPE[t.dtype]))
            continue
        stacked = [s[j] for s in ys_steps]
        if prm.get("reverse"):
            stacked = stacked[::-1]
        ys.append(np.stack(stacked))
    return carry + ys
