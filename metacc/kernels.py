"""Kernel kinds and their differentiated arguments.

The kinds (forward, grad, meta_grad, vjp, jvp, hvp) and the passes that build
each kernel live in metacc.pipeline; `kernel_ir(fn, kind, wrt, stage)` (the
IR after a stage: 'ir' straight from the transform, 'simplified' what backends
compile, or any pass name) is re-exported here for the callers that ask for
a kernel by kind. This module adds which arguments a kernel differentiates.
"""
from __future__ import annotations

from metacc.errors import MetaccError
from metacc.pipeline import KINDS, _cache, kernel_ir, kernel_notes  # noqa: F401


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
