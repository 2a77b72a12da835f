"""The CUDA target's pipeline: metacc.pipeline's passes up to the buffer plan, then
the CUDA module (metacc.backend.cuda.source) instead of the Numba CPU one.

It has the functions of metacc.pipeline that the runtime's Kernel calls
(kernel_ir, back_end, kernel_source, show_stage), so a Module compiled with
target='cuda' runs the same code path with this object handed in.
"""
from __future__ import annotations

from metacc import pipeline as cpu
from metacc.backend.cuda.source import TARGET, cuda_source
from metacc.backend.wrap import literal, wrap_line

kernel_ir = cpu.kernel_ir
back_end = cpu.back_end
kernel_notes = cpu.kernel_notes
resolve = cpu.resolve
stages = cpu.stages


def kernel_source(fn, kind: str, wrt=None, batched=None) -> str:
    """The CUDA module the runtime loads (also what `metacc show --stage cuda` prints)."""
    b = back_end(fn, kind, wrt, batched, "plan")
    src = cuda_source(b.writer, b.batched, b.reduce)
    notes = kernel_notes(fn, kind, wrt)
    if notes:
        src += "\n# disconnected differentiated inputs (metacc.DisconnectedWarning)\n" \
            + "\n".join(wrap_line(f"WARNINGS = {literal(list(notes))}")) + "\n"
    if b.descs:
        src += "\n# solver and label figures: the last len(DIAGNOSTICS) outputs (metacc.convergence)\n" \
            + "\n".join(wrap_line(f"DIAGNOSTICS = {literal(list(b.descs))}")) + "\n"
    return src


def show_stage(fn, kind: str, wrt=None, batched=None, stage: str = "simplified") -> str:
    if stage in (TARGET, "lower", "numba"):
        return kernel_source(fn, kind, wrt, batched)
    return cpu.show_stage(fn, kind, wrt, batched, stage)
