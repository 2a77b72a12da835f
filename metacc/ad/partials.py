"""The partial derivatives of elementwise primitives, one table for both modes.

`partials(b, prim, ins, out, params)` returns, for each input, the elementwise
partial derivative d out / d in_i as an IR value (built with the builder `b`),
or ONE / MINUS_ONE where the partial is the constant ±1 (so no multiply is
emitted), or None where it is zero. Both forward mode (out_dot = sum_i
partial_i * in_dot_i) and reverse mode (in_bar_i = sum_to(partial_i * out_bar))
are driven by it, so the two directions cannot disagree. Every partial is
written in IR primitives, so it can itself be differentiated (second order and
beyond). The partials are declared with their primitives (metacc/ir/primitives/
pointwise.py); PARTIALS is today's view of them, `PARTIALS[prim](b, ins, out)`.
"""
from __future__ import annotations

from metacc.ir.primitives import REGISTRY, need_rule
from metacc.ir.primitives.rulekit import MINUS_ONE, ONE
from metacc.ir.primitives.rulekit import mask as _mask  # noqa: F401  (today's name)

__all__ = ["MINUS_ONE", "ONE", "PARTIALS", "partials"]

# the primitives without static parameters (ipow's partial needs its n: use partials())
PARTIALS = {name: p.partials for name, p in REGISTRY.items() if p.partials is not None and not p.params}


def partials(b, prim: str, ins, out, params):
    p = REGISTRY.get(prim)
    if p is not None and p.partials is not None:
        return p.partials(b, ins, out, **params)
    return need_rule(PARTIALS, prim, "partials")(b, ins, out)
