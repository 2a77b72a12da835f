"""What the backward pass saves: `metacc residuals`.

The meta-gradient program is split (partial evaluation) into its forward
and backward halves; every value the backward half reads from the forward
half is a residual. A loop's residuals are stacked per iteration ([K, ...]
buffers), so they are where memory grows with the number of inner steps.
With checkpointing, loops store one state per segment and the backward pass
recomputes a segment at a time: its transient buffers are reported
separately (they exist for one segment at a time).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacc.ad.partial_eval import partial_eval
from metacc.ad.transforms import vjp_func
from metacc.errors import MetaccError, Span
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout
from metacc.ir.types import NUMPY_DTYPE, TensorType
from metacc.passes import simplify


@dataclass
class Residual:
    name: str
    type: TensorType
    span: Span | None
    transient: bool = False      # recomputed per checkpoint segment, not held for the whole pass

    def nbytes(self, dims: dict[str, int]) -> int:
        shape = []
        for d in self.type.shape:
            if isinstance(d, str):
                if d not in dims:
                    raise MetaccError(f"residual {self.name} has symbolic dim '{d}' with no size",
                                      hint=f"give it, e.g. --dims {d}=10")
                d = dims[d]
            shape.append(d)
        return int(np.prod(shape, dtype=np.int64)) * np.dtype(NUMPY_DTYPE[self.type.dtype]).itemsize


def _defining_spans(fn: Func) -> dict[Var, Span | None]:
    spans: dict[Var, Span | None] = {}
    for e in fn.eqns:
        for v in e.outs:
            spans[v] = e.span
    return spans


def _scan_residual_spans(e: Eqn, first_res: int) -> list[Span | None]:
    body: Func = e.params["body"]
    spans = _defining_spans(body)
    return [spans.get(a) if isinstance(a, Var) else None for a in body.outs[first_res:]] if first_res >= 0 else []


def residuals(fn: Func, wrt=None) -> list[Residual]:
    combined = simplify(vjp_func(fn, wrt))
    split = partial_eval(combined, len(fn.ins), len(fn.outs))
    fwd = split.fwd
    saved = [a for a in fwd.outs[len(fn.outs):] if isinstance(a, Var)]
    defs = {v: e for e in fwd.eqns for v in e.outs}
    out = []
    for v in saved:
        e = defs.get(v)
        span = e.span if e is not None else None
        if e is not None and e.prim == "scan":
            # a stacked residual: point at the line that computes it inside the loop
            k = list(e.outs).index(v)
            body_outs = e.params["body"].outs
            inner = _defining_spans(e.params["body"]).get(body_outs[k]) if k < len(body_outs) else None
            span = inner or span
        out.append(Residual(v.name, v.type, span))
    out += _transient(split.bwd)
    return out


def _transient(fn: Func) -> list[Residual]:
    """Residual stacks created inside the backward half (checkpoint segments being recomputed)."""
    found: list[Residual] = []
    for e in fn.eqns:
        if e.prim == "call":
            sub = e.params["fn"]
            for inner in sub.eqns:
                if inner.prim == "scan" and not inner.params.get("reverse"):
                    for v in ScanLayout.of(inner).split_outs(inner.outs)[1]:   # the stacked ones
                        found.append(Residual(v.name, v.type, inner.span, transient=True))
            found += _transient(sub)
        for s in e.subfuncs():
            if e.prim != "call":
                found += _transient(s)
    # one segment is live at a time: keep the largest set per distinct segment shape
    unique: dict = {}
    for r in found:
        unique.setdefault((r.name, r.type), r)
    return list(unique.values())


def report(fn: Func, wrt, dims: dict[str, int], batch: int = 1) -> str:
    res = residuals(fn, wrt)
    lines = [f"residuals saved by the backward pass of {fn.name} "
             f"(dims: {', '.join(f'{k}={v}' for k, v in dims.items()) or 'none'}; task batch {batch})", ""]
    lines.append(f"  {'value':<28} {'type':<24} {'bytes':>12}  source")
    total = transient = 0
    for r in res:
        nb = r.nbytes(dims) * batch
        where = r.span.short() if r.span else "-"
        tag = "  (recomputed per segment)" if r.transient else ""
        lines.append(f"  {r.name:<28} {str(r.type):<24} {nb:>12,}  {where}{tag}")
        if r.transient:
            transient += nb
        else:
            total += nb
    lines.append("")
    lines.append(f"  stored for the whole backward pass: {total:,} bytes")
    if transient:
        lines.append(f"  plus transient, one segment at a time: {transient:,} bytes")
    lines.append(f"  peak residual memory: {total + transient:,} bytes")
    return "\n".join(lines)


def peak_bytes(fn: Func, wrt, dims: dict[str, int], batch: int = 1) -> int:
    return sum(r.nbytes(dims) for r in residuals(fn, wrt)) * batch
