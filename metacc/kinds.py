"""Kernel kinds, and which arguments a kernel differentiates.

    forward    the function itself (grad/argmin expanded)
    grad       value and gradient w.r.t. the differentiated arguments
    meta_grad  the same, for a `meta` program (meta-loss and meta-gradient)
    vjp        outputs and cotangents of the inputs, given output cotangents
    jvp        outputs and tangents of the outputs, given input tangents
    hvp        gradient and Hessian-vector product (forward-over-reverse)

The passes that build each kind, and `kernel_ir(fn, kind, wrt, stage)` (the IR
after any stage), are in metacc.pipeline; this module stays light (no back
end, no Numba), so `metacc check` starts fast.
"""
from __future__ import annotations

from metacc.errors import MetaccError

KINDS = ("forward", "grad", "meta_grad", "vjp", "jvp", "hvp")


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
