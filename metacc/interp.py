"""The reference interpreter: plain NumPy evaluation of IR functions.

It is the oracle for every backend and pass, so it favours the obvious
implementation over speed. `grad` and `argmin` equations are evaluated by
expanding them with metacc.ad first, `cg_solve` by its lowering to a loop
(metacc.passes.lower_cg), cached per equation: like the backends, it is a
client of the IR, AD and the passes, so it sits above them (not in metacc/ir/).
"""
from __future__ import annotations

import contextvars

import numpy as np

from metacc.ad.expand import expand_eqn
from metacc.convergence import finish_collecting, record, start_collecting
from metacc.errors import InternalError
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.primitives import need_rule
from metacc.ir.prims import IMPLS
from metacc.ir.scan import ScanLayout
from metacc.ir.types import NUMPY_DTYPE, resolve_shape
from metacc.labels import check_values
from metacc.passes.lower_cg import lower_cg

# the primitives _eval_eqn evaluates itself: they hold sub-functions, or report to the runtime
EVALUATED_HERE = ("scan", "call", "grad", "argmin", "cg_solve", "diagnostic")


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
        hit = (e, lower_cg(expand_eqn(e)))
        _expanded[id(e)] = hit
    return hit[1]


def evaluate(fn: Func, args, dims: dict[str, int] | None = None) -> list[np.ndarray]:
    """Evaluate fn on NumPy arrays; returns its outputs as a list.

    `diagnostic` equations (a solver's convergence figure) are collected while
    the outermost call runs; it then warns (metacc.ConvergenceWarning) about any
    figure above its tolerance, as the compiled kernels do."""
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
        record(e, ins[0])
        return []
    if p == "one_hot":
        # a label outside 0..n-1 is an error here as in the kernels (metacc.labels)
        check_values(e, ins[0])
    if p == "dim_size":
        return [IMPLS["dim_size"](dims=e.params["dims"], dtype=e.params["dtype"], bindings=dims)]
    impl = need_rule(IMPLS, p, "reference implementation (impl)")
    with np.errstate(all="ignore"):
        return [impl(*ins, **e.params, dims=dims)]


def _scan(e: Eqn, ins, dims):
    prm = e.params
    body, length = prm["body"], prm["length"]
    layout = ScanLayout.of(e)
    consts, carry, xs = layout.split_ins(ins)
    carry = list(carry)
    ys_steps: list[list] = []
    order = range(length - 1, -1, -1) if prm.get("reverse") else range(length)
    watch = _watch.get()
    for k in order:
        if watch is not None:
            watch.loops.append((e, k))
        outs = evaluate(body, list(consts) + carry + [x[k] for x in xs], dims)
        if watch is not None:
            watch.loops.pop()
        carry, ys_row = layout.split_outs(outs)
        carry = list(carry)
        ys_steps.append(ys_row)
    ys = []
    for j, y in enumerate(layout.split_outs(body.outs)[1]):
        t = y.type
        if length == 0:
            ys.append(np.zeros((0,) + resolve_shape(t.shape, dims), NUMPY_DTYPE[t.dtype]))
            continue
        stacked = [s[j] for s in ys_steps]
        if prm.get("reverse"):
            stacked = stacked[::-1]
        ys.append(np.stack(stacked))
    return carry + ys
