"""The derivative rules: one table per mode, one signature for every primitive.

    JVP_RULES[prim](b, e, ins, tans) -> (outs, out_tans)
        emit e's primal on its new operands `ins` and the tangents of its outputs;
        tans has one entry per input (None = a symbolic zero), and so has the
        result per output

    VJP_RULES[prim] = VjpRule(forward, backward)
        forward(b, e, ins, active) -> (outs, residuals)
            emit e's primal for the forward sweep; `residuals` is what backward
            needs beyond ins and outs: None, or a typed record (metacc.ad.loops's
            ScanResiduals, for a loop that stacked its intermediate values)
        backward(b, e, ins, outs, gs, active, residuals) -> in_bars
            one cotangent per input (None = zero), given one per output

`active[i]` says whether input i carries a derivative. Every rule emits
ordinary primitives, so its result can be differentiated again.

Declared primitives get both entries from their declarations
(metacc/ir/primitives/): the elementwise partials drive both modes; a declared
`jvp(b, ins, outs, tans, **params)` or `vjp(b, ins, outs, gs, **params)` is
wrapped by `tangent_rule` / `cotangent_rule`, which emit the primal first; a
primitive without a derivative gets zeros. scan, call and cg_solve, which
hold sub-functions, register theirs from metacc.ad.loops; grad and argmin are
expanded into other primitives before AD (metacc.ad.expand, metacc.ad.implicit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from metacc.ad.partials import MINUS_ONE, ONE, partials
from metacc.ad.util import add_any, broadcast, differentiable, materialize, sum_to
from metacc.errors import InternalError
from metacc.ir.builder import Builder
from metacc.ir.core import Eqn
from metacc.ir.prims import PRIMS


@dataclass(frozen=True, slots=True)
class VjpRule:
    forward: Callable[..., tuple[list, Any]]
    backward: Callable[..., list]


JVP_RULES: dict[str, Callable] = {}
VJP_RULES: dict[str, VjpRule] = {}


def emit_primal(b: Builder, e: Eqn, ins) -> list:
    """e on new operands, its outputs keeping their names and its line."""
    return list(b.emit(e.prim, *ins, names=[v.name for v in e.outs], span=e.span, **e.params))


def primal_forward(b: Builder, e: Eqn, ins, active):
    """The forward half of a rule that needs nothing but its operands and results."""
    return emit_primal(b, e, ins), None


# ---- adapters from the declarations' builder-level rules

def tangent_rule(rule: Callable) -> Callable:
    """The table entry of a declared jvp(b, ins, outs, tans, **params): the primal, then the rule."""
    def jvp(b: Builder, e: Eqn, ins, tans):
        outs = emit_primal(b, e, ins)
        return outs, rule(b, ins, outs, tans, **e.params)
    return jvp


def cotangent_rule(rule: Callable) -> VjpRule:
    """The table entry of a declared vjp(b, ins, outs, gs, **params) of a one-output primitive."""
    def backward(b: Builder, e: Eqn, ins, outs, gs, active, residuals):
        if len(outs) != 1:
            raise InternalError(f"primitive {e.prim!r} has {len(outs)} outputs: its VJP needs a rule "
                                "of its own (registered in VJP_RULES), not a declared vjp")
        return rule(b, ins, outs, [materialize(b, gs[0], outs[0].type)], **e.params)
    return VjpRule(primal_forward, backward)


def _partials_jvp(b, ins, outs, tans, prim, **params):
    out = outs[0]
    total = None
    for p, t in zip(partials(b, prim, ins, out, params), tans):
        if t is None or p is None:
            continue
        term = t if p == ONE else b.neg(t) if p == MINUS_ONE else b.mul(p, t)
        total = add_any(b, total, broadcast(b, term, out.type.shape))
    return [total]


def _partials_vjp(b, ins, outs, gs, prim, **params):
    (g,) = gs
    bars = []
    for p, x in zip(partials(b, prim, ins, outs[0], params), ins):
        if p is None or not differentiable(x):
            bars.append(None)
            continue
        term = g if p == ONE else b.neg(g) if p == MINUS_ONE else b.mul(p, g)
        bars.append(sum_to(b, term, x.type))
    return bars


def _no_tangents(b, ins, outs, tans, **_):
    return [None] * len(outs)


def _no_cotangents(b, e, ins, outs, gs, active, residuals):
    return [None] * len(ins)


def _from_partials(fn: Callable, prim: str) -> Callable:
    return lambda b, ins, outs, ds, **params: fn(b, ins, outs, ds, prim, **params)


for _name, _prim in PRIMS.items():
    if _prim.partials is not None:
        JVP_RULES[_name] = tangent_rule(_from_partials(_partials_jvp, _name))
        VJP_RULES[_name] = cotangent_rule(_from_partials(_partials_vjp, _name))
    elif _prim.jvp is not None or _prim.vjp is not None:
        if _prim.jvp is not None:
            JVP_RULES[_name] = tangent_rule(_prim.jvp)
        if _prim.vjp is not None:
            VJP_RULES[_name] = cotangent_rule(_prim.vjp)
    elif _prim.nondiff:
        JVP_RULES[_name] = tangent_rule(_no_tangents)
        VJP_RULES[_name] = VjpRule(primal_forward, _no_cotangents)


def _lookup(table: dict, prim: str, mode: str):
    rule = table.get(prim)
    if rule is None:
        raise InternalError(f"no {mode} rule for primitive {prim!r}; declare its partials or {mode.lower()} "
                            f"(metacc/ir/primitives/), or register a rule in metacc.ad.rules.{mode}_RULES")
    return rule


def jvp_rule(prim: str) -> Callable:
    return _lookup(JVP_RULES, prim, "JVP")


def vjp_rule(prim: str) -> VjpRule:
    return _lookup(VJP_RULES, prim, "VJP")
