"""Reverse mode: VJP rules, one per primitive, each emitting IR.

A rule receives the builder, the primal inputs and outputs, the output
cotangents (None = symbolic zero) and the eqn's params, and returns one
cotangent per input (None = zero). Every rule emits ordinary primitives, so
the backward program can be differentiated again: grad of grad, HVP as
JVP-of-VJP, meta-gradients through inner gradient steps.

`vjp_inline` emits a forward sweep (primal values; loops save residuals)
followed by a backward sweep over the active equations in reverse.
"""
from __future__ import annotations

from metacc.ad.activity import active_vars, cuts
from metacc.ad.jvp import _name_new
from metacc.ad.partials import MINUS_ONE, ONE, partials
from metacc.ad.util import add_any, differentiable, materialize, sum_to
from metacc.errors import InternalError
from metacc.ir.builder import Builder
from metacc.ir.core import Func, Lit, Var
from metacc.ir.prims import PRIMS

VJP_RULES: dict = {}


def _elementwise(b, ins, outs, gs, prim, **params):
    (g,) = gs
    bars = []
    for p, x in zip(partials(b, prim, ins, outs[0], params), ins):
        if p is None or not differentiable(x):
            bars.append(None)
            continue
        term = g if p == ONE else b.neg(g) if p == MINUS_ONE else b.mul(p, g)
        bars.append(sum_to(b, term, x.type))
    return bars


def _from_partials(prim: str):
    return lambda b, ins, outs, gs, **prm: _elementwise(b, ins, outs, gs, prim, **prm)


def _no_derivative(b, ins, outs, gs, **_):
    return [None] * len(ins)


# derived from the declarations, as JVP_RULES is (metacc.ad.jvp)
for _name, _prim in PRIMS.items():
    if _prim.partials is not None:
        VJP_RULES[_name] = _from_partials(_name)
    elif _prim.vjp is not None:
        VJP_RULES[_name] = _prim.vjp
    elif _prim.nondiff:
        VJP_RULES[_name] = _no_derivative


def vjp_inline(b: Builder, fn: Func, args, out_bars, wrt) -> tuple[list, list]:
    """Emit fn's forward and backward sweeps into b.

    out_bars: one cotangent per output of fn (None = zero). Returns the primal
    outputs and the cotangents of the inputs listed in wrt (None = zero).
    """
    from metacc.ad.loops import VJP_CONTROL_FORWARD
    wrt = list(wrt)
    active = active_vars(fn, [i in wrt for i in range(len(fn.ins))])
    env: dict = dict(zip(fn.ins, args))

    def read(a):
        return env.get(a, a) if isinstance(a, Var) else a

    tape = []        # (eqn, new ins, new outs, saved) for active equations
    for e in fn.eqns:
        ins = [read(a) for a in e.ins]
        act_in = [isinstance(a, Var) and a in active for a in e.ins]
        is_active = any(act_in) and any(v in active for v in e.outs)
        if is_active and e.prim in VJP_CONTROL_FORWARD:
            outs, saved = VJP_CONTROL_FORWARD[e.prim](b, e, ins, act_in)
        else:
            outs, saved = b.emit(e.prim, *ins, names=[v.name for v in e.outs], span=e.span, **e.params), None
        env.update(zip(e.outs, outs))
        if is_active:
            tape.append((e, ins, list(outs), act_in, saved))

    bars: dict = {}
    for a, g in zip(fn.outs, out_bars):
        if g is not None and isinstance(a, Var) and a in active:
            bars[env[a]] = add_any(b, bars.get(env[a]), g)

    from metacc.ad.loops import VJP_CONTROL_BACKWARD
    for e, ins, outs, act_in, saved in reversed(tape):
        gs = [bars.get(v) for v in outs]
        if all(g is None for g in gs):
            continue
        mark = len(b.eqns)
        if e.prim in VJP_CONTROL_BACKWARD:
            in_bars = VJP_CONTROL_BACKWARD[e.prim](b, e, ins, outs, gs, act_in, saved)
        else:
            rule = VJP_RULES.get(e.prim)
            if rule is None:
                raise InternalError(f"no VJP rule for primitive {e.prim!r}")
            if len(outs) != 1:
                raise InternalError(f"VJP of multi-output primitive {e.prim!r} needs a control rule")
            gs = [materialize(b, gs[0], outs[0].type)]
            in_bars = rule(b, ins, outs, gs, **e.params)
        _name_new(b, mark, in_bars, [x if isinstance(x, Var) else None for x in ins], "_bar")
        for x, xb, act in zip(ins, in_bars, act_in):
            if xb is not None and act and isinstance(x, Var):
                bars[x] = add_any(b, bars.get(x), xb, name=x.name + "_bar")
        # the rule's equations and the accumulations are e's adjoint: they cite e's line
        b.cite(mark, e.span, adjoint=True)
    return [read(a) for a in fn.outs], [bars.get(args[i]) if isinstance(args[i], Var) else None for i in wrt]


def float_inputs(fn: Func) -> list[int]:
    return [i for i, v in enumerate(fn.ins) if v.type.is_float]


def vjp_func(fn: Func, wrt=None, name: str | None = None, out_mask=None) -> Func:
    """ins = fn.ins + one cotangent per float output (where out_mask allows);
    outs = fn.outs + cotangents of the wrt inputs (zeros materialised)."""
    from metacc.ad.expand import expand
    fn = expand(fn)
    wrt = float_inputs(fn) if wrt is None else list(wrt)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    out_bars = []
    for k, a in enumerate(fn.outs):
        take = a.type.is_float and (out_mask is None or out_mask[k])
        out_bars.append(b.input(_nm(a) + "_bar", a.type) if take else None)
    outs, in_bars = vjp_inline(b, fn, args, out_bars, wrt)
    in_bars = [materialize(b, g, fn.ins[i].type, name=fn.ins[i].name + "_bar") for g, i in zip(in_bars, wrt)]
    return b.build(name or fn.name + "_vjp", list(outs) + in_bars)


def grad_func(fn: Func, wrt=None, name: str | None = None, check_connected: bool = True) -> Func:
    """Value and gradient: fn has one float scalar output (then its fn.n_aux auxiliary ones);
    outs = (value, *aux, *grads of wrt)."""
    from metacc.ad.expand import expand
    n_aux = fn.n_aux        # auxiliary outputs: returned after the value, never differentiated
    fn = expand(fn)
    if len(fn.outs) - n_aux != 1 or fn.outs[0].type.rank != 0 or not fn.outs[0].type.is_float:
        raise InternalError(f"grad_func needs a scalar float function, {fn.name} returns "
                            f"{', '.join(map(str, fn.out_types))}")
    wrt = float_inputs(fn) if wrt is None else list(wrt)
    if check_connected:
        check_connected_inputs(Func(fn.name, fn.ins, fn.eqns, fn.outs[:1], fn.span), wrt,
                               what=f"the first result of {fn.name}" if n_aux else f"the value of {fn.name}",
                               callable_name=fn.name)
    b = Builder(span=fn.span)
    args = [b.input(v.name, v.type) for v in fn.ins]
    seed = Lit(1.0, fn.outs[0].type)
    outs, in_bars = vjp_inline(b, fn, args, [seed] + [None] * n_aux, wrt)
    in_bars = [materialize(b, g, fn.ins[i].type, name=fn.ins[i].name + "_bar") for g, i in zip(in_bars, wrt)]
    return b.build(name or fn.name + "_grad", list(outs) + in_bars)


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
    from metacc.ad.activity import active_outputs, cuts, warn_disconnected
    from metacc.errors import MetaccError
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


def _nm(a) -> str:
    return a.name if isinstance(a, Var) else "out"


def _describe(e) -> str:
    names = {"gt": "the comparison '>'", "ge": "the comparison '>='", "lt": "the comparison '<'",
             "le": "the comparison '<='", "eq": "the comparison '=='", "ne": "the comparison '!='",
             "stop_gradient": "stop_gradient", "argmax": "argmax", "sign": "sign"}
    return names.get(e.prim, e.prim)
