"""argmin: an inner optimisation, differentiated implicitly or by unrolling.

    p* = argmin_p F(p, extra)   from p_init, by `steps` of SGD with rate `lr`

Unrolled (no `implicit` clause): the SGD loop is an ordinary scan and reverse
mode goes through its steps, as in MAML.

Implicit (`implicit cg(iters, tol)`): the solver runs on stop-gradient inputs,
so none of its steps is differentiated. The result is returned as

    p_out = p* + (stop_gradient(c) - c),   c = A^-1 grad_p F(p*, extra),  A = d2F/dp2 at p*

whose value is exactly p* and whose derivative with respect to `extra` is
-A^-1 d2F/dp d(extra): the implicit-function-theorem gradient (iMAML). A^-1 is
applied by `cg_solve` on Hessian-vector products; no Hessian is formed.

Either way the expansion also reports how far the solver got (metacc.convergence):
the inner objective's gradient norm at the returned point, relative to the
start, against sgd(tol=...). The primal solve for c is value-neutral (p_out's
value is p* whatever c is), so only the solves its derivatives run report
their residual (diagnose=True, set by the JVP/VJP rules of cg_solve).
"""
from __future__ import annotations

from metacc.ad.expand import EXPANSIONS, expand, grad_inline
from metacc.ad.hvp import hvp_func
from metacc.convergence import SGD_TOL, emit, relative_norm, sq_norm
from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func


def _sgd_loop(b: Builder, e: Eqn, objective: Func, init, extra):
    n_p = e.params["n_p"]
    solver = e.params["solver"]
    bb = Builder(span=e.span)
    c_in = [bb.input(v.name, v.type) for v in objective.ins[n_p:]]
    p_in = [bb.input(v.name, v.type) for v in objective.ins[:n_p]]
    grads = grad_inline(bb, objective, p_in + c_in, n_p, span=e.span)
    lr = float(solver.get("lr", 0.01))
    p_out = [bb.sub(p, bb.mul(g, lr), name=p.name) for p, g in zip(p_in, grads)]
    body = bb.build("solver_step", p_out)
    outs = b.emit("scan", *extra, *init, names=[v.name for v in objective.ins[:n_p]], span=e.span,
                  body=body, length=int(solver.get("steps", 100)), n_consts=len(extra), n_carry=n_p,
                  label=f"argmin solver (sgd, {solver.get('steps', 100)} steps)")
    return list(outs)


def _hvp_matvec(objective: Func, n_p: int) -> Func:
    """v, p, extra -> H_pp(p, extra) v."""
    h = hvp_func(objective, list(range(n_p)))      # ins: p, extra, v ; outs: grads, hv
    b = Builder(span=objective.span)
    v = [b.input("v", t) for t in objective.in_types[:n_p]]
    rest = [b.input(x.name, x.type) for x in objective.ins]
    outs = inline(b, h, rest + v)
    return b.build("hessian_matvec", outs[n_p:])


def _report_stationarity(b: Builder, e: Eqn, objective: Func, start, p_end, frozen, g_end=None) -> None:
    """diagnostic: |grad F(p_end)| / |grad F(p0)| (absolute if the start is stationary)."""
    n_p = e.params["n_p"]
    solver = e.params["solver"]
    implicit = e.params.get("implicit")
    if g_end is None:
        g_end = grad_inline(b, objective, list(p_end) + list(frozen), n_p, span=e.span)
    g_0 = grad_inline(b, objective, list(start) + list(frozen), n_p, span=e.span)
    figure = relative_norm(b, sq_norm(b, [b.stop_gradient(g) for g in g_end]), sq_norm(b, g_0),
                           name="argmin_stationarity")
    steps, lr = int(solver.get("steps", 100)), float(solver.get("lr", 0.01))
    if implicit:
        effect = ("The implicit gradient assumes a stationary point, so it is off by roughly "
                  "this figure times the conditioning")
    else:
        effect = (f"The result is not the minimiser (the unrolled gradient is exact for the "
                  f"{steps} steps taken, not for the argmin)")
    advice = (f"{effect}. Raise sgd(steps={steps}) or its rate lr={lr:g} (while lr stays below "
              f"2 / the largest curvature of the objective: a diverging run gives nan), make the "
              f"objective better conditioned (e.g. a stronger proximal/regularising term), or accept "
              f"a looser sgd(tol=...)")
    emit(b, figure, kind="argmin", tol=float(solver.get("tol", SGD_TOL)), span=e.span,
         what=f"argmin (sgd, {steps} steps, lr {lr:g})", advice=advice)


def expand_argmin(b: Builder, e: Eqn, ins) -> list:
    objective = expand(e.params["objective"])
    n_p = e.params["n_p"]
    init, extra = list(ins[:n_p]), list(ins[n_p:])
    implicit = e.params.get("implicit")
    frozen = [b.stop_gradient(x, name=getattr(x, "name", "c")) if x.type.is_float else x for x in extra]
    start = [b.stop_gradient(x, name="p0") for x in init]
    if not implicit:
        out = _sgd_loop(b, e, objective, init, extra)
        _report_stationarity(b, e, objective, start, [b.stop_gradient(p, name="p_end") for p in out], frozen)
        return out
    p_star = [b.stop_gradient(p, name="p_star") for p in _sgd_loop(b, e, objective, start, frozen)]
    g = grad_inline(b, objective, p_star + extra, n_p, span=e.span)
    _report_stationarity(b, e, objective, start, p_star, frozen, g_end=g)
    matvec = _hvp_matvec(objective, n_p)
    c = b.emit("cg_solve", *g, *p_star, *frozen, names=["implicit_dir"] * n_p, span=e.span,
               matvec=matvec, n_b=n_p, iters=int(implicit.get("iters", 20)), tol=float(implicit.get("tol", 1e-8)),
               diagnose=False, what="conjugate gradient of argmin's implicit derivative")
    return [b.add(p, b.sub(b.stop_gradient(ci), ci), name="p_opt") for p, ci in zip(p_star, c)]


EXPANSIONS["argmin"] = expand_argmin
