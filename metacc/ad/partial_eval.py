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


__all__ = ["Split", "partial_eval", "Lit"]
