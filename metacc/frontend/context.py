"""The state threaded through lowering: names in scope, the frame being built.

`Env` maps source names to values, one layer per scope (a function body, a
`repeat` body, the variable bound by a `grad` or `argmin`). `Ctx` bundles the
env with the frame that receives equations, the current function's dim
bindings and the flags that change what is emitted (`first_order`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping

import numpy as np

from metacc.errors import MetaccError, Span
from metacc.frontend.reporter import shape_error
from metacc.frontend.frame import Frame
from metacc.frontend.values import POISON, Tensor
from metacc.ir.core import Atom, Lit
from metacc.ir.prims import IMPLS
from metacc.ir.types import NUMPY_DTYPE, Dim, ShapeError

if TYPE_CHECKING:
    from metacc.frontend.to_program import Unit
    from metacc.frontend.declarations import Signature


MAX_ELEMENTS = 2 ** 31 - 1     # elements of one tensor of concrete shape (8 GiB in f32)


def check_elements(shape, span: Span | None, what: str) -> None:
    """A concrete shape with more elements than the generated code can index is an error
    here, not a MemoryError when the program runs."""
    if not all(isinstance(d, int) for d in shape):
        return
    n = 1
    for d in shape:
        n *= d
    if n > MAX_ELEMENTS:
        raise MetaccError(f"{what} would have {n:.3g} elements (shape {list(shape)}): at most {MAX_ELEMENTS} "
                          "are allowed", span, hint="one tensor holds at most 2^31 - 1 elements (8 GiB in f32)")


# operations on literals alone that the simplifier folds (metacc.passes.fold): their value is
# known now, so one that overflows its dtype (f32(1e38) * 10.0) is reported here, not folded to inf
_FOLDED = ("add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "ipow", "maximum", "minimum")


def _check_constant(prim: str, atoms, params, span: Span | None) -> None:
    values = [NUMPY_DTYPE[a.type.dtype](a.value) for a in atoms]
    with np.errstate(all="ignore"):
        out = IMPLS[prim](*values, **params, dims={})
    if np.issubdtype(np.asarray(out).dtype, np.floating) and not np.isfinite(out) \
            and all(np.isfinite(v) for v in values):
        dtype = atoms[0].type.dtype
        raise MetaccError(f"this constant expression is {float(out)} in {dtype}", span,
                          hint="its operands are known at compile time and the result does not fit"
                               + (": compute it in f64, or rescale it" if dtype == "f32" else ""))


class Poisoned(Exception):
    """An expression used a value whose error was already reported: skip it silently."""


class Env:
    def __init__(self, parent: "Env | None" = None):
        self.vars: dict[str, object] = {}
        self.parent = parent

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                return env.vars[name]
            env = env.parent
        return None

    def assign(self, name: str, value) -> None:
        self.vars[name] = value

    def names(self) -> set[str]:
        out, env = set(), self
        while env is not None:
            out |= set(env.vars)
            env = env.parent
        return out

    def child(self) -> "Env":
        return Env(self)


def text_of(span: Span | None) -> str:
    """The source text a span covers (first line only, for messages)."""
    if span is None:
        return ""
    line = span.source.line(span.line)
    end = span.end_col - 1 if span.end_line == span.line and span.end_col > span.col else len(line)
    text = line[span.col - 1:end].strip()
    return text + (" ..." if span.end_line > span.line else "")


@dataclass(frozen=True)
class Ctx:
    unit: "Unit"
    frame: Frame
    env: Env
    dims: Mapping[str, Dim]            # dims named in the current signature -> dims of this call
    sig: "Signature"
    first_order: bool = False          # inside @first_order: every grad(...) result is a constant
    calls: tuple[tuple[str, Span], ...] = ()   # inlined calls being lowered, outermost first

    def but(self, **changes) -> "Ctx":
        return replace(self, **changes)

    @property
    def default_float(self) -> str:
        return self.sig.default_float

    def report(self, err: MetaccError) -> None:
        if self.calls:
            err.notes.extend((f"in this call of {name}", span) for name, span in reversed(self.calls))
        self.unit.reporter.report(err)

    def emit(self, prim: str, ins, span: Span | None, *, what: str | None = None, hint: str | None = None,
             name: str | None = None, **params):
        """Emit one equation; operands are Tensors or atoms. A type-rule failure becomes a MetaccError
        that shows every operand's type and origin."""
        atoms: list[Atom] = [v.atom if isinstance(v, Tensor) else v for v in ins]
        self.unit.count_equations(span)
        try:
            outs = self.frame.emit(prim, atoms, span, name=name, **params)
        except ShapeError as err:
            raise shape_error(err, span, [v for v in ins if isinstance(v, Tensor)], what, hint) from None
        for v in outs:
            check_elements(v.type.shape, span, f"`{text_of(span)}`" if span else f"the result of {prim}")
        if atoms and prim in _FOLDED and all(isinstance(a, Lit) for a in atoms):
            _check_constant(prim, atoms, params, span)
        return outs[0] if len(outs) == 1 else outs

    def tensor(self, atom: Atom, span: Span | None, desc: str | None = None) -> Tensor:
        return Tensor(atom, span, desc if desc is not None else text_of(span))

    def lookup(self, name: str):
        value = self.env.lookup(name)
        if value is POISON:
            raise Poisoned(name)
        return value
