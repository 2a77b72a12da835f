"""Expand higher-order equations into plain IR before any other transform.

- `grad[fn, n_wrt](args)` becomes fn's forward and backward sweeps inlined
  at the call site (the value is dropped; CSE merges a forward the program
  also computes itself). A gradient that is identically zero because the
  value does not depend on the parameter is a user error, not a silent zero.
- `argmin` becomes its solver (on stop-gradient inputs) plus, when implicit,
  a term whose derivative is the implicit-function-theorem gradient (see
  implicit.py).
- `call` without remat is inlined; `call(remat=True)` stays (checkpointing).
Loop bodies are expanded recursively, innermost first.
"""
from __future__ import annotations

from metacc.ad.activity import collecting, replay, report
from metacc.ad.util import materialize
from metacc.ad.vjp import check_connected_inputs, vjp_inline
from metacc.errors import InternalError
from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.rewrite import rewrite
from metacc.ir.walk import any_eqn

_cache: dict[int, tuple[Func, Func, tuple]] = {}

# argmin's expansion (metacc.ad.implicit, which expands its objective with this module,
# registers it here when imported; metacc/ad/__init__.py imports it)
EXPANSIONS: dict = {}


def needs_expand(fn: Func) -> bool:
    return any_eqn(fn, lambda e: e.prim in ("grad", "argmin") or (e.prim == "call" and not e.params.get("remat")))


def expand(fn: Func) -> Func:
    hit = _cache.get(id(fn))
    if hit is not None and hit[0] is fn:
        # a kernel built later from the same program records the same warnings
        replay(hit[2])
        return hit[1]
    if not needs_expand(fn):
        out, notes = fn, []
    else:
        with collecting() as notes:     # disconnected-field warnings of its grad(...)s
            out = _expand(fn)
    _cache[id(fn)] = (fn, out, tuple(notes))
    report(notes)
    return out


def _expand(fn: Func) -> Func:
    def replace(b, e, ins):
        if e.prim in ("grad", "argmin") or (e.prim == "call" and not e.params.get("remat")):
            return _inline_expansion(b, e, ins)
        return None
    return rewrite(fn, replace, expand)


def expand_eqn(e: Eqn) -> Func:
    """A closed function computing one grad/argmin/call equation (used by the interpreter)."""
    b = Builder(span=e.span)
    args = [b.input(getattr(a, "name", "c"), a.type) for a in e.ins]
    outs = _inline_expansion(b, e, args)
    return b.build(e.prim, list(outs), span=e.span)


def _inline_expansion(b: Builder, e: Eqn, ins) -> list:
    mark = len(b.eqns)
    outs = _expansion(b, e, ins)
    # what the expansion emits without a line of its own (argmin's solver and implicit
    # term, grad's seed) is the expanded expression's: not the enclosing function's header
    b.cite(mark, e.span)
    return outs


def _expansion(b: Builder, e: Eqn, ins) -> list:
    if e.prim == "call":
        return inline(b, expand(e.params["fn"]), ins)
    if e.prim == "cg_solve":
        b.eqns.append(Eqn(e.prim, tuple(ins), tuple(Var(v.name, v.type) for v in e.outs), e.params, e.span))
        return list(b.eqns[-1].outs)
    if e.prim == "argmin":
        rule = EXPANSIONS.get("argmin")
        if rule is None:
            raise InternalError("argmin has no expansion: import metacc.ad (metacc.ad.implicit registers it)")
        return rule(b, e, ins)
    return grad_inline(b, e.params["fn"], ins, e.params["n_wrt"], span=e.span)


def grad_inline(b: Builder, fn: Func, ins, n_wrt: int, span=None) -> list:
    fn = expand(fn)
    wrt = list(range(n_wrt))
    check_connected_inputs(fn, wrt, what="this grad(...) expression", span=span)
    mark = len(b.eqns)
    seed = Lit(1.0, fn.outs[0].type)
    _, bars = vjp_inline(b, fn, list(ins), [seed], wrt)
    out = [materialize(b, g, fn.ins[i].type) for g, i in zip(bars, wrt)]
    # every equation of the expansion without a line of its own reports the grad(...) it came from
    b.cite(mark, span)
    return b.name_results(mark, out, ["d_" + fn.ins[i].name.replace(".", "_") for i in wrt])
