"""Building IR: emit equations one by one, get back typed vars.

    b = Builder()
    x = b.input("x", TensorType("f64", ("n",)))
    y = b.mul(b.sin(x), 2.0)            # Python numbers become literals of x's dtype
    f = b.build("f", [y])

`b.<prim>(*ins, **params)` emits any registered primitive; type rules run on
every emission, so an ill-typed program cannot be built.
"""
from __future__ import annotations

from metacc.errors import InternalError, Span
from metacc.ir.core import Atom, Eqn, Func, Lit, Var
from metacc.ir.prims import PRIMS, infer
from metacc.ir.types import TensorType, scalar


class Builder:
    def __init__(self, span: Span | None = None):
        self.ins: list[Var] = []
        self.eqns: list[Eqn] = []
        self.span = span            # default span for emitted eqns (the .meta line being built)

    # -- inputs and literals --
    def input(self, name: str, type: TensorType) -> Var:
        v = Var(name, type)
        self.ins.append(v)
        return v

    def lit(self, value, dtype: str) -> Lit:
        if dtype in ("f32", "f64"):
            value = float(value)
        elif dtype == "i64":
            value = int(value)
        elif dtype == "bool":
            value = bool(value)
        return Lit(value, scalar(dtype))

    def _atoms(self, ins) -> tuple[Atom, ...]:
        dtype = next((a.type.dtype for a in ins if isinstance(a, (Var, Lit))), "f64")
        out = []
        for a in ins:
            if isinstance(a, (Var, Lit)):
                out.append(a)
            elif isinstance(a, (bool, int, float)):
                out.append(self.lit(a, dtype))
            else:
                raise InternalError(f"not an IR atom: {a!r}")
        return tuple(out)

    # -- equations --
    def emit(self, prim: str, *ins, name: str | None = None, names: list[str] | None = None,
             span: Span | None = None, **params) -> tuple[Var, ...]:
        if prim not in PRIMS:
            raise InternalError(f"unknown primitive {prim!r}")
        atoms = self._atoms(ins)
        out_types = infer(prim, tuple(a.type for a in atoms), params)
        if names is None:
            names = [name or prim] * len(out_types)
        outs = tuple(Var(n, t) for n, t in zip(names, out_types))
        self.eqns.append(Eqn(prim, atoms, outs, params, span or self.span))
        return outs

    def __getattr__(self, prim: str):
        if prim.startswith("_") or prim not in PRIMS:
            raise AttributeError(prim)

        def op(*ins, name: str | None = None, span: Span | None = None, **params):
            outs = self.emit(prim, *ins, name=name, span=span, **params)
            return outs[0] if len(outs) == 1 else outs
        return op

    def cite(self, mark: int, span: Span | None, adjoint: bool = False) -> None:
        """Point the equations emitted since `mark` at the statement they come from.

        A transform or lowering calls this for what it emitted for one equation: the
        default span is the whole function's (or the loop's), the equation's own line
        says more (and is what metacc.nonfinite reports for a derivative). With
        `adjoint`, they are also marked as its adjoint (a backward sweep), which the
        printer and the Numba lowering announce with `# adjoint of: <statement>`."""
        if span is None:
            return
        target = span.as_adjoint() if adjoint else span
        for i in range(mark, len(self.eqns)):
            old = self.eqns[i]
            mine = old.span is None or old.span is self.span or old.span is span
            if mine or (adjoint and not old.span.adjoint):
                self.eqns[i] = Eqn(old.prim, old.ins, old.outs, old.params,
                                   target if mine else old.span.as_adjoint())

    def name_results(self, mark: int, results, names) -> list:
        """`results` with those emitted since `mark` named after `names` (h_dot, w_bar; None: as
        they are). A var's name is never changed once it exists: each one is made anew under its
        name, and the equations since `mark` that define or read it are rebuilt with it."""
        fresh = {v for e in self.eqns[mark:] for v in e.outs}
        new: dict[Var, Var] = {}
        for r, n in zip(results, names):
            if isinstance(r, Var) and r in fresh and r not in new and n is not None and n != r.name:
                new[r] = Var(n, r.type)
        if not new:
            return list(results)
        for i in range(mark, len(self.eqns)):
            e = self.eqns[i]
            if any(v in new for v in e.outs) or any(isinstance(a, Var) and a in new for a in e.ins):
                self.eqns[i] = Eqn(e.prim, tuple(new.get(a, a) if isinstance(a, Var) else a for a in e.ins),
                                   tuple(new.get(v, v) for v in e.outs), e.params, e.span)
        return [new.get(r, r) if isinstance(r, Var) else r for r in results]

    def build(self, name: str, outs, span: Span | None = None) -> Func:
        return Func(name, tuple(self.ins), tuple(self.eqns), tuple(self._atoms(list(outs))),
                    span or self.span)


def inline(b: Builder, fn: Func, args) -> list[Atom]:
    """Emit fn's equations into b with its inputs bound to args; return its outputs.

    Sub-functions are shared, not copied: they are closed, so sharing is safe.
    """
    for v, a in zip(fn.ins, args):
        if v.type != a.type:
            raise InternalError(f"inline {fn.name}: {v.name} is {v.type}, argument is {a.type}")
    env: dict[Var, Atom] = dict(zip(fn.ins, args))
    for e in fn.eqns:
        new_outs = tuple(Var(v.name, v.type) for v in e.outs)
        env.update(zip(e.outs, new_outs))
        b.eqns.append(Eqn(e.prim, tuple(env.get(a, a) if isinstance(a, Var) else a for a in e.ins),
                          new_outs, e.params, e.span))
    return [env.get(a, a) if isinstance(a, Var) else a for a in fn.outs]
