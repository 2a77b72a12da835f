"""Simplification passes: each a pure Func -> Func, verified after it runs.

PIPELINE is data, so `metacc show --stage` can print after any pass.
"""
from __future__ import annotations

from metacc.ir.core import Func
from metacc.ir.verify import verify
from metacc.passes.cse import cse
from metacc.passes.dce import dce
from metacc.passes.fold import fold
from metacc.passes.licm import licm
from metacc.passes.passthrough import passthrough

PIPELINE = [("fold", fold), ("passthrough", passthrough), ("licm", licm), ("cse", cse), ("dce", dce)]


def simplify(fn: Func, rounds: int = 3, outer_symbols: frozenset[str] = frozenset()) -> Func:
    """Fold, CSE and DCE to a fixpoint (at most `rounds` times), verifying after each pass.

    outer_symbols: dims bound by an enclosing function, for a sub-function (a loop
    body) simplified on its own."""
    for _ in range(rounds):
        before = fn
        for name, pass_ in PIPELINE:
            fn = verify(pass_(fn), where=name, outer_symbols=outer_symbols)
        if fn is before:
            break
    return fn
