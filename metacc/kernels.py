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
from metacc.ad.activity import collecting, report
from metacc.ad.poison import poison
from metacc.errors import MetaccError
from metacc.ir.core import Func
from metacc.ir.verify import verify
from metacc.passes import simplify
from metacc.passes.lower_cg import lower_cg

KINDS = ("forward", "grad", "meta_grad", "vjp", "jvp", "hvp")
STAGES = ("ir", "simplified")

_BUILD = {
    "forward": lambda fn, wrt: expand(fn),
    # derivatives are made non-finite wherever the value is (metacc.ad.poison)
    "grad": lambda fn, wrt: poison(grad_func(fn, wrt), "grad"),
    "meta_grad": lambda fn, wrt: poison(grad_func(fn, wrt), "meta_grad"),
    "vjp": lambda fn, wrt: poison(vjp_func(_connected(fn, wrt), wrt), "vjp", len(fn.outs)),
    "jvp": lambda fn, wrt: poison(jvp_func(_connected(fn, wrt), wrt), "jvp", len(fn.outs)),
    "hvp": lambda fn, wrt: poison(hvp_func(fn, wrt, with_value=True), "hvp"),
}

_cache: dict = {}


def _connected(fn: Func, wrt) -> Func:
    """vjp and jvp follow grad's rule for differentiated inputs no output depends
    on (metacc.ad.vjp.check_connected_inputs): a warning and zeros for some, an
    error when none reaches an output."""
    from metacc.ad.vjp import check_connected_inputs
    full = expand(fn)
    check_connected_inputs(full, [i for i, v in enumerate(full.ins) if v.type.is_float] if wrt is None
                           else wrt, what=f"the outputs of {fn.name}", noun="derivative")
    return fn


def kernel_ir(fn: Func, kind: str, wrt=None, stage: str = "simplified") -> Func:
    if kind not in _BUILD:
        raise MetaccError(f"unknown kernel kind '{kind}'", hint=f"choose one of {', '.join(KINDS)}")
    if stage not in STAGES:
        raise MetaccError(f"unknown stage '{stage}'", hint=f"choose one of {', '.join(STAGES)}")
    if kind in ("grad", "meta_grad", "hvp"):
        _need_scalar(fn, kind)
    key = (id(fn), kind, tuple(wrt) if wrt is not None else None, stage)
    hit = _cache.get(key)
    if hit is not None and hit[0] is fn:
        return hit[1]
    with collecting() as notes:       # DisconnectedWarnings, kept with the kernel
        out = verify(_BUILD[kind](fn, wrt), where=f"{kind} transform")
        if stage == "simplified":
            out = simplify(verify(lower_cg(simplify(out)), where="lower_cg"))
    _cache[key] = (fn, out, tuple(dict.fromkeys(notes)))
    report(_cache[key][2])
    return out


def _need_scalar(fn: Func, kind: str) -> None:
    """grad, meta_grad and hvp differentiate one float scalar; anything else is the user's choice
    of kernel, not a bug of the transform."""
    outs = fn.out_types
    if len(outs) == 1 and outs[0].rank == 0 and outs[0].is_float:
        return
    found = ", ".join(map(str, outs)) or "nothing"
    raise MetaccError(f"the {kind} kernel needs a function that returns a float scalar; {fn.name} returns {found}",
                      fn.span, expected="f32 or f64", found=found,
                      hint="reduce the result to a loss (sum(...), mean(...)), or use the vjp kernel "
                           "(cotangents of the outputs) or the jvp kernel (tangents of the outputs)")


def kernel_notes(fn: Func, kind: str, wrt=None) -> tuple:
    """The DisconnectedWarnings (message, field, where) building this kernel gave:
    the runtime writes them into the kernel's module, to repeat them when the
    kernel comes from the disk cache."""
    kernel_ir(fn, kind, wrt)
    return _cache[(id(fn), kind, tuple(wrt) if wrt is not None else None, "simplified")][2]


def default_wrt(function) -> list[int]:
    """IR input indices differentiated by default: the parameter-group arguments
    (theta, Meta-SGD rates...), or, for a function without any, every float input."""
    slices = function.leaf_slices()
    idx = [i for a in function.args if a.kind == "params"
           for i in range(slices[a.name].start, slices[a.name].stop)]
    if idx:
        return idx
    return [i for i, v in enumerate(function.ir.ins) if v.type.is_float]


def wrt_names(function, names) -> list[int]:
    """IR input indices of the named arguments (`theta`, `alpha`) or leaves (`theta.w1`)."""
    slices = function.leaf_slices()
    out: list[int] = []
    for name in names:
        if name in slices:
            out += list(range(slices[name].start, slices[name].stop))
            continue
        hits = [i for i, v in enumerate(function.ir.ins) if v.name == name]
        if not hits:
            raise MetaccError(f"{function.name} has no argument '{name}'",
                              expected="one of: " + ", ".join(a.name for a in function.args), found=name)
        out += hits
    for i in out:
        if not function.ir.ins[i].type.is_float:
            raise MetaccError(f"cannot differentiate {function.name} with respect to "
                              f"'{function.ir.ins[i].name}': it is {function.ir.ins[i].type}",
                              hint="only float arguments have derivatives")
    return out
