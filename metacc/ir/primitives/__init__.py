"""Every primitive of the IR, each declared once (see declare.py).

A module per family: pointwise (unary, binary, compare, logic, select, cast),
structural (and creation), reductions, linalg, conv (convolution and pooling), random, control (special,
control and effects). Importing this package declares them all in REGISTRY.

Place in the layers: above metacc.errors, metacc.ir.types, metacc.ir.core and
metacc.ir.rng; below everything that reads the tables (ir.prims, ir.builder,
metacc.interp, ad/, backend/, frontend/). Declarations import neither ad/ nor
backend/: rules receive the builder or the backend's scalar-code context.
"""
from __future__ import annotations

from metacc.ir.primitives import control, conv, linalg, pointwise, random, reductions, structural  # noqa: F401
from metacc.ir.primitives.declare import (ELEMENTWISE, EXPANDED, GENERATOR, HOOK, INDEXED, LOWERINGS, REGISTRY,
                                          SINK, Primitive, declare, infer, lookup, need_rule, of_family)

__all__ = ["ELEMENTWISE", "EXPANDED", "GENERATOR", "HOOK", "INDEXED", "LOWERINGS", "REGISTRY", "SINK",
           "Primitive", "declare", "infer", "lookup", "need_rule", "of_family"]
