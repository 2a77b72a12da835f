"""A primitive's declaration, and the registry every table is derived from.

One `Primitive` holds all that the compiler knows about one primitive: its
static parameters, type rule, reference implementation, derivative (the
elementwise partials of a pointwise primitive, or JVP and VJP rules), how the
Numba backend lowers it, its surface name(s) in the language and how the
front end folds it on numbers at compile time. The families' modules
(pointwise, structural, reductions, linalg, random, control) declare them;
`metacc.ir.prims` (the reference implementations' IMPLS among them),
`metacc.ad.*` and `metacc.backend.*` build their tables from `REGISTRY`.

Rules are builder-level code: a partial or a JVP/VJP rule takes the builder
`b` as its first argument, and a scalar lowering takes the backend's scalar
code context `c` (operand code, literals, helpers), so that nothing here
imports ad/ or backend/.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from metacc.errors import InternalError
from metacc.ir.types import ShapeError, TensorType

# how the Numba backend lowers a primitive
ELEMENTWISE = "elementwise"  # `scalar` at the broadcast output index; fuses into loop nests
INDEXED = "indexed"          # `scalar` reading operands at a transformed index (they must be in memory)
GENERATOR = "generator"      # `scalar` with no array operand (full, iota, rng_*)
SINK = "sink"                # a reduction closing a fused loop nest (metacc/backend/fusion.py)
HOOK = "hook"                # a method emit_NAME of metacc.backend.lower.KernelWriter
EXPANDED = "expanded"        # rewritten into other primitives before lowering (grad, argmin, cg_solve, call)
LOWERINGS = (ELEMENTWISE, INDEXED, GENERATOR, SINK, HOOK, EXPANDED)


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str
    family: str
    rule: Callable[..., tuple[TensorType, ...]]   # type rule: input types, **params -> output types
    n_ins: int | None                             # None: variadic
    doc: str = ""
    params: tuple[str, ...] = ()                  # static parameters (keyword arguments of the rule)
    # reference implementation (metacc.interp): NumPy arrays, **params, dims= -> one array;
    # None for control primitives, which the interpreter evaluates itself (they recurse)
    impl: Callable | None = None
    # pointwise derivative: partials(b, ins, out, **params) -> one IR value (or ONE / MINUS_ONE /
    # None for zero) per input; forward and reverse mode are both derived from it
    partials: Callable | None = None
    jvp: Callable | None = None       # jvp(b, ins, outs, tangents, **params) -> output tangents
    vjp: Callable | None = None       # vjp(b, ins, outs, cotangents, **params) -> input cotangents
    nondiff: bool = False             # no derivative (integer, boolean, key, creation): zero rules
    lowering: str | None = None       # one of LOWERINGS
    scalar: Callable | None = None    # scalar(c) -> code of one output element (see backend/pointwise.py)
    surface: tuple[str, ...] = ()     # builtin function names in the language
    fold: Callable | None = None      # compile-time value on Python numbers (front end folding)
    domain: str | None = None         # where the rule tests sample inputs: "positive", "away_from_zero"


REGISTRY: dict[str, Primitive] = {}


def declare(name: str, family: str, n_ins: int | None, doc: str = "", **fields):
    """Decorator on a type rule: declares the primitive `name` with `fields` (see Primitive)."""
    if fields.get("lowering") not in (None, *LOWERINGS):
        raise InternalError(f"primitive {name!r}: unknown lowering {fields['lowering']!r}")

    def wrap(rule):
        if name in REGISTRY:
            raise InternalError(f"primitive {name!r} is declared twice")
        REGISTRY[name] = Primitive(name, family, rule, n_ins, doc, **fields)
        return rule
    return wrap


def lookup(name: str, what: str = "") -> Primitive:
    """The declaration of `name`; an InternalError naming it when there is none."""
    p = REGISTRY.get(name)
    if p is None:
        raise InternalError(f"no primitive {name!r} is declared" + (f" (looking for its {what})" if what else "")
                            + "; declare it in a family module of metacc/ir/primitives/")
    return p


def need_rule(table: dict, name: str, what: str):
    """table[name], or an InternalError naming the primitive and the missing rule (never a KeyError)."""
    rule = table.get(name)
    if rule is None:
        where = "its declaration" if name in REGISTRY else "a declaration (metacc/ir/primitives/)"
        raise InternalError(f"primitive {name!r} has no {what}; add it to {where}")
    return rule


def infer(prim: str, in_types: tuple[TensorType, ...], params: dict) -> tuple[TensorType, ...]:
    p = lookup(prim, "type rule")
    if p.n_ins is not None and len(in_types) != p.n_ins:
        raise ShapeError(f"{prim} takes {p.n_ins} operand(s), got {len(in_types)}")
    return p.rule(*in_types, **params)


def of_family(*families: str) -> tuple[str, ...]:
    """Names of the declared primitives of these families, in declaration order."""
    return tuple(n for n, p in REGISTRY.items() if p.family in families)
