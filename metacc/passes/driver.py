"""The pass driver: a pipeline is data, a list of named passes run in order.

A `Pass` maps a `Build` (the program so far, with what the back end has
planned for it) to a new one; after each pass that rewrites the IR the
verifier runs, so a broken pass is caught where it breaks. A `Fixpoint` runs
its passes again and again until a round changes nothing (the simplifier).
`run(..., until=NAME)` stops right after any pass, which is what
`metacc show --stage NAME` prints; inside a fixpoint that is the pass's first
round (later rounds mostly change nothing), the group's own name its end.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Union

from metacc.errors import InternalError
from metacc.ir.core import Func
from metacc.ir.verify import verify


@dataclass(frozen=True)
class Build:
    fn: Func                             # the program so far
    kind: str = "forward"                # the kernel kind (metacc.pipeline.KINDS)
    wrt: tuple[int, ...] | None = None   # differentiated inputs, None for forward
    batched: tuple[bool, ...] | None = None   # a flag per input of a task-range kernel; None: one call
    reduce: tuple[str, ...] | None = None     # per output of a task-range kernel: mean, sum or stack
    n_primal: int = 0                    # outputs of the function before it was differentiated
    n_aux: int = 0                       # of those, the auxiliary ones (last; never differentiated)
    descs: tuple = ()                    # one description per hoisted diagnostic output
    fusion: object = None                # the fusion plan (metacc.backend.fusion)
    writer: object = None                # the kernel writer with its buffers planned (metacc.backend.plan)
    source: str | None = None            # the generated module

    def with_fn(self, fn: Func) -> "Build":
        return replace(self, fn=fn)


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Build], Build]
    doc: str
    rewrites_ir: bool = True             # verified after it runs
    show: Callable[[Build], str] | None = None   # what `show --stage` prints; None: the IR


@dataclass(frozen=True)
class Fixpoint:
    name: str
    passes: tuple[Pass, ...]
    doc: str
    rounds: int = 3


Step = Union[Pass, Fixpoint]


def ir_pass(name: str, fn: Callable[[Func], Func], doc: str) -> Pass:
    """A pass that rewrites the IR and touches nothing else."""
    return Pass(name, lambda b: b.with_fn(fn(b.fn)), doc)


def stage_names(steps) -> list[str]:
    """Every name `run(until=...)` accepts, in order: a fixpoint's passes, then the fixpoint."""
    out: list[str] = []
    for s in steps:
        out += [p.name for p in s.passes] + [s.name] if isinstance(s, Fixpoint) else [s.name]
    return out


def find(steps, name: str) -> Pass | Fixpoint | None:
    for s in steps:
        if s.name == name:
            return s
        if isinstance(s, Fixpoint):
            for p in s.passes:
                if p.name == name:
                    return p
    return None


def run(steps, build: Build, until: str | None = None, after: str | None = None,
        outer_symbols: frozenset[str] = frozenset()) -> Build:
    """Run `steps` on build: all of them, or those after the top-level step `after`
    (build is already there), up to and including `until`. outer_symbols: dims bound
    by an enclosing function, for a sub-function (a loop body) run on its own."""
    names = [s.name for s in steps]
    if after is not None and after not in names:
        raise InternalError(f"pipeline: cannot resume after {after!r}: not a top-level step of {names}")
    if until is not None and until not in stage_names(steps):
        raise InternalError(f"pipeline: no stage {until!r} in {stage_names(steps)}")
    todo = steps[names.index(after) + 1:] if after is not None else steps
    for step in todo:
        if isinstance(step, Fixpoint):
            build = _fixpoint(step, build, until, outer_symbols)
            if until in stage_names([step]):
                return build
        else:
            build = _apply(step, build, outer_symbols)
            if step.name == until:
                return build
    return build


def _apply(p: Pass, build: Build, outer_symbols: frozenset[str]) -> Build:
    out = p.run(build)
    if p.rewrites_ir:
        verify(out.fn, where=p.name, outer_symbols=outer_symbols)
    return out


def _fixpoint(group: Fixpoint, build: Build, until: str | None, outer_symbols: frozenset[str]) -> Build:
    for round_ in range(group.rounds):
        before = build.fn
        for p in group.passes:
            build = _apply(p, build, outer_symbols)
            if round_ == 0 and p.name == until:
                return build
        if build.fn is before:
            break
    return build
