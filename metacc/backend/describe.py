"""Text of the back end's plans, for `metacc show --stage fusion` and `--stage plan`.

Both print the IR being lowered, then what the plan decided about it, under
the IR's own display names, so the two read side by side.
"""
from __future__ import annotations

import textwrap

from metacc.backend.fusion import FusionPlan
from metacc.backend.plan import BodyPlan, Slots
from metacc.ir.core import Func
from metacc.ir.printer import Names, format_func

_STORAGE = ("slot", "dest", "local", "alias", "absorbed", "scalar")


def _listed(indent: str, label: str, items) -> str:
    """`label: a, b, c` wrapped at 100 columns, continued under the first item."""
    return textwrap.fill(f"{indent}{label}: {', '.join(items) or '(nothing)'}", 100,
                         subsequent_indent=indent + "    ", break_on_hyphens=False)


def format_fusion(fn: Func, fusion: FusionPlan) -> str:
    names = Names()
    lines = [format_func(fn, names), "", f"fusion: {len(fusion.groups)} loop nest(s) in {fn.name} "
             "(scan bodies are grouped when their buffers are planned)"]
    for i, g in enumerate(fusion.groups, 1):
        members = [names.name(e.outs[0]) + (" (sink)" if e in g.sinks else "") for e in g.members]
        lines.append(_listed("  ", f"nest {i} over [{', '.join(map(str, g.domain))}]", members))
    for e, (src, _) in fusion.absorbed.items():
        lines.append(f"  {names.name(e.outs[0])} = transpose({names.name(src)}): read in place by its matmuls")
    stored = sorted(names.name(v) for v in fusion.materialized)
    lines.append(_listed("  ", "stored to memory", stored))
    return "\n".join(lines)


def format_plan(plan: BodyPlan, slots: Slots) -> str:
    names = Names()
    lines = [format_func(plan.fn, names), "", f"buffer plan of {plan.fn.name} (metacc.backend.plan):"]
    _storage_lines(plan, names, lines, "  ")
    by_dtype: dict[str, list[str]] = {}
    for s in slots.items:
        by_dtype.setdefault(s.type.dtype, []).append(f"{s.name}: {s.type}")
    for dt, items in sorted(by_dtype.items()):
        lines.append(_listed("  ", f"workspace {dt}: {len(items)} buffer(s)", items))
    return "\n".join(lines)


def _storage_lines(plan: BodyPlan, names: Names, lines: list[str], indent: str) -> None:
    kinds: dict[str, list[str]] = {}
    for v, kind in plan.storage.items():
        kinds.setdefault(kind, []).append(names.name(v))
    for kind in _STORAGE:
        if kind in kinds:
            lines.append(_listed(indent, kind, kinds[kind]))
    for e, sp in plan.scans.items():
        modes = [f"{names.name(c)} {m}" for c, m in zip(e.outs, sp.modes)]
        lines.append(_listed(indent, f"scan -> {names.name(e.outs[0])}: carries", modes))
        _storage_lines(sp.body, names, lines, indent + "  ")
