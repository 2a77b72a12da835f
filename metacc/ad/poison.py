"""Non-finite values poison their derivatives.

A derivative evaluated at a point where the function itself is NaN or inf is
not a number either, but reverse mode need not say so: a ReLU mask `x > 0`
is False at NaN, a saturated tanh has derivative exactly 0, a diverged inner
loop can leave every differentiated path dead. Such a task's gradient would
be finite (often exactly zero), and averaged over a task batch it would
silently vanish from the mean. So each user-facing derivative kernel adds
`value - value` (0 when the value is finite, NaN when it is not) to the
derivatives it returns: the task's result is non-finite exactly when its
value is, on compiled kernels and in the reference interpreter alike.

The cost is one subtraction and one add per returned derivative element,
applied only to the kernel's outputs (never inside inner loops).
"""
from __future__ import annotations

from metacc.ir.builder import Builder
from metacc.ir.core import Func, Var


def _flag(b: Builder, values) -> Var | None:
    """A scalar that is 0 when every value is finite and NaN otherwise."""
    flag = None
    for v in values:
        if not (isinstance(v, Var) and v.type.is_float):
            continue
        d = b.sub(v, v, name="nonfinite")
        if d.type.rank:
            d = b.reduce_sum(d, axes=tuple(range(d.type.rank)), name="nonfinite")
        flag = d if flag is None else b.add(flag, d, name="nonfinite")
    return flag


def _rebuild(fn: Func) -> tuple[Builder, list]:
    b = Builder(span=fn.span)
    b.ins = list(fn.ins)
    b.eqns = list(fn.eqns)
    return b, list(fn.outs)


def _poisoned(b: Builder, outs: list, primal, targets) -> list | None:
    """outs with each derivative in `targets` made non-finite where the primal
    outputs are not (None: no float primal output, nothing to do)."""
    flag = _flag(b, [outs[i] for i in primal])
    if flag is None:
        return None
    for i in targets:
        d = outs[i]
        if isinstance(d, Var) and d.type.is_float:
            if d.type.dtype != flag.type.dtype:
                f = b.cast(flag, dtype=d.type.dtype, name="nonfinite")
            else:
                f = flag
            outs[i] = b.add(d, f, name=d.name)
    return outs


def poison(fn: Func, kind: str, n_primal: int | None = None, n_aux: int = 0) -> Func:
    """fn: a kernel IR of `kind` as metacc.pipeline builds it. Its derivative
    outputs become non-finite wherever its primal outputs are (grad, meta_grad:
    the value; vjp: any differentiated output; jvp: each output's own tangent,
    elementwise; hvp: the value, which hvp_func passes as its last output for
    this use). The n_aux auxiliary outputs (after the value, or last of the
    primal outputs) are neither derivatives nor poison a derivative."""
    b, outs = _rebuild(fn)
    if kind in ("grad", "meta_grad"):
        new = _poisoned(b, outs, [0], range(1 + n_aux, len(outs)))
    elif kind == "vjp":
        new = _poisoned(b, outs, range(n_primal - n_aux), range(n_primal, len(outs)))
    elif kind == "jvp":
        floats = [i for i in range(n_primal - n_aux) if isinstance(outs[i], Var) and outs[i].type.is_float]
        new = list(outs)
        touched = False
        for i, j in zip(floats, range(n_primal, len(outs))):
            y, t = outs[i], outs[j]
            if isinstance(t, Var) and isinstance(y, Var):
                # elementwise: a tangent is NaN where its own output is not finite
                new[j] = b.add(t, b.sub(y, y, name="nonfinite"), name=t.name)
                touched = True
        new = new if touched else None
    elif kind == "hvp":
        value, outs = outs[-1], outs[:-1]
        new = _poisoned(b, [value] + outs, [0], range(1, len(outs) + 1))
        new = new[1:] if new is not None else outs
        return b.build(fn.name, new)
    else:
        return fn
    if new is None:
        return fn
    return b.build(fn.name, new)
