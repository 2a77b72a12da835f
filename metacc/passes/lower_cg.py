"""Lower `cg_solve` to a plain loop of conjugate-gradient iterations.

AD treats cg_solve as the exact linear solve A^-1 b (its derivative in b is
another solve), so it stays a primitive through the transforms; this pass,
run before evaluation and code generation, spells it out as a scan of
`iters` CG steps over all leaves of the vector at once. Once the relative
residual |r| <= tol |b| the iterates freeze (select), so extra iterations
are harmless and no division by a zero residual reaches the result.
The final relative residual is reported as a `diagnostic` (metacc.convergence)
unless the solve says diagnose=False (the value-neutral primal solve of an
implicit argmin; the solves of its derivatives report).
"""
from __future__ import annotations

from metacc.convergence import emit, relative_norm
from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func
from metacc.ir.rewrite import rewrite
from metacc.ir.walk import any_eqn


def _dot(b, xs, ys):
    total = None
    for x, y in zip(xs, ys):
        s = b.reduce_sum(b.mul(x, y), axes=tuple(range(x.type.rank)))
        total = s if total is None else b.add(total, s)
    return total


def cg_loop(b: Builder, e: Eqn, ins) -> list:
    prm = e.params
    n = prm["n_b"]
    rhs, consts = list(ins[:n]), list(ins[n:])
    matvec: Func = lower_cg(prm["matvec"])
    dtype = rhs[0].type.dtype
    # body: consts (matvec consts, tol^2 |b|^2) ; carry (x, r, p, rs)
    bb = Builder(span=e.span)
    c_in = [bb.input(getattr(c, "name", "c"), c.type) for c in consts]
    thresh = bb.input("threshold", rhs[0].type.with_shape(()))
    x = [bb.input("x", t.type) for t in rhs]
    r = [bb.input("r", t.type) for t in rhs]
    p = [bb.input("p", t.type) for t in rhs]
    rs = bb.input("rs", thresh.type)
    ap = inline(bb, matvec, p + c_in)
    going = bb.gt(rs, thresh, name="not_converged")
    alpha = bb.div(rs, _dot(bb, p, ap), name="step")
    x2 = [bb.select(going, bb.add(xi, bb.mul(alpha, pi)), xi, name="x") for xi, pi in zip(x, p)]
    r2 = [bb.select(going, bb.sub(ri, bb.mul(alpha, api)), ri, name="r") for ri, api in zip(r, ap)]
    rs_new = _dot(bb, r2, r2)
    beta = bb.div(rs_new, rs, name="beta")
    p2 = [bb.select(going, bb.add(ri, bb.mul(beta, pi)), pi, name="p") for ri, pi in zip(r2, p)]
    rs2 = bb.select(going, rs_new, rs, name="rs")
    body = bb.build("cg_step", x2 + r2 + p2 + [rs2])
    bb0 = _dot(b, rhs, rhs)
    threshold = b.mul(bb0, b.lit(float(prm["tol"]) ** 2, dtype), name="threshold")
    zeros = [b.full(shape=t.type.shape, value=0.0, dtype=dtype, name="x0") for t in rhs]
    outs = b.emit("scan", *consts, threshold, *zeros, *rhs, *rhs, bb0,
                  names=["x"] * n + ["r"] * n + ["p"] * n + ["rs"], span=e.span, body=body,
                  length=int(prm["iters"]), n_consts=len(consts) + 1, n_carry=3 * n + 1,
                  label="conjugate gradient")
    if prm.get("diagnose", True):
        _report_residual(b, e, outs[3 * n], bb0)
    return list(outs[:n])


def _report_residual(b: Builder, e: Eqn, rs, bb0) -> None:
    """diagnostic: the final relative residual |r| / |b| (0 when b = 0) against tol."""
    prm = e.params
    iters, tol = int(prm["iters"]), float(prm["tol"])
    figure = relative_norm(b, rs, bb0, name="cg_residual")
    advice = (f"A derivative computed from this solve is off by about this figure times the "
              f"condition number of the system. Raise cg(iters={iters}), make the system better "
              f"conditioned with a stronger regulariser (e.g. a larger proximal weight lam), or "
              f"accept a looser cg(tol={tol:g})")
    emit(b, figure, kind="cg", tol=tol, span=e.span,
         what=f"{prm.get('what', 'conjugate gradient')} ({iters} iteration{'s' if iters != 1 else ''})", advice=advice)


def needs(fn: Func) -> bool:
    return any_eqn(fn, lambda e: e.prim == "cg_solve")


def lower_cg(fn: Func) -> Func:
    if not needs(fn):
        return fn
    return rewrite(fn, lambda b, e, ins: _cited_cg_loop(b, e, ins) if e.prim == "cg_solve" else None, lower_cg)


def _cited_cg_loop(b: Builder, e: Eqn, ins) -> list:
    """cg_loop, whose equations (the residual figure's too) cite the solve's line."""
    mark = len(b.eqns)
    outs = cg_loop(b, e, ins)
    b.cite(mark, e.span)
    return outs
