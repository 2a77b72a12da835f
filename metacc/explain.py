"""`metacc explain`: which derivative terms each annotation drops, in words.

Reads a function's IR before expansion, where the user's constructs are still
visible: loops (scan, with their label and checkpoint policy), grad,
stop_gradient, straight_through and argmin. Each finding names the .meta
line and states the effect on the gradient, so a user can check it against
the math.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Var


def _where(e: Eqn) -> str:
    return e.span.where() if e.span else "?"


def _grad_targets(body: Func) -> tuple[list[Eqn], list[Eqn]]:
    """grad equations in a loop body, split into (held constant, differentiated)."""
    stopped = {a for e in body.eqns if e.prim == "stop_gradient" for a in e.ins if isinstance(a, Var)}
    held, live = [], []
    for e in body.eqns:
        if e.prim == "grad":
            (held if all(v in stopped for v in e.outs) else live).append(e)
    return held, live


def explain(fn: Func, name: str | None = None) -> str:
    lines = [f"derivatives of {name or fn.name}:"]
    _walk(fn, lines, indent="  ", depth=0)
    if len(lines) == 1:
        lines.append("  no annotation changes the gradient: it is the exact derivative of the value.")
    return "\n".join(lines)


def magic_stops(fn: Func) -> set:
    """Outputs of the stop_gradient in magic(x) = exp(x - stop_gradient(x)): that one drops no term."""
    stops = {e.outs[0]: e.ins[0] for e in fn.eqns if e.prim == "stop_gradient"}
    subs = {e.outs[0]: e.ins[1] for e in fn.eqns
            if e.prim == "sub" and e.ins[1] in stops and stops[e.ins[1]] is e.ins[0]}
    return {subs[e.ins[0]] for e in fn.eqns if e.prim == "exp" and e.ins[0] in subs}


def _walk(fn: Func, lines: list[str], indent: str, depth: int, in_loop: bool = False):
    grad_outs = {v for e in fn.eqns if e.prim == "grad" for v in e.outs}
    magic = magic_stops(fn)
    for e in fn.eqns:
        if e.prim == "stop_gradient" and e.outs[0] in magic:
            lines.append(f"{indent}{_where(e)}: magic (DiCE) — the value is 1 and the derivative magic(x) dx at "
                         "every order, so magic(log p(sample)) * cost differentiates to the score-function "
                         "estimator (its expectation over the samples is the gradient of the expected cost); "
                         "no term is dropped.")
        elif e.prim == "scan":
            _explain_loop(e, lines, indent)
            _walk(e.params["body"], lines, indent + "  ", depth + 1, in_loop=True)
        elif e.prim == "stop_gradient":
            if e.ins[0] in grad_outs:
                if not in_loop:
                    lines.append(f"{indent}{_where(e)}: this grad(...) is held constant (first-order): "
                                 "the terms through its own derivative (second order) are dropped.")
                continue  # inside a loop it is reported with the loop (first-order)
            lines.append(f"{indent}{_where(e)}: stop_gradient — no derivative passes through this value, "
                         "at any order; every term of the gradient that flows through it is dropped.")
        elif e.prim == "straight_through":
            lines.append(f"{indent}{_where(e)}: straight_through — the value is the hard expression, but the "
                         "derivative is the surrogate's: d(hard)/dx (zero almost everywhere) is replaced by "
                         "d(surrogate)/dx. This is a deliberate bias, not the true gradient.")
        elif e.prim == "grad":
            _walk(e.params["fn"], lines, indent, depth + 1)
        elif e.prim == "argmin":
            imp = e.params.get("implicit")
            solver = e.params.get("solver", {})
            if imp:
                lines.append(f"{indent}{_where(e)}: argmin with implicit differentiation — the "
                             f"{solver.get('steps', '?')} solver steps are not differentiated. The gradient "
                             "is -(d2F/dp2)^-1 d2F/dp d(args) at the solver's result (implicit function "
                             f"theorem), applied by conjugate gradients ({imp.get('iters')} iterations, tol "
                             f"{imp.get('tol')}). It is exact only where the solver reached a stationary point.")
            else:
                lines.append(f"{indent}{_where(e)}: argmin unrolled — the gradient goes through all "
                             f"{solver.get('steps', '?')} solver steps exactly, like an inner loop.")
            _walk(e.params["objective"], lines, indent + "  ", depth + 1)


def _explain_loop(e: Eqn, lines: list[str], indent: str):
    prm = e.params
    body: Func = prm["body"]
    label = prm.get("label") or "loop"
    held, live = _grad_targets(body)
    K = prm["length"]
    head = f"{indent}{_where(e)}: {label}, {K} iteration{'s' if K != 1 else ''}"
    if held and not live:
        lines.append(head + " — first-order: every inner grad(...) is held constant, so the step Jacobian "
                     "of p - a*g(p) is taken as I; the second-order terms -a*d2L/dp2 of each of these "
                     "steps are dropped (derivatives through the step size a and other uses of p are kept).")
    elif live:
        lines.append(head + " — exact: each inner gradient is differentiated, so each step's Jacobian "
                     "I - a*d2L/dp2 is applied (by Hessian-vector products, no Hessian is formed).")
    else:
        lines.append(head + " — exact: the loop is differentiated step by step.")
    ck = prm.get("checkpoint")
    if ck:
        policy = f"every {ck['every']} steps" if "every" in ck else f"{ck['snapshots']} snapshots per level"
        lines.append(f"{indent}  checkpoint({policy}): does not change the gradient — only what is stored "
                     "and what the backward pass recomputes.")
