"""Which values carry derivatives: structural dataflow, no arithmetic.

`active_outputs(fn, active_ins)` says which outputs of fn depend
differentiably on the active inputs. The transforms use it to skip work on
paths no derivative travels, to size loop-carried tangents and cotangents,
and to tell a user when a parameter is disconnected from a loss. It may
over-approximate (a derivative that is numerically zero), never under.

The rule for a disconnected differentiated input (every kernel kind and every
grad(...) expression, see metacc.ad.vjp.check_connected_inputs): when some
differentiated input reaches the output, each one that does not gets a
`DisconnectedWarning` naming it and the .meta place, and a zero derivative;
when none reaches it, that is a MetaccError. Warnings raised while a kernel is
built are collected (`collecting`), so the runtime can record them with the
kernel and repeat them when it loads the kernel from the disk cache.
"""
from __future__ import annotations

from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout
from metacc.ir.prims import PRIMS
# the warning and its collection live below ad/, so that the runtime can repeat a
# cached kernel's warnings without importing AD; ad/ reaches them through here
from metacc.disconnected import (DisconnectedWarning, collecting, emit, replay,  # noqa: F401
                                 report, warn_disconnected)


# primitives whose outputs never carry a derivative, whatever their inputs: those declared
# nondiff (comparisons, logic, randomness, creation, argmax), and two whose derivative is zero
BLOCKING = frozenset(n for n, p in PRIMS.items() if p.nondiff) | {"stop_gradient", "sign"}


def eqn_active_outs(e: Eqn, act_in: list[bool]) -> list[bool]:
    floats = [v.type.is_float for v in e.outs]
    if e.prim in BLOCKING:
        return [False] * len(e.outs)
    if e.prim == "cast":
        return [act_in[0] and floats[0]]
    if e.prim == "straight_through":
        return [act_in[1]]
    if e.prim == "select":
        return [(act_in[1] or act_in[2]) and floats[0]]
    if e.prim == "scan":
        return scan_active_outs(e, act_in)
    if e.prim == "call":
        return active_outputs(e.params["fn"], act_in)
    if e.prim == "grad":
        # gradients depend on every input of the differentiated function
        return [any(act_in)] * len(e.outs)
    if e.prim == "argmin":
        return [any(act_in)] * len(e.outs)
    return [any(act_in) and f for f in floats]


def scan_carry_activity(e: Eqn, act_in: list[bool]) -> list[bool]:
    """Activity of the body's inputs at the fixpoint: a carry is active if it
    starts active or becomes active after some iteration."""
    layout, body = ScanLayout.of(e), e.params["body"]
    act = list(act_in)
    while True:
        consts, carry, xs = layout.split_ins(act)
        carry_out, _ = layout.split_outs(active_outputs(body, act))
        new = [*consts, *(a or o for a, o in zip(carry, carry_out)), *xs]
        if new == act:
            return act
        act = new


def scan_active_outs(e: Eqn, act_in: list[bool]) -> list[bool]:
    act = scan_carry_activity(e, act_in)
    layout = ScanLayout.of(e)
    _, ys = layout.split_outs(active_outputs(e.params["body"], act))
    return [*layout.carry(act), *ys]


def active_vars(fn: Func, act_in: list[bool]) -> set[Var]:
    active = {v for v, a in zip(fn.ins, act_in) if a and v.type.is_float}
    for e in fn.eqns:
        flags = [isinstance(a, Var) and a in active for a in e.ins]
        if any(flags):
            active.update(v for v, f in zip(e.outs, eqn_active_outs(e, flags)) if f)
    return active


def active_outputs(fn: Func, act_in: list[bool]) -> list[bool]:
    active = active_vars(fn, act_in)
    return [isinstance(a, Var) and a in active for a in fn.outs]


def cuts(fn: Func, index: int) -> list[Eqn]:
    """Equations that stop a derivative on some path from input `index` to an
    output: used to explain a disconnected parameter."""
    reach = {fn.ins[index]}
    found: list[Eqn] = []
    for e in fn.eqns:
        flags = [isinstance(a, Var) and a in reach for a in e.ins]
        if not any(flags) or not e.outs:      # an eqn without outputs (a diagnostic) cuts nothing
            continue
        reach.update(e.outs)
        float_in = [f and isinstance(a, Var) and a.type.is_float for a, f in zip(e.ins, flags)]
        # a cut: a derivative could flow in (a reached float input) but none flows out
        if any(float_in) and not any(eqn_active_outs(e, float_in)):
            found.append(e)
    used = {a for a in fn.outs if isinstance(a, Var)}
    return found if used & reach else []
