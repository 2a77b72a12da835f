"""Frames: IR functions under construction, closed by lazy capture.

The body of a `grad`, a `repeat` or an `argmin` becomes a closed sub-function:
it sees only its own inputs. While it is being built, source names still
refer to values of the enclosing functions; the first time such an outer value
is used inside, the frame adds an input for it and records the capture, so the
enclosing equation can pass the outer value in. Captures chain through nested
frames (a value two levels up is captured by the middle frame too).
"""
from __future__ import annotations

from metacc.errors import InternalError, MetaccError, Span
from metacc.ir.builder import Builder
from metacc.ir.core import Atom, Eqn, Func, Lit, Var
from metacc.ir.types import TensorType


# How many loop, grad and argmin bodies may nest inside one another. The derivative transforms
# and the generated code (Python allows 20 nested blocks, and each body's own array loops nest
# inside it) grow steeply with this depth; real programs stay below 5.
MAX_NESTING = 10


class Frame:
    def __init__(self, parent: "Frame | None" = None, span: Span | None = None):
        self.parent = parent
        self.depth = parent.depth + 1 if parent is not None else 0
        if self.depth > MAX_NESTING:
            raise MetaccError(f"more than {MAX_NESTING} repeat, grad or argmin bodies nest inside one another here",
                              span, hint="unroll an inner loop into its enclosing one, or split the program "
                                         "into functions that do not call each other inside loops")
        self.builder = Builder(span)
        self.owned: set[Var] = set()
        self.leading: list[Var] = []                 # inputs declared up front (args, wrt, carry)
        self.captures: list[tuple[Atom, Var]] = []   # (the value in the parent frame, its input here)
        self._captured: dict[Var, Var] = {}          # outer var -> input here
        # vars still named after their primitive; an assignment names them (shared by all frames)
        self.unnamed: set[Var] = parent.unnamed if parent else set()
        # such a var -> the var an assignment made in its place (one value assigned to two names)
        self.named: dict[Var, Var] = parent.named if parent else {}

    def input(self, name: str, type: TensorType) -> Var:
        v = Var(name, type)
        self.leading.append(v)
        self.owned.add(v)
        return v

    def use(self, atom: Atom) -> Atom:
        """The atom that stands for `atom` inside this frame (capturing it if it is outer)."""
        atom = self.named.get(atom, atom)     # a value held from before an assignment named it
        if isinstance(atom, Lit) or atom in self.owned:
            return atom
        if atom in self._captured:
            return self._captured[atom]
        if self.parent is None:
            raise InternalError(f"{atom.name} is used outside the function that defines it")
        outer = self.parent.use(atom)
        local = Var(atom.name, atom.type)
        self.captures.append((outer, local))
        self._captured[atom] = local
        self.owned.add(local)
        return local

    def emit(self, prim: str, ins, span: Span | None, name: str | None = None, names: list[str] | None = None,
             **params) -> tuple[Var, ...]:
        """Emit one equation; the primitive's type rule raises ShapeError on bad operands.
        `names`: one source name per output (a loop's carried values)."""
        outs = self.builder.emit(prim, *[self.use(a) for a in ins], name=name or prim, names=names, span=span,
                                 **params)
        self.owned.update(outs)
        if name is None and names is None:
            self.unnamed.update(outs)
        return outs

    def name(self, atom: Atom, name: str) -> Atom:
        """The value `atom` under the source name an assignment gives it (`h`, `p.w1`).

        A var still named after its primitive is made anew under `name`, and this frame's
        equations that define or read it are rebuilt with the new var: a var's name never
        changes once it exists. Any other atom (already named, a literal) is returned as it is."""
        atom = self.named.get(atom, atom)
        if not isinstance(atom, Var) or atom not in self.unnamed or atom not in self.owned:
            return atom       # named already, a literal, or not made in this frame (names are cosmetic)
        eqns = self.builder.eqns
        at = next((i for i in range(len(eqns) - 1, -1, -1) if atom in eqns[i].outs), None)
        if at is None:        # an input of this frame, not an equation's result: it keeps its name
            return atom
        new = Var(name, atom.type)
        swap = lambda a: new if a is atom else a  # noqa: E731
        for i in range(at, len(eqns)):
            e = eqns[i]
            if i == at or any(a is atom for a in e.ins):
                eqns[i] = Eqn(e.prim, tuple(map(swap, e.ins)), tuple(map(swap, e.outs)), e.params, e.span)
        self.unnamed.discard(atom)
        self.owned.discard(atom)
        self.owned.add(new)
        self.named[atom] = new
        return new

    def func(self, name: str, outs, span: Span | None, consts_first: bool = False) -> Func:
        """The finished function: leading inputs and captures (captures first for loop bodies)."""
        outs = tuple(self.use(a) for a in outs)       # may capture: an output can be an outer value
        captured = [local for _, local in self.captures]
        ins = captured + self.leading if consts_first else self.leading + captured
        return Func(name, tuple(ins), tuple(self.builder.eqns), outs, span)

    def captured_outer(self) -> list[Atom]:
        return [outer for outer, _ in self.captures]
