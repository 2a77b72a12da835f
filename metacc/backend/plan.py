"""Buffer planning: where every value of a function (and of its scan bodies) lives.

Storage kinds (arrays are addressed as (1-D array, offset), row-major):
  scalar   rank 0: a Python local
  local    a fused member never stored: a scalar local inside its loop nest
  slot     a region of the workspace, laid out once per call and reused by
           every iteration of any loop around it (its local is the offset)
  dest     written straight into its final place: an output argument of the
           kernel, or row k of a scan's stacked `ys` buffer
  alias    no storage of its own: an input, a reshape (same memory, same
           layout), a scan's final carry, a row of a scan's xs
  absorbed a transpose read in place by its matmul

Scan carries rotate between buffers instead of being copied (mode per carry):
  swap     the body computes the new carry into its own slot: swap the two offsets
  rebind   the new carry is also a `ys` row: just point the carry at that row
  stage    anything else (the carry passes another input through, or one value
           feeds two carries): copy into a spare buffer, then swap with it
  keep     the body returns the carry itself: it stays where it is
  scalar   rank 0: tuple assignment
"""
from __future__ import annotations

from dataclasses import dataclass, field

from metacc.backend.conv_lower import CONV_OWNING, scratch_size, scratch_type
from metacc.backend.fusion import FusionPlan, plan_fusion
from metacc.backend.naming import CodeNames
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout
from metacc.ir.types import TensorType

OWNING = frozenset({"matmul", "solve", "argmax"}) | CONV_OWNING


@dataclass
class Slot:
    name: str
    type: TensorType


@dataclass
class ScanPlan:
    body: "BodyPlan"
    modes: list[str]
    spare: list[tuple[str, ...]]   # per carry: slot names of the extra buffers


@dataclass
class BodyPlan:
    fn: Func
    fusion: FusionPlan
    storage: dict[Var, str]
    scans: dict[Eqn, ScanPlan] = field(default_factory=dict)
    lu: dict[Eqn, tuple[str, str]] = field(default_factory=dict)   # solve -> (factors, pivots)
    scratch: dict[Eqn, str] = field(default_factory=dict)          # convolution -> its scratch slot


@dataclass
class Slots:
    items: list[Slot] = field(default_factory=list)
    by_name: dict[str, Slot] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)     # dtype -> the convolutions' scratch slot

    def add(self, name: str, type: TensorType) -> str:
        s = Slot(name, type)
        self.items.append(s)
        self.by_name[name] = s
        return name

    def scratch(self, dtype: str, size: int, names: CodeNames) -> str:
        """The one scratch buffer of a dtype that every convolution of the kernel shares
        (they run one after another), grown to the largest need."""
        name = self.shared.get(dtype)
        if name is None:
            name = self.shared[dtype] = self.add(names.fresh(f"conv_scratch_{dtype}"), scratch_type(dtype, size))
        elif self.by_name[name].type.shape[0] < size:
            self.by_name[name].type = scratch_type(dtype, size)
        return name


def _owns(e: Eqn, v: Var, fusion: FusionPlan) -> bool:
    """Does e compute v into storage it writes itself?"""
    if v.type.rank == 0:
        return False
    if e in fusion.absorbed:
        return False
    if e in fusion.group_of:
        g = fusion.group_of[e]
        return e in g.sinks or v in fusion.materialized
    if e.prim in OWNING:
        return True
    if e.prim == "reshape":
        return e.ins[0].type.rank == 0
    if e.prim == "scan":
        return ScanLayout.of(e).is_ys(list(e.outs).index(v))
    return False


def plan_body(fn: Func, names: CodeNames, slots: Slots, dest_outs: list,
              fusion: FusionPlan | None = None) -> BodyPlan:
    """Plan fn. `dest_outs` are the outputs that have a place waiting for them
    (kernel output arguments, or scan `ys` rows); an owned value that is one
    of them (first occurrence) is computed straight into it. `fusion`: fn's
    fusion plan when the caller has it already (plan_fusion(fn) otherwise)."""
    fusion = plan_fusion(fn) if fusion is None else fusion
    storage: dict[Var, str] = {}
    defined_by: dict[Var, Eqn] = {v: e for e in fn.eqns for v in e.outs}
    dest_set: set[Var] = set()
    for a in dest_outs:
        # a scan's stacked ys stay in the workspace: its carries may point into them
        if (isinstance(a, Var) and a in defined_by and a not in dest_set and defined_by[a].prim != "scan"
                and _owns(defined_by[a], a, fusion)):
            dest_set.add(a)
    for v in fn.ins:
        storage[v] = "scalar" if v.type.rank == 0 else "alias"
    plan = BodyPlan(fn, fusion, storage)
    for e in fn.eqns:
        for v in e.outs:
            if e in fusion.absorbed:
                storage[v] = "absorbed"
            elif v.type.rank == 0:
                storage[v] = "scalar"
            elif e in fusion.group_of and e not in fusion.group_of[e].sinks and v not in fusion.materialized:
                storage[v] = "local"
            elif _owns(e, v, fusion):
                storage[v] = "dest" if v in dest_set else "slot"
                if storage[v] == "slot":
                    slots.add(names(v), v.type)
            else:
                storage[v] = "alias"
        if e.prim == "solve":
            a = e.ins[0]
            lu = slots.add(names.fresh("lu"), a.type)
            piv = slots.add(names.fresh("piv"), TensorType("i64", a.type.shape[:1]))
            plan.lu[e] = (lu, piv)
        if e.prim in CONV_OWNING and (need := scratch_size(e)):
            plan.scratch[e] = slots.scratch(e.ins[0].type.dtype, need, names)
        if e.prim == "scan":
            plan.scans[e] = _plan_scan(e, names, slots)
    return plan


def _plan_scan(e: Eqn, names: CodeNames, slots: Slots) -> ScanPlan:
    body: Func = e.params["body"]
    layout = ScanLayout.of(e)
    carry_outs, ys = layout.split_outs(body.outs)
    carry_ins = layout.carry(body.ins)
    # name the carries before the body so that its values keep their own names
    for v in carry_ins:
        names(v)
    bp = plan_body(body, names, slots, list(ys))
    modes, spare = [], []
    for o, c in zip(carry_outs, carry_ins):
        if o is c:
            # passed through unchanged (the reverse of a first-order loop): nothing to rotate
            modes.append("keep")
            spare.append(())
            continue
        if c.type.rank == 0:
            modes.append("scalar")
            spare.append(())
            continue
        unique = isinstance(o, Var) and carry_outs.count(o) == 1
        kind = bp.storage.get(o) if isinstance(o, Var) and o not in body.ins else None
        if unique and kind == "slot":
            modes.append("swap")
            # o's own slot is replaced by a pair the two names rotate through,
            # both reset at each entry to the scan
            slots.items.remove(slots.by_name.pop(names(o)))
            spare.append((slots.add(names.fresh(names(c) + "_buf"), c.type),
                          slots.add(names.fresh(names(o) + "_buf"), c.type)))
        elif unique and kind == "dest":
            modes.append("rebind")
            # the carry starts from a workspace copy of its initial value, so
            # that it only ever points into the workspace
            spare.append((slots.add(names.fresh(names(c) + "_buf"), c.type),))
        else:
            modes.append("stage")
            spare.append((slots.add(names.fresh(names(c) + "_buf"), c.type),
                          slots.add(names.fresh(names(c) + "_spare"), c.type)))
    return ScanPlan(bp, modes, spare)
