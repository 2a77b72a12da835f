"""Small helpers shared by the forward- and reverse-mode rules.

Symbolic zeros are `None`: a tangent or cotangent that is structurally zero
costs nothing and is never materialised unless something needs an array.
They live with the declarations (metacc/ir/primitives/rulekit.py), whose rules
use them too; this module keeps their names for metacc.ad.
"""
from __future__ import annotations

from metacc.ir.primitives.rulekit import (add_any, broadcast, differentiable, is_lit, materialize, sum_to,
                                          zeros)

__all__ = ["add_any", "broadcast", "differentiable", "is_lit", "materialize", "sum_to", "zeros"]
