"""Forward mode: JVP rules, one per primitive, each emitting IR.

A rule receives the builder, the primal inputs and outputs (already emitted),
the input tangents (None = symbolic zero) and the eqn's params, and returns
the output tangents. Elementwise primitives share the partials table
(metacc.ad.partials) with reverse mode. Loops and calls are in loops.py.
"""
from __future__ import annotations

from metacc.ad.conv_rules import CONV_JVP
from metacc.ad.partials import MINUS_ONE, ONE, partials
from metacc.ad.util import add_any, broadcast, differentiable, materialize
from metacc.errors import InternalError
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Var
from metacc.ir.prims import BINARY, PRIMS, UNARY

JVP_RULES: dict = {}


def _elementwise(b, ins, outs, tans, prim, **params):
    out = outs[0]
    total = None
    for p, t in zip(partials(b, prim, ins, out, params), tans):
        if t is None or p is None:
            continue
        term = t if p == ONE else b.neg(t) if p == MINUS_ONE else b.mul(p, t)
        total = add_any(b, total, broadcast(b, term, out.type.shape))
    return [total]


for _p in UNARY + BINARY + ("ipow",):
    JVP_RULES[_p] = (lambda prim: lambda b, ins, outs, tans, **prm: _elementwise(b, ins, outs, tans, prim, **prm))(_p)


def _same_op(prim):
    """Linear structural ops: the tangent goes through the same op."""
    def rule(b, ins, outs, tans, **params):
        (t,) = tans
        return [None if t is None else b.emit(prim, t, **params)[0]]
    return rule


for _p in ("reshape", "transpose", "broadcast_to", "sum_to", "slice", "pad", "reduce_sum"):
    JVP_RULES[_p] = _same_op(_p)


def _select(b, ins, outs, tans, **_):
    c, x, y = ins
    _, tx, ty = tans
    if tx is None and ty is None:
        return [None]
    zero = b.lit(0.0, outs[0].type.dtype)
    return [broadcast(b, b.select(c, tx if tx is not None else zero, ty if ty is not None else zero),
                      outs[0].type.shape)]


def _cast(b, ins, outs, tans, dtype, **_):
    (t,) = tans
    if t is None or not outs[0].type.is_float:
        return [None]
    return [b.cast(t, dtype=dtype)]


def _concatenate(b, ins, outs, tans, axis, **_):
    if all(t is None for t in tans):
        return [None]
    parts = [materialize(b, t, x.type) for t, x in zip(tans, ins)]
    return [b.concatenate(*parts, axis=axis)]


def _keep_shape(x_type, axes, keepdims_out):
    axes = tuple(a % x_type.rank for a in axes)
    return tuple(1 if i in axes else d for i, d in enumerate(x_type.shape))


def max_mask(b, x, out, axes, keepdims):
    """1 where x attains its max (over axes), divided by the number of ties."""
    kshape = _keep_shape(x.type, axes, keepdims)
    outk = out if keepdims else b.reshape(out, shape=kshape)
    mask = b.cast(b.eq(x, outk), dtype=x.type.dtype, name="argmax_mask")
    count = b.reduce_sum(mask, axes=tuple(axes), keepdims=True, name="ties")
    return b.div(mask, count, name="max_weight"), kshape


def _reduce_max(b, ins, outs, tans, axes, keepdims=False, **_):
    (t,) = tans
    if t is None:
        return [None]
    weight, _ = max_mask(b, ins[0], outs[0], axes, keepdims)
    return [b.reduce_sum(b.mul(weight, t), axes=tuple(axes), keepdims=keepdims)]


def _matmul(b, ins, outs, tans, **_):
    a, c = ins
    ta, tc = tans
    left = None if ta is None else b.matmul(ta, c)
    right = None if tc is None else b.matmul(a, tc)
    return [add_any(b, left, right)]


def _solve(b, ins, outs, tans, **_):
    a, _ = ins
    ta, tb = tans
    x = outs[0]
    rhs = tb
    if ta is not None:
        rhs = add_any(b, rhs, b.neg(b.matmul(ta, x)))
    return [None if rhs is None else b.solve(a, rhs)]


JVP_RULES.update({
    "select": _select,
    "cast": _cast,
    "stop_gradient": lambda b, ins, outs, tans, **_: [None],
    "straight_through": lambda b, ins, outs, tans, **_: [tans[1]],
    "concatenate": _concatenate,
    "reduce_max": _reduce_max,
    "matmul": _matmul,
    "solve": _solve,
})
JVP_RULES.update(CONV_JVP)

# no derivative: integer, boolean, key and creation primitives
for _p, _prim in PRIMS.items():
    if _prim.family in ("compare", "logic", "random", "create", "effect") or _p in ("argmax", "sign"):
        if _p != "sign":
            JVP_RULES[_p] = lambda b, ins, outs, tans, **_: [None] * len(outs)


def jvp_inline(b: Builder, fn: Func, args, arg_tans) -> tuple[list, list]:
    """Emit fn's primal and tangent computation into b; returns (outs, out_tangents)."""
    from metacc.ad.loops import JVP_CONTROL
    env: dict = dict(zip(fn.ins, args))
    tan: dict = {v: t for v, t in zip(fn.ins, arg_tans) if t is not None and v.type.is_float}

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        in_tans = [tan.get(a) if differentiable(a) else None for a in e.ins]
        active = any(t is not None for t in in_tans)
        if active and e.prim in JVP_CONTROL:
            outs, out_tans = JVP_CONTROL[e.prim](b, e, ins, in_tans)
        else:
            outs = b.emit(e.prim, *ins, names=[v.name for v in e.outs], span=e.span, **e.params)
            out_tans = [None] * len(outs)
            if active:
                rule = JVP_RULES.get(e.prim)
                if rule is None:
                    raise InternalError(f"no JVP rule for primitive {e.prim!r}")
                mark = len(b.eqns)
                out_tans = rule(b, ins, list(outs), in_tans, **e.params)
                _name_new(b, mark, out_tans, outs, "_dot")
                b.cite(mark, e.span)
        env.update(zip(e.outs, outs))
        for v, t in zip(e.outs, out_tans):
            if t is not None and v.type.is_float:
                tan[v] = t
    outs = [read(a) for a in fn.outs]
    return outs, [tan.get(a) if isinstance(a, Var) else None for a in fn.outs]


def _name_new(b: Builder, mark: int, results, primals, suffix: str):
    """Give derivative values readable names (h_dot, w_bar)."""
    fresh = {v for eq in b.eqns[mark:] for v in eq.outs}
    for r, p in zip(results, primals):
        if isinstance(r, Var) and r in fresh and p is not None:
            r.name = p.name + suffix


def jvp_func(fn: Func, wrt=None, name: str | None = None) -> Func:
    """ins = fn.ins + tangents of the wrt inputs; outs = fn.outs + tangents of the float outputs
    (not of the last fn.n_aux outputs, which are auxiliary: never differentiated)."""
    from metacc.ad.expand import expand
    n_keep = len(fn.outs) - fn.n_aux
    fn = expand(fn)
    wrt = [i for i, v in enumerate(fn.ins) if v.type.is_float] if wrt is None else list(wrt)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    tans = [None] * len(args)
    for i in wrt:
        tans[i] = b.input(fn.ins[i].name + "_dot", fn.ins[i].type)
    outs, out_tans = jvp_inline(b, fn, args, tans)
    out_tans = [materialize(b, t, a.type, name=_nm(a) + "_dot")
                for t, a in zip(out_tans[:n_keep], outs) if a.type.is_float]
    return b.build(name or fn.name + "_jvp", list(outs) + out_tans)


def _nm(a) -> str:
    return a.name if isinstance(a, Var) else "out"
