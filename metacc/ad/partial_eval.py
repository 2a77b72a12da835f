"""Split a combined forward+backward function into its two halves.

Given a function whose first inputs are "known" (primal values) and whose
remaining inputs are "unknown" (cotangents), every equation computable from
known values alone goes to `fwd`; the rest go to `bwd`. The known values
that `bwd` reads are the residuals: `fwd` returns them, `bwd` takes them.
Loops use this to save exactly what their backward sweep needs, per
iteration, in preallocated [K, ...] buffers.
"""
from __future__ import annotations

from dataclasses import dataclass

from metacc.errors import InternalError
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.passes.dce import dce


@dataclass(frozen=True)
class Split:
    fwd: Func                 # ins: known inputs; outs: known outputs + computed residuals
    bwd: Func                 # ins: residuals (input ones, then computed ones) + unknown inputs; outs: unknown outputs
    input_residuals: list[int]   # indices into the known inputs that bwd reads directly
    n_computed: int              # residuals computed by fwd (appended to its outputs)


def partial_eval(fn: Func, n_known_in: int, n_known_out: int, invariant_ins=()) -> Split:
    """invariant_ins: known inputs that are the same in every loop iteration;
    values computed from them alone are recomputed by bwd rather than stored."""
    known_ins = fn.ins[:n_known_in]
    known: set[Var] = set(known_ins)
    invariant: set[Var] = {known_ins[i] for i in invariant_ins}
    fwd_eqns: list[Eqn] = []
    bwd_eqns: list[Eqn] = []
    for e in fn.eqns:
        vars_in = [a for a in e.ins if isinstance(a, Var)]
        if all(a in invariant for a in vars_in) and not list(e.subfuncs()):
            # creation eqns (zeros, eye) and loop-invariant values: recompute on
            # both sides rather than store one copy per iteration
            invariant.update(e.outs)
            fwd_eqns.append(e)
            bwd_eqns.append(e)
            known.update(e.outs)
            continue
        if all(a in known for a in vars_in):
            fwd_eqns.append(e)
            known.update(e.outs)
        else:
            bwd_eqns.append(e)
    for a in fn.outs[:n_known_out]:
        if isinstance(a, Var) and a not in known:
            raise InternalError(f"partial_eval of {fn.name}: primal output {a.name} depends on cotangents")
    bwd_defined = {v for e in bwd_eqns for v in e.outs}
    needed: list[Var] = []
    for e in bwd_eqns:
        for a in e.ins:
            if isinstance(a, Var) and a in known and a not in bwd_defined and a not in needed:
                needed.append(a)
    for a in fn.outs[n_known_out:]:
        if isinstance(a, Var) and a in known and a not in bwd_defined and a not in needed:
            needed.append(a)
    needed, bwd_eqns = _recompute_cheap(fwd_eqns, bwd_eqns, needed, set(known_ins))
    input_res = [v for v in needed if v in known_ins]
    computed = [v for v in needed if v not in known_ins]
    fwd = Func(fn.name + "_fwd", tuple(known_ins), tuple(fwd_eqns),
               tuple(fn.outs[:n_known_out]) + tuple(computed), fn.span)
    # bwd gets fresh input vars for the residuals so it is closed on its own
    sub = {v: Var(v.name, v.type) for v in input_res + computed}
    bwd_ins = tuple(sub[v] for v in input_res + computed) + tuple(fn.ins[n_known_in:])
    rename = lambda a: sub.get(a, a) if isinstance(a, Var) else a  # noqa: E731
    bwd = Func(fn.name + "_bwd", bwd_ins,
               tuple(Eqn(e.prim, tuple(rename(a) for a in e.ins), e.outs, e.params, e.span) for e in bwd_eqns),
               tuple(rename(a) for a in fn.outs[n_known_out:]), fn.span)
    index = {v: i for i, v in enumerate(known_ins)}
    return Split(dce(fwd), dce(bwd), [index[v] for v in input_res], len(computed))


# views and casts: recomputing them in the backward half is nearly free, while
# storing them would keep a second copy of a value that is often stored anyway
CHEAP = {"transpose", "reshape", "broadcast_to", "cast", "neg", "stop_gradient"}


def _recompute_cheap(fwd_eqns, bwd_eqns, needed, known_ins):
    """Replace residuals produced by cheap equations with those equations' inputs."""
    defs = {v: e for e in fwd_eqns for v in e.outs}
    cloned: list[Eqn] = []
    changed = True
    while changed:
        changed = False
        for v in list(needed):
            e = defs.get(v)
            if e is None or e.prim not in CHEAP or v in known_ins:
                continue
            needed.remove(v)
            if e not in cloned:
                cloned.append(e)
            for a in e.ins:
                if isinstance(a, Var) and a not in needed:
                    needed.append(a)
            changed = True
    if not cloned:
        return needed, bwd_eqns
    order = {id(e): i for i, e in enumerate(fwd_eqns)}
    cloned.sort(key=lambda e: order[id(e)])
    # values defined by a cloned eqn are no longer residuals, even if listed via another path
    made = {v for e in cloned for v in e.outs}
    return [v for v in needed if v not in made], cloned + bwd_eqns


__all__ = ["Split", "partial_eval", "Lit"]
