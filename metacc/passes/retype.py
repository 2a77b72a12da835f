"""Changing the float precision of a whole IR function (compile(..., dtype=...)).

Every float TensorType, float literal and dtype parameter (full, eye, iota,
cast, rng_*, dim_size, one_hot) becomes the target dtype, sub-functions
included. Used when a program declared in f32 is compiled for f64 (or the
reverse): the kernels then take and return arrays of the target dtype only.
"""
from __future__ import annotations

from dataclasses import replace

from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.types import FLOAT_DTYPES, TensorType
from metacc.program import Program


def _t(t: TensorType, dtype: str) -> TensorType:
    return t.with_dtype(dtype) if t.dtype in FLOAT_DTYPES else t


def retype(fn: Func, dtype: str, env: dict | None = None) -> Func:
    env = {} if env is None else env

    def var(v: Var) -> Var:
        if v not in env:
            env[v] = Var(v.name, _t(v.type, dtype))
        return env[v]

    def atom(a):
        if isinstance(a, Lit):
            return Lit(a.value, _t(a.type, dtype))
        return var(a)

    def params(p: dict) -> dict:
        out = {}
        for k, v in p.items():
            if isinstance(v, Func):
                v = retype(v, dtype, env)
            elif k == "dtype" and v in FLOAT_DTYPES:
                v = dtype
            out[k] = v
        return out

    ins = tuple(var(v) for v in fn.ins)
    eqns = tuple(Eqn(e.prim, tuple(atom(a) for a in e.ins), tuple(var(v) for v in e.outs),
                     params(e.params), e.span) for e in fn.eqns)
    return Func(fn.name, ins, eqns, tuple(atom(a) for a in fn.outs), fn.span, fn.n_aux)


def retype_program(program: Program, dtype: str) -> Program:
    """A copy of a Program whose every float type is `dtype`."""
    def field(f):
        return replace(f, type=_t(f.type, dtype))

    def arg(a):
        return replace(a, leaves=tuple(field(f) for f in a.leaves))

    out = Program(program.source)
    out.groups = {k: replace(g, fields=tuple(field(f) for f in g.fields)) for k, g in program.groups.items()}
    out.tasks = {k: replace(t, fields=tuple(field(f) for f in t.fields)) for k, t in program.tasks.items()}
    out.functions = {k: replace(f, args=tuple(arg(a) for a in f.args), result=arg(f.result),
                                aux=tuple(arg(a) for a in f.aux),
                                ir=retype(f.ir, dtype))
                     for k, f in program.functions.items()}
    return out
