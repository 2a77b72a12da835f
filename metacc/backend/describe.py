"""Text of the back end's plans, for `metacc show --stage fusion` and `--stage plan`.

Both print the IR being lowered, then what the plan decided about it, under
the IR's own display names, so the two read side by side.
"""
from __future__ import annotations

from metacc.backend.fusion import FusionPlan
from metacc.backend.plan import BodyPlan, Slots
from metacc.ir.core import Func
from metacc.ir.printer import Names, format_func

_STORAGE = ("slot", "dest", "local", "alias", "absorbed", "scalar")


def format_fusion(fn: Func, fusion: FusionPlan) -> str:
    names = Names()
    lines = [format_func(fn, names), "", f"fusion: {len(fusion.groups)} loop nest(s) in {fn.name} "
             "(scan bodies are grouped when their buffers are planned)"]
    for i, g in enumerate(fusion.groups, 1):
        members = ", ".join(names.name(e.outs[0]) + (" (sink)" if e in g.sinks else "") for e in g.members)
        lines.append(f"  nest {i} over [{', '.join(map(str, g.domain))}]: {members}")
    for e, (src, _) in fusion.absorbed.items():
        lines.append(f"  {names.name(e.outs[0])} = transpose({names.name(src)}): read in place by its matmuls")
    stored = sorted(names.name(v) for v in fusion.materialized)
    lines.append(f"  stored to memory: {', '.join(stored) or '(nothing)'}")
    return "\n".join(lines)


def format_plan(plan: BodyPlan, slots: Slots) -> str:
    names = Names()
    lines = [format_func(plan.fn, names), "", f"buffer plan of {plan.fn.name} (metacc.backend.plan):"]
    _storage_lines(plan, names, lines, "  ")
    by_dtype: dict[str, list[str]] = {}
    for s in slots.items:
        by_dtype.setdefault(s.type.dtype, []).append(f"{s.name}: {s.type}")
    for dt, items in sorted(by_dtype.items()):
        lines.append(f"  workspace {dt}: {len(items)} buffer(s): {', '.join(items)}")
    return "\n".join(lines)


def _storage_lines(plan: BodyPlan, names: Names, lines: list[str], indent: str) -> None:
    kinds: dict[str, list[str]] = {}
    for v, kind in plan.storage.items():
        kinds.setdefault(kind, []).append(names.name(v))
    for kind in _STORAGE:
        if kind in kinds:
            lines.append(f"{indent}{kind}: {', '.join(kinds[kind])}")
    for e, sp in plan.scans.items():
        modes = ", ".join(f"{names.name(c)} {m}" for c, m in zip(e.outs, sp.modes))
        lines.append(f"{indent}scan -> {names.name(e.outs[0])}: carries {modes}")
        _storage_lines(sp.body, names, lines, indent + "  ")
