"""Fusion planning: which equations of a function share one loop nest.

A *group* is a loop nest over a domain shape. Its members are pointwise
equations whose output has exactly that shape, in program order; a member may
read an earlier member's value as a scalar local of the same iteration (only
elementwise rules do, at the identity index). Reductions (`reduce_sum`,
`reduce_max`, `sum_to`) join the group of their input as *sinks* that
accumulate while the loop runs, so `mean((pred - y) ^ 2)` never stores the
squared errors.

A group runs where its last member stands. So an equation joins a group only
if nothing outside the group between the group's first member and itself
uses a member's value (it would run before the value exists), and not if it
reads a sink's result (complete only after the loop).

A member's value is *materialized* (stored into an array) only when something
outside its group, or the function's result, needs it.

Matmul operands that are a `transpose` used only by matmuls are read in place
(the transpose is *absorbed*): the adjoint code of `x @ w` is full of
`g @ transpose(w)` and `transpose(x) @ g`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from metacc.backend.pointwise import ELEMENTWISE, INDEXED, POINTWISE
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.primitives import SINK
from metacc.ir.prims import PRIMS
from metacc.ir.types import Dim

# reductions that close a loop nest (reduce_sum, reduce_max, sum_to): declared with lowering=SINK
SINKS = frozenset(n for n, p in PRIMS.items() if p.lowering == SINK)


@dataclass(eq=False)
class Group:
    domain: tuple[Dim, ...]
    members: list[Eqn] = field(default_factory=list)
    sinks: set[Eqn] = field(default_factory=set)
    first: int = 0
    last: int = 0

    def defines(self) -> set[Var]:
        return {v for e in self.members for v in e.outs}


@dataclass
class FusionPlan:
    groups: list[Group]
    group_of: dict[Eqn, Group]
    materialized: set[Var]            # member values stored to memory
    absorbed: dict[Eqn, tuple[Var, bool]]   # transpose eqn -> (its operand, True)
    in_group_users: dict[Var, int]    # member value -> number of reads by its own group


def plan_fusion(fn: Func) -> FusionPlan:
    eqns = list(fn.eqns)
    pos = {e: i for i, e in enumerate(eqns)}
    users: dict[Var, list[Eqn]] = {}
    for e in eqns:
        for a in e.ins:
            if isinstance(a, Var):
                users.setdefault(a, []).append(e)

    absorbed: dict[Eqn, tuple[Var, bool]] = {}
    for e in eqns:
        if (e.prim == "transpose" and e.params["perm"] == (1, 0) and isinstance(e.ins[0], Var)
                and e.outs[0] not in fn.outs):
            us = users.get(e.outs[0], [])
            if us and all(u.prim == "matmul" for u in us):
                absorbed[e] = (e.ins[0], True)

    group_of: dict[Eqn, Group] = {}
    member_group: dict[Var, Group] = {}       # value -> group that computes it (non-sink members)
    sink_outs: dict[Var, Group] = {}
    groups: list[Group] = []

    def can_extend(g: Group, at: int, e: Eqn) -> bool:
        if any(isinstance(a, Var) and sink_outs.get(a) is g for a in e.ins):
            return False
        defined = g.defines()
        for p in range(g.first, at):
            other = eqns[p]
            if group_of.get(other) is g:
                continue
            if any(isinstance(a, Var) and a in defined for a in other.ins):
                return False
        return True

    def add(g: Group, e: Eqn, at: int, sink: bool):
        g.members.append(e)
        g.last = at
        group_of[e] = g
        if sink:
            g.sinks.add(e)
            sink_outs[e.outs[0]] = g
        else:
            member_group[e.outs[0]] = g

    def merge(into: Group, other: Group):
        into.members = sorted(into.members + other.members, key=pos.__getitem__)
        into.sinks |= other.sinks
        into.first = min(into.first, other.first)
        into.last = max(into.last, other.last)
        for m in other.members:
            group_of[m] = into
            for v in m.outs:
                if v in member_group:
                    member_group[v] = into
                if v in sink_outs:
                    sink_outs[v] = into
        groups.remove(other)

    for at, e in enumerate(eqns):
        if e in absorbed:
            continue
        if e.prim in POINTWISE:
            shape = e.outs[0].type.shape
            cands: list[Group] = []
            if e.prim in ELEMENTWISE:
                for a in e.ins:
                    g = member_group.get(a) if isinstance(a, Var) else None
                    if g is not None and g.domain == shape and a.type.shape == shape and g not in cands:
                        cands.append(g)
            ok = [g for g in cands if can_extend(g, at, e)]
            if ok:
                target = ok[0]
                for other in ok[1:]:
                    trial = set(target.members) | set(other.members)
                    if _clear(eqns, min(target.first, other.first), at, trial):
                        merge(target, other)
                add(target, e, at, sink=False)
            else:
                g = Group(shape, first=at)
                groups.append(g)
                add(g, e, at, sink=False)
        elif e.prim in SINKS:
            x = e.ins[0]
            g = member_group.get(x) if isinstance(x, Var) else None
            if g is not None and can_extend(g, at, e):
                add(g, e, at, sink=True)
            else:
                g = Group(x.type.shape, first=at)
                groups.append(g)
                add(g, e, at, sink=True)

    materialized: set[Var] = set()
    in_group: dict[Var, int] = {}
    outs = {a for a in fn.outs if isinstance(a, Var)}
    for g in groups:
        for m in g.members:
            if m in g.sinks:
                continue
            v = m.outs[0]
            inside = [u for u in users.get(v, []) if group_of.get(u) is g]
            in_group[v] = len(inside)          # users lists one entry per operand slot
            if v in outs or len(inside) < len(users.get(v, [])):
                materialized.add(v)
    return FusionPlan(groups, group_of, materialized, absorbed, in_group)


def _clear(eqns: list[Eqn], start: int, stop: int, members: set[Eqn]) -> bool:
    defined = {v for e in members for v in e.outs}
    # an indexed member reads its operand at another element: it cannot come from the same loop
    for e in members:
        if e.prim in INDEXED and any(isinstance(a, Var) and a in defined for a in e.ins):
            return False
    for p in range(start, stop):
        other = eqns[p]
        if other in members:
            continue
        if any(isinstance(a, Var) and a in defined for a in other.ins):
            return False
    return True
