"""Kernel kinds: which derivative program each user-facing call runs.

    forward    the function itself (grad/argmin expanded)
    grad       value and gradient w.r.t. the differentiated arguments
    meta_grad  the same, for a `meta` program (meta-loss and meta-gradient)
    vjp        outputs and cotangents of the inputs, given output cotangents
    jvp        outputs and tangents of the outputs, given input tangents
    hvp        gradient and Hessian-vector product (forward-over-reverse)

`kernel_ir(fn, kind, wrt, stage)` gives the IR at a stage: 'ir' straight from
the transform, 'simplified' after the simplification pipeline and the
lowering of conjugate-gradient solves into loops (what backends compile).
"""
from __future__ import annotations

from metacc.ad import expand, grad_func, hvp_func, jvp_func, vjp_func
from metacc.errors import MetaccError
from metacc.ir.core import Func
from metacc.ir.verify import verify
from metacc.passes import simplify
from metacc.passes.lower_cg import lower_cg

KINDS = ("forward", "grad", "meta_grad", "vjp", "jvp", "hvp")
STAGES = ("ir", "simplified")

_BUILD = {
    "forward": lambda fn, wrt: expand(fn),
    "grad": lambda fn, wrt: grad_func(fn, wrt),
    "meta_grad": lambda fn, wrt: grad_func(fn, wrt),
    "vjp": lambda fn, wrt: vjp_func(fn, wrt),
    "jvp": lambda fn, wrt: jvp_func(fn, wrt),
    "hvp": lambda fn, wrt: hvp_func(fn, wrt),
}

_cache: dict = {}


def kernel_ir(fn: Func, kind: str, wrt=None, stage: str = "simplified") -> Func:
    if kind not in _BUILD:
        raise MetaccError(f"unknown kernel kind '{kind}'", hint=f"choose one of {', '.join(KINDS)}")
    if stage not in STAGES:
        raise MetaccError(f"unknown stage '{stage}'", hint=f"choose one of {', '.join(STAGES)}")
    key = (id(fn), kind, tuple(wrt) if wrt is not None else None, stage)
    hit = _cache.get(key)
    if hit is not None and hit[0] is fn:
        return hit[1]
    out = verify(_BUILD[kind](fn, wrt), where=f"{kind} transform")
    if stage == "simplified":
        out = simplify(verify(lower_cg(simplify(out)), where="lower_cg"))
    _cache[key] = (fn, out)
    return out
