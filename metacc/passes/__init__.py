"""Simplification passes: each a pure Func -> Func, verified after it runs.

PIPELINE is data (metacc.pipeline runs it twice in every kernel, so `metacc show
--stage` can print after any pass); SIMPLIFY is it as a fixpoint group of the
pass driver (metacc.passes.driver), which simplify() runs on its own.
"""
from __future__ import annotations

import sys
from dataclasses import replace

from metacc.ir.core import Func
from metacc.passes.cse import cse
from metacc.passes.dce import dce
from metacc.passes.driver import Build, Fixpoint, ir_pass, run
from metacc.passes.fold import fold
from metacc.passes.licm import licm
from metacc.passes.passthrough import passthrough

PIPELINE = [("fold", fold), ("passthrough", passthrough), ("licm", licm), ("cse", cse), ("dce", dce)]


def _doc(pass_) -> str:
    """A pass's own description: the first line of its module's docstring."""
    return (sys.modules[pass_.__module__].__doc__ or pass_.__name__).splitlines()[0].rstrip(".")


def simplification(suffix: str, doc: str, rounds: int = 3) -> Fixpoint:
    """PIPELINE to a fixpoint, each pass named with `suffix` (a kernel simplifies twice)."""
    return Fixpoint("simplify" + suffix, tuple(ir_pass(name + suffix, p, _doc(p)) for name, p in PIPELINE),
                    doc, rounds)


SIMPLIFY = simplification("", "the simplification passes, repeated until a round changes nothing (at most 3)")


def simplify(fn: Func, rounds: int = 3, outer_symbols: frozenset[str] = frozenset()) -> Func:
    """Fold, CSE and DCE to a fixpoint (at most `rounds` times), verifying after each pass.

    outer_symbols: dims bound by an enclosing function, for a sub-function (a loop
    body) simplified on its own."""
    group = SIMPLIFY if rounds == SIMPLIFY.rounds else replace(SIMPLIFY, rounds=rounds)
    return run((group,), Build(fn), outer_symbols=outer_symbols).fn
