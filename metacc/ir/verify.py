"""The IR verifier: run after every pass, it catches a broken transform early.

Checks: every var is defined once and before use, sub-functions are closed
(they use only their own inputs and literals), every equation's output types
are what its primitive's type rule says, and symbolic dims of a function are
bound by its inputs (or its enclosing function's).
"""
from __future__ import annotations

import weakref

from metacc.errors import InternalError
from metacc.ir.core import Func, Lit, Var
from metacc.ir.prims import PRIMS, infer
from metacc.ir.types import ShapeError


# Equations whose type rule has been checked. An Eqn is immutable, so its rule gives the same
# types every time: passes keep most equations as they are, and the verifier, which runs after
# every pass, re-ran every rule (Conv4's meta-gradient: 54,000 rule calls, a third of the time
# to generate its source). The checks that depend on where an equation stands (defined once,
# before use, dims bound) still run each time.
_typed: weakref.WeakSet = weakref.WeakSet()


def verify(fn: Func, where: str = "", outer_symbols: frozenset[str] = frozenset()) -> Func:
    symbols = outer_symbols | frozenset(fn.symbols())
    defined: set[Var] = set()

    def fail(msg: str):
        raise InternalError(f"IR verification failed{' after ' + where if where else ''} in "
                            f"func {fn.name}: {msg}")

    def check_dims(t, what):
        for d in t.symbols:
            if d not in symbols:
                fail(f"{what} has unbound symbolic dim {d!r}")

    for v in fn.ins:
        if v in defined:
            fail(f"input {v.name} listed twice")
        defined.add(v)
    for i, e in enumerate(fn.eqns):
        if e.prim not in PRIMS:
            fail(f"unknown primitive {e.prim!r}")
        for a in e.ins:
            if isinstance(a, Var) and a not in defined:
                fail(f"eqn {i} ({e.prim}) uses {a.name} before it is defined (or from an enclosing scope)")
            if not isinstance(a, (Var, Lit)):
                fail(f"eqn {i} ({e.prim}) has a non-atom input {a!r}")
        if e not in _typed:
            try:
                want = infer(e.prim, tuple(a.type for a in e.ins), e.params)
            except ShapeError as err:
                fail(f"eqn {i} ({e.prim}) is ill-typed: {err}")
            got = tuple(v.type for v in e.outs)
            if want != got:
                fail(f"eqn {i} ({e.prim}) declares {', '.join(map(str, got))}, rule gives "
                     f"{', '.join(map(str, want))}")
            _typed.add(e)
        for v in e.outs:
            if v in defined:
                fail(f"{v.name} defined twice")
            check_dims(v.type, v.name)
            defined.add(v)
        for sub in e.subfuncs():
            verify(sub, where, symbols)
    for a in fn.outs:
        if isinstance(a, Var) and a not in defined:
            fail(f"output {a.name} is not defined")
    return fn
