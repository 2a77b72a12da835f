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
"""
from __future__ import annotations

from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func


def _sgd_loop(b: Builder, e: Eqn, objective: Func, init, extra):
    from metacc.ad.expand import grad_inline
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
    from metacc.ad.hvp import hvp_func
    h = hvp_func(objective, list(range(n_p)))      # ins: p, extra, v ; outs: grads, hv
    b = Builder(span=objective.span)
    v = [b.input("v", t) for t in objective.in_types[:n_p]]
    rest = [b.input(x.name, x.type) for x in objective.ins]
    outs = inline(b, h, rest + v)
    return b.build("hessian_matvec", outs[n_p:])


def expand_argmin(b: Builder, e: Eqn, ins) -> list:
    from metacc.ad.expand import expand, grad_inline
    objective = expand(e.params["objective"])
    n_p = e.params["n_p"]
    init, extra = list(ins[:n_p]), list(ins[n_p:])
    implicit = e.params.get("implicit")
    if not implicit:
        return _sgd_loop(b, e, objective, init, extra)
    frozen = [b.stop_gradient(x, name=getattr(x, "name", "c")) if x.type.is_float else x for x in extra]
    start = [b.stop_gradient(x, name="p0") for x in init]
    p_star = [b.stop_gradient(p, name="p_star") for p in _sgd_loop(b, e, objective, start, frozen)]
    g = grad_inline(b, objective, p_star + extra, n_p, span=e.span)
    matvec = _hvp_matvec(objective, n_p)
    c = b.emit("cg_solve", *g, *p_star, *frozen, names=["implicit_dir"] * n_p, span=e.span,
               matvec=matvec, n_b=n_p, iters=int(implicit.get("iters", 20)), tol=float(implicit.get("tol", 1e-8)))
    return [b.add(p, b.sub(b.stop_gradient(ci), ci), name="p_opt") for p, ci in zip(p_star, c)]
