"""The IR: flat, typed SSA functions of tensor primitives.

A `Func` has input vars, a sequence of equations and output atoms. An `Eqn`
applies one primitive to atoms (vars or scalar literals) and defines new vars.
Structured control flow (`scan`, `call`, `grad`, `argmin`) holds closed
sub-functions in its params: a sub-function sees only its own inputs.
Vars compare by identity; names exist for people (printer, generated code)
and need not be unique, the printer and the lowering make them so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from metacc.errors import Span
from metacc.ir.types import TensorType


class Var:
    """An IR value: identity is the object (two vars of one name are two values). Its name
    and type are fixed when it is made; a transform that wants another name makes another var
    (Builder.name_results, Frame.name)."""
    __slots__ = ("name", "type")

    def __init__(self, name: str, type: TensorType):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "type", type)

    def __setattr__(self, attr, value):
        raise AttributeError(f"a Var's {attr} is fixed when it is made (make a new Var instead)")

    def __repr__(self) -> str:
        return f"{self.name}:{self.type}"


@dataclass(frozen=True, slots=True)
class Lit:
    """A scalar constant of a definite dtype (so f32 code never mixes in f64)."""
    value: float | int | bool
    type: TensorType

    def __repr__(self) -> str:
        return f"{self.value!r}:{self.type}"


Atom = Var | Lit


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)     # weakref: the verifier's memo
class Eqn:
    prim: str
    ins: tuple[Atom, ...]
    outs: tuple[Var, ...]
    params: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None

    def subfuncs(self) -> Iterator["Func"]:
        for value in self.params.values():
            if isinstance(value, Func):
                yield value


@dataclass(frozen=True, slots=True, eq=False)
class Func:
    name: str
    ins: tuple[Var, ...]
    eqns: tuple[Eqn, ...]
    outs: tuple[Atom, ...]
    span: Span | None = None
    # the last n_aux outputs are auxiliary (a function's `-> (loss: f32, acc: f32)` beyond its
    # first result): computed beside the value and never differentiated (metacc.pipeline)
    n_aux: int = 0

    @property
    def in_types(self) -> tuple[TensorType, ...]:
        return tuple(v.type for v in self.ins)

    @property
    def out_types(self) -> tuple[TensorType, ...]:
        return tuple(a.type for a in self.outs)

    def without_aux(self) -> "Func":
        """The function of its differentiated outputs only (the auxiliary ones dropped)."""
        if not self.n_aux:
            return self
        return Func(self.name, self.ins, self.eqns, self.outs[:len(self.outs) - self.n_aux], self.span)

    def symbols(self) -> list[str]:
        """Symbolic dims bound by the inputs, in order of first appearance."""
        seen: list[str] = []
        for v in self.ins:
            for d in v.type.symbols:
                if d not in seen:
                    seen.append(d)
        return seen

    def size(self) -> int:
        """Number of equations, counting those of sub-functions (used to check loops stay rolled)."""
        return sum(1 + sum(f.size() for f in e.subfuncs()) for e in self.eqns)

    def __str__(self) -> str:
        return _printer[0](self) if _printer else f"<Func {self.name}>"


# the text form of a Func: metacc.ir.printer sits above this module (it reads these classes)
# and installs its format_func here when imported; metacc/ir/__init__.py imports it, so it
# is installed whenever any part of the IR is loaded
_printer: list = []


def install_printer(format_func) -> None:
    _printer[:] = [format_func]
