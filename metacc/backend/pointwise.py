"""Scalar expressions for every primitive that computes one element at a time.

Each such primitive declares `scalar(c)` (metacc/ir/primitives/): the Python
expression of one output element, given a `ScalarCode` c that reads operands
at the output element's loop indices. The fusion planner strings these
expressions together inside one loop nest, so a chain `relu(x @ w + b)` costs
one pass over memory after the matmul.

Families (the declarations' `lowering`):
  ELEMENTWISE  operands read at the broadcast of the output index (these may
               read a value computed earlier in the same loop nest)
  INDEXED      transpose, slice, pad, concatenate, one_hot: operands read at a
               transformed index, so they must already be in memory
  GENERATORS   full, iota, eye, dim_size, rng_*: no array operands
"""
from __future__ import annotations

from typing import Callable

from metacc.backend.literals import NP_NAME, cast, lit
from metacc.errors import InternalError
from metacc.ir.core import Eqn
from metacc.ir.primitives import ELEMENTWISE as _ELEMENTWISE
from metacc.ir.primitives import GENERATOR, INDEXED as _INDEXED
from metacc.ir.prims import BINARY, COMPARE, PRIMS, UNARY
from metacc.ir.types import Dim

Read = Callable[[int, list[str]], str]


def _lowered(kind: str) -> frozenset[str]:
    return frozenset(n for n, p in PRIMS.items() if p.lowering == kind)


ELEMENTWISE = _lowered(_ELEMENTWISE)
INDEXED = _lowered(_INDEXED)
GENERATORS = _lowered(GENERATOR)
POINTWISE = ELEMENTWISE | INDEXED | GENERATORS


def bcast_index(in_shape: tuple[Dim, ...], out_shape: tuple[Dim, ...], idx: list[str]) -> list[str]:
    """Index of an operand broadcast (NumPy rules, decided statically) to out_shape at idx."""
    lead = len(out_shape) - len(in_shape)
    return ["0" if d == 1 and out_shape[lead + a] != 1 else idx[lead + a] for a, d in enumerate(in_shape)]


class ScalarCode:
    """What a declared scalar lowering sees of one equation's output element."""
    __slots__ = ("e", "idx", "read", "dim", "helpers", "dt", "params")

    def __init__(self, e: Eqn, idx: list[str], read: Read, dim: Callable[[Dim], str], helpers: set[str]):
        self.e, self.idx, self.read, self.dim, self.helpers = e, idx, read, dim, helpers
        self.dt = e.outs[0].type.dtype
        self.params = e.params

    def x(self, j: int) -> str:
        """Operand j at the broadcast of the output element's index."""
        return self.read(j, bcast_index(self.e.ins[j].type.shape, self.e.outs[0].type.shape, self.idx))

    def helper(self, name: str) -> str:
        """A helper of metacc/backend/helpers.py that the expression calls (linked into the module)."""
        self.helpers.add(name)
        return name

    lit = staticmethod(lit)
    cast = staticmethod(cast)


class _Given(ScalarCode):
    """The operands' code given up front: backs the (x, dt) -> code views below."""
    __slots__ = ("codes",)

    def __init__(self, e: Eqn, codes: tuple[str, ...], dt: str, helpers: set[str]):
        self.e, self.codes, self.dt, self.helpers, self.params = e, codes, dt, helpers, {}

    def x(self, j: int) -> str:
        return self.codes[j]


def _unary_view(name: str) -> Callable[[str, str], str]:
    return lambda x, dt: PRIMS[name].scalar(_Given(None, (x,), dt, set()))


def _binary_view(name: str) -> Callable[[str, str], str]:
    return lambda x, y: PRIMS[name].scalar(_Given(None, (x, y), "", set()))


# today's tables (code of the operands -> code of the element), as views of the declarations;
# a primitive without a declared scalar lowering may still be added to them
_UNARY: dict[str, Callable[[str, str], str]] = {n: _unary_view(n) for n in UNARY}
UNARY_HELPERS = {"sigmoid", "softplus"}
_BINARY: dict[str, Callable[[str, str], str]] = {
    n: _binary_view(n) for n in BINARY + COMPARE + ("logical_and", "logical_or")}


def expr(e: Eqn, idx: list[str], read: Read, dim: Callable[[Dim], str], helpers: set[str]) -> str:
    """The value of e's (single) output at loop indices idx."""
    p = PRIMS.get(e.prim)
    c = ScalarCode(e, idx, read, dim, helpers)
    if p is not None and p.scalar is not None:
        return p.scalar(c)
    if e.prim in _UNARY:
        if e.prim in UNARY_HELPERS:
            helpers.add(f"{e.prim}_{c.dt}")
        return _UNARY[e.prim](c.x(0), c.dt)
    if e.prim in _BINARY:
        return _BINARY[e.prim](c.x(0), c.x(1))
    raise InternalError(f"primitive {e.prim!r} has no scalar lowering; declare scalar= with it "
                        "(metacc/ir/primitives/) or lower it with a KernelWriter.emit_ method")


def dtype_name(dt: str) -> str:
    return NP_NAME[dt]
