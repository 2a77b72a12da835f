"""The checked mode: every call verifies that its results are finite.

    mod = metacc.compile("maml.meta", check_finite=True)    # or METACC_CHECK_FINITE=1

With it on, a call whose result holds a NaN or an inf raises
`metacc.NonFiniteError` (a MetaccError and a FloatingPointError) that names
the first equation that made a non-finite value, with its .meta file:line,
the source line, the primitive and, for a meta function, the task: the
compiled kernel is re-run one task at a time to find the first bad task, and
that task through the reference interpreter (metacc.interp) with a watch on
every equation's outputs that follows each non-finite value back to the
equation that first made it from finite inputs. An input that is already
non-finite is named instead. Off (the default) a call costs one attribute
test more.

The runtime does not import this module (it imports the interpreter, and so
AD): metacc.compile hands `check_outputs` to the Module, which hands it to
each kernel, as it hands them their pipeline. NonFiniteError is defined in
metacc.errors, so that `import metacc` exports it without loading AD.
"""
from __future__ import annotations

import os

import numpy as np

from metacc.errors import MetaccError, NonFiniteError
from metacc.interp import evaluate, watching

ENV = "METACC_CHECK_FINITE"


def enabled(flag) -> bool:
    """compile()'s check_finite: True/False, or None to follow METACC_CHECK_FINITE."""
    if flag is None:
        return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if not isinstance(flag, (bool, np.bool_)):
        raise MetaccError("compile: check_finite must be True, False or None", found=repr(flag),
                          hint=f"None follows the environment variable {ENV}")
    return bool(flag)


def _bad(x) -> bool:
    a = np.asarray(x)
    return a.dtype.kind == "f" and not bool(np.isfinite(a).all())


def _what(x) -> str:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    kinds = [name for name, m in (("NaN", np.isnan(a)), ("inf", np.isposinf(a)), ("-inf", np.isneginf(a)))
             if m.any()]
    first = int(np.argmax(~np.isfinite(a)))
    shape = np.shape(x)
    at = f" (first at index {tuple(int(i) for i in np.unravel_index(first, shape))})" if shape else ""
    return " and ".join(kinds) + at


# what usually makes a non-finite value in each primitive, and what to do
_CAUSES = {
    "log": "log of 0 (-inf) or of a negative number (NaN): use log(x + eps) or log(maximum(x, eps))",
    "sqrt": "sqrt of a negative number; its derivative 1 / (2 sqrt(x)) is inf at 0 (norms of zero "
            "vectors): use sqrt(x + eps)",
    "div": "a division by zero: a norm or a count that is 0, or a derivative that divides (log's 1/x, "
           "sqrt's 1/(2 sqrt(x)), a power's x^(a-1) at 0); add eps to the denominator or argument",
    "pow": "pow at 0 with a negative or fractional exponent (also in its derivative), or of a "
           "negative base: keep the base positive, e.g. (x + eps) ^ a",
    "ipow": "an integer power that overflows (f32 holds up to 3.4e38), or a negative power of 0",
    "exp": "exp overflows above 88.7 in f32 (709 in f64): subtract the maximum first (logsumexp, "
           "softmax do), or clip the argument",
}
_OVERFLOW = ("values grew past the dtype's range (f32 holds up to 3.4e38): a diverging inner loop "
             "(a step size too large, too many steps) or an unnormalised sum; lower the step size, "
             "clip, or use f64 to see how far it goes")


class _Watch:
    """Where each non-finite value came from: the first equation that made a NaN
    or inf from finite inputs (an *origin*), passed on to every value computed
    from it. Values are followed by identity (the interpreter hands the same
    arrays from equation to equation and into loop bodies), so a NaN that a
    `where` discards is never blamed for a NaN elsewhere."""

    def __init__(self):
        self.loops: list = []
        self.origins: list = []          # (eqn, outs, loops), in the order they happened
        self.taint: dict[int, tuple] = {}
        self.keep: list = []             # the tainted arrays, alive so their ids stay theirs
        self.marks: list[int] = []

    def begin(self, e):
        self.marks.append(len(self.origins))

    def eqn(self, e, ins, outs):
        mark = self.marks.pop()
        if not any(_bad(o) for o in outs):
            return
        fallback = self.origins[0] if self.origins else None
        if e.prim in ("scan", "call", "grad", "argmin", "cg_solve"):
            # outputs its body computed keep their origin; new ones (stacked loop
            # outputs) come from the first origin inside it
            origin = self.origins[mark] if len(self.origins) > mark else fallback
        else:
            bad_ins = [x for x in ins if _bad(x)]
            if not bad_ins:
                origin = (e, outs, list(self.loops))
                self.origins.append(origin)
            else:
                origin = next((self.taint[id(x)] for x in bad_ins if id(x) in self.taint), fallback)
        for o in outs:
            if _bad(o) and id(o) not in self.taint:
                self.taint[id(o)] = origin
                self.keep.append(o)

    def origin_of(self, value):
        return self.taint.get(id(value)) or (self.origins[0] if self.origins else None)


def _task_args(kernel, args, j):
    out = []
    for k, a in enumerate(args):
        b = kernel.batched[k] if k < len(kernel.batched) else False
        out.append(a[j] if b else a)
    return out


def check_outputs(kernel, args: list, outs) -> None:
    """Raise NonFiniteError when a float result of the kernel call is not finite."""
    bad = [i for i, x in enumerate(outs) if _bad(x)]
    if not bad:
        return
    ir = kernel.ir()
    names = [getattr(a, "name", f"output {i}") for i, a in enumerate(ir.outs)]
    first = bad[0]
    if kernel.kind == "forward":
        label = "the result" + (f" {first}" if len(ir.outs) > 1 else "")
    elif kernel.kind == "grad":         # value, auxiliary results (of a tuple result), gradients
        n_aux = kernel.base.n_aux
        label = "the value" if first == 0 else f"the result '{names[first]}'" if first <= n_aux \
            else f"the gradient '{names[first]}'"
    else:
        label = f"the {kernel.kind} output '{names[first]}'"
    head = f"{kernel.fn_name}: {label} is {_what(outs[first])}"
    task, n_tasks, task_args = None, None, list(args)
    if kernel.batched is not None:
        n_tasks = next(np.shape(a)[0] for a, b in zip(args, kernel.batched) if b)
        for j in range(n_tasks):
            one = [a[j:j + 1] if (k < len(kernel.batched) and kernel.batched[k]) else a
                   for k, a in enumerate(args)]
            if any(_bad(x) for x in list(kernel._run(one))[:len(ir.outs)]):
                task = j
                break
        if task is not None:
            head += f"; task {task} of the batch of {n_tasks} (counting from 0) is the first that is not finite"
            task_args = _task_args(kernel, args, task)
    common = dict(function=kernel.fn_name, kind=kernel.kind, task=task, output=names[first])
    # an input that is already NaN or inf
    for v, a in zip(ir.ins, task_args):
        if _bad(a):
            raise NonFiniteError(f"{head}: its input '{v.name}' is already {_what(a)}", **common,
                                 hint="check the data (or the parameters) passed in")
    watch = _Watch()
    try:
        with watching(watch), np.errstate(all="ignore"):
            ref = evaluate(ir, task_args)
    except MetaccError:
        ref = None
    bad_ref = [i for i, x in enumerate(ref or []) if _bad(x)]
    found = watch.origin_of(ref[bad_ref[0]]) if bad_ref else None
    if found is None:
        raise NonFiniteError(f"{head}; the reference interpreter computes this task without a non-finite "
                             "result, so the compiled kernel and the interpreter disagree here", **common,
                             hint="please report this with the program and its inputs")
    e, vals, loops = found
    loop = "".join(f", in iteration {k} of the loop at {s.span.where() if s.span else '?'}" for s, k in loops)
    outs_text = ", ".join(f"'{v.name}' is {_what(o)}" for v, o in zip(e.outs, vals) if _bad(o))
    where = e.span.where() if e.span else None
    raise NonFiniteError(f"{head}; it goes back to `{e.prim}`" + (f" at {where}" if where else "")
                         + f"{loop}, the first equation on its path to make a non-finite value from "
                         f"finite inputs: {outs_text}",
                         e.span, prim=e.prim, where=where, hint=_CAUSES.get(e.prim, _OVERFLOW), **common)
