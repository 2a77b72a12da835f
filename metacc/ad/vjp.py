"""Reverse mode: a forward sweep, then the adjoint of each active equation in reverse.

Each equation's rule (metacc.ad.rules.VJP_RULES: the same table and signature
for every primitive, loops and calls included) has a forward half, which emits
the primal for the forward sweep and returns what the backward half needs (a
loop's stacked residuals), and a backward half, which emits the cotangents of
the inputs given those of the outputs. Every rule emits ordinary primitives, so
the backward program can be differentiated again: grad of grad, HVP as
JVP-of-VJP, meta-gradients through inner gradient steps.
"""
from __future__ import annotations

from metacc.ad.activity import active_outputs, active_vars, cuts, warn_disconnected
from metacc.ad.rules import emit_primal, vjp_rule
from metacc.ad.util import add_any
from metacc.errors import MetaccError
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Var


def vjp_inline(b: Builder, fn: Func, args, out_bars, wrt) -> tuple[list, list]:
    """Emit fn's forward and backward sweeps into b.

    out_bars: one cotangent per output of fn (None = zero). Returns the primal
    outputs and the cotangents of the inputs listed in wrt (None = zero).
    """
    wrt = list(wrt)
    active = active_vars(fn, [i in wrt for i in range(len(fn.ins))])
    env: dict = dict(zip(fn.ins, args))

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    tape = []        # (eqn, new ins, new outs, active inputs, residuals) of the active equations
    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        act_in = [isinstance(a, Var) and a in active for a in e.ins]
        if any(act_in) and any(v in active for v in e.outs):
            outs, residuals = vjp_rule(e.prim).forward(b, e, ins, act_in)
            tape.append((e, ins, list(outs), act_in, residuals))
        else:
            outs = emit_primal(b, e, ins)
        env.update(zip(e.outs, outs))

    bars: dict = {}
    for a, g in zip(fn.outs, out_bars):
        if g is not None and isinstance(a, Var) and a in active:
            bars[env[a]] = add_any(b, bars.get(env[a]), g)

    for e, ins, outs, act_in, residuals in reversed(tape):
        gs = [bars.get(v) for v in outs]
        if all(g is None for g in gs):
            continue
        mark = len(b.eqns)
        in_bars = vjp_rule(e.prim).backward(b, e, ins, outs, gs, act_in, residuals)
        in_bars = b.name_results(mark, in_bars, [x.name + "_bar" if isinstance(x, Var) else None for x in ins])
        for x, xb, act in zip(ins, in_bars, act_in):
            if xb is not None and act and isinstance(x, Var):
                bars[x] = add_any(b, bars.get(x), xb, name=x.name + "_bar")
        # the rule's equations and the accumulations are e's adjoint: they cite e's line
        b.cite(mark, e.span, adjoint=True)
    return [read(a) for a in fn.outs], [bars.get(args[i]) if isinstance(args[i], Var) else None for i in wrt]


def float_inputs(fn: Func) -> list[int]:
    return [i for i, v in enumerate(fn.ins) if v.type.is_float]


def check_connected_inputs(fn: Func, wrt, what: str, span=None, noun: str = "gradient",
                           callable_name: str | None = None):
    """The one rule for differentiated inputs the value (or output) does not
    depend on: when none of `wrt` reaches an output, a MetaccError (a derivative
    that is identically zero is almost always a mistake); when some do, each one
    that does not gets a DisconnectedWarning naming it, and a zero derivative
    (a query-only temperature in the same group as the network, differentiated
    by the inner loop's grad(...), is a program that means what it says).
    callable_name: the function of a derivative kernel, whose forward call works even
    when its derivatives are refused (an accuracy computed through argmax): the error
    says so."""
    wrt = list(wrt)
    dead = [i for i in wrt if not any(active_outputs(fn, [j == i for j in range(len(fn.ins))]))]
    if not dead:
        return
    at = span or fn.span
    for i in dead:
        name = fn.ins[i].name
        blockers = cuts(fn, i)
        notes = [(f"the derivative is cut here by {_describe(e)}", e.span) for e in blockers[:3]]
        hint = ("every path from it to the value passes through an operation without a derivative; "
                "use straight_through(hard, surrogate) for a surrogate gradient, or leave it out of "
                "the differentiated arguments") if blockers else \
               ("it is not used in computing the value; remove it from the differentiated arguments, "
                "or use it")
        if len(dead) == len(wrt):
            # nothing differentiated reaches the value: an error, naming the first
            also = [fn.ins[j].name for j in dead[1:]]
            if also:
                notes.append((f"the same holds for {', '.join(repr(x) for x in also[:5])}"
                              + (f" and {len(also) - 5} more" if len(also) > 5 else ""), None))
            if callable_name is not None:
                notes.append((f"{callable_name} itself can still be called (its value is computed); only its "
                              f"derivatives are refused", None))
            raise MetaccError(f"{noun} of {what} with respect to '{name}' is identically zero",
                              at, hint=hint, notes=notes)
        where = at.where() if at is not None else "<unknown location>"
        reason = ("the derivative is cut by " + ", ".join(
            f"{_describe(e)}" + (f" at {e.span.where()}" if e.span else "") for e in blockers[:3])) \
            if blockers else f"it is not used in computing {'the value' if noun == 'gradient' else 'them'}"
        warn_disconnected(f"{where}: {noun} of {what} with respect to '{name}' is identically zero "
                          f"({reason}); it is returned as zeros. If that is not meant, use it, "
                          + ("use straight_through(hard, surrogate) for a surrogate gradient, " if blockers else "")
                          + "or move it out of the differentiated arguments", name, where)


def metric_cut(fn: Func, wrt):
    """For a value no input of `wrt` reaches: the first operation without a derivative
    that cuts them (an accuracy through argmax or a comparison: a metric, evaluated but
    not differentiated), or None when something else does (a stop_gradient, an input
    not used at all: almost always a mistake)."""
    blockers = [e for i in wrt for e in cuts(fn, i)]
    if not blockers or any(e.prim == "stop_gradient" for e in blockers):
        return None
    return next((e for e in blockers if e.span is not None), blockers[0])


def _describe(e) -> str:
    names = {"gt": "the comparison '>'", "ge": "the comparison '>='", "lt": "the comparison '<'",
             "le": "the comparison '<='", "eq": "the comparison '=='", "ne": "the comparison '!='",
             "stop_gradient": "stop_gradient", "argmax": "argmax", "sign": "sign"}
    return names.get(e.prim, e.prim)
