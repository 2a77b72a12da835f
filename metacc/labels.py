"""Class labels are checked: a label outside 0..n-1 is an error, never a zero row.

`one_hot(labels, n)` (and `cross_entropy(logits, labels)`, which calls it)
compares each label with the classes 0..n-1, so a label of -1 or n would pick
no class: its row of targets is all zero and its loss term silently vanishes
(3 classes, labels [0, 7]: half the cross entropy). Labels are data, and they
can also be computed inside the program, so the check runs where the labels
are used:

- compiled kernels: before code generation `add_label_checks` puts two figures
  after every one_hot (before the loop when the labels are a loop's constants):
  how far the smallest label lies below 0 and how far the largest lies above
  n-1, both 0 when every label is a class. They travel as `diagnostic`
  equations of kind 'labels' (metacc.convergence hoists them into kernel
  outputs, one per task in a meta kernel), and `check_labels` raises a
  `LabelError` when one is not 0. When the labels are a kernel input (also
  through a loop's constants) the description records which, and the runtime
  names the argument, the first bad label and its index (`LabelError.located`).
- the reference interpreter calls `check_values` on every one_hot it evaluates.
"""
from __future__ import annotations

import numpy as np

from metacc.errors import MetaccError, Source, Span
from metacc.ir.builder import Builder
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout
from metacc.ir.walk import any_eqn

KIND = "labels"


def _advice(n: int) -> str:
    return (f"labels number the {n} classes from 0 (labels counted from 1 need a - 1); "
            "a label that is no class would drop out of the loss")


def _classes(n: int) -> str:
    return f"out of range: {n} class{'es' if n != 1 else ''}, so labels must be in 0..{n - 1}"


# ---- the interpreter ----------------------------------------------------------------------

def check_values(e: Eqn, labels) -> None:
    """Raise for the first label of a one_hot eqn outside 0..n-1."""
    n = e.params["n"]
    arr = np.asarray(labels)
    bad = (arr < 0) | (arr >= n)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    at = f" at index {first}" if arr.ndim else ""
    raise MetaccError(f"label {int(arr[first])}{at} is {_classes(n)}", e.span,
                      found=f"{int(bad.sum())} of {arr.size} labels out of range", hint=_advice(n))


# ---- compiled kernels: the figures ----------------------------------------------------------

def has_one_hot(fn: Func) -> bool:
    return any_eqn(fn, lambda e: e.prim == "one_hot")


def add_label_checks(fn: Func) -> Func:
    """fn (calls inlined) with a range check after every one_hot. Labels that are a
    loop's constants (an inner loop's support labels) are checked once, before the
    loop, on the values the loop receives; others where they are used."""
    origin = {v: i for i, v in enumerate(fn.ins)}
    return Func(fn.name, fn.ins, tuple(_with_checks(fn.eqns, origin, frozenset())), fn.outs, fn.span)


def _with_checks(eqns, origin: dict[Var, int], done: frozenset) -> list[Eqn]:
    out: list[Eqn] = []
    seen: set = set()             # (labels, n) checked in this scope already (forward and backward loops)

    def check(oh: Eqn, labels) -> None:
        if (labels, oh.params["n"]) not in seen:
            seen.add((labels, oh.params["n"]))
            out.extend(_range_figures(oh, labels, origin))

    for e in eqns:
        if e.prim == "scan" and has_one_hot(e.params["body"]):
            body, layout = e.params["body"], ScanLayout.of(e)
            consts = {bv: a for bv, a in zip(layout.consts(body.ins), layout.consts(e.ins)) if isinstance(a, Var)}
            lifted = list(_constant_labels(body, consts))
            for oh, labels in lifted:
                check(oh, labels)
            done = done | {id(oh) for oh, _ in lifted}
            body = Func(body.name, body.ins, tuple(_with_checks(body.eqns, {}, done)), body.outs, body.span)
            e = Eqn("scan", e.ins, e.outs, {**e.params, "body": body}, e.span)
        out.append(e)
        if e.prim == "one_hot" and id(e) not in done:
            check(e, e.ins[0])
    return out


def _constant_labels(body: Func, outer: dict[Var, Var]):
    """(one_hot eqn, the labels outside) for each one_hot in body, nested loops included,
    whose labels are loop constants all the way out."""
    for e in body.eqns:
        if e.prim == "one_hot" and isinstance(e.ins[0], Var) and e.ins[0] in outer:
            yield e, outer[e.ins[0]]
        elif e.prim == "scan":
            inner, layout = e.params["body"], ScanLayout.of(e)
            through = {bv: outer[a] for bv, a in zip(layout.consts(inner.ins), layout.consts(e.ins))
                       if isinstance(a, Var) and a in outer}
            if through:
                yield from _constant_labels(inner, through)


def _range_figures(e: Eqn, labels, origin: dict[Var, int]) -> list[Eqn]:
    b = Builder(span=e.span)
    n = e.params["n"]
    # f64 holds every label up to 2^53 exactly, so the figure gives the bad value back
    x = b.cast(labels, dtype="f64", name="label")
    axes = tuple(range(labels.type.rank))
    top = b.reduce_max(x, axes=axes, name="label_max") if axes else x
    low = b.reduce_max(b.neg(x), axes=axes, name="label_min_neg") if axes else b.neg(x)
    below = b.maximum(low, 0.0, name="labels_below")
    above = b.maximum(b.sub(top, float(n - 1)), 0.0, name="labels_above")
    where = e.span.where() if e.span is not None else "<unknown location>"
    source = origin.get(labels) if isinstance(labels, Var) else None
    for side, fig in (("below", below), ("above", above)):
        b.emit("diagnostic", fig, kind=KIND, tol=0.0, where=where, what="one_hot", advice="",
               side=side, n=n, input=source)
    return b.eqns


# ---- the runtime ------------------------------------------------------------------------------

class LabelError(MetaccError):
    """A one_hot / cross_entropy label outside 0..n-1 (found by the kernel's check)."""

    def __init__(self, desc: dict, value: int, task: int | None, span: Span | None = None,
                 message: str | None = None, found: str | None = None):
        self.desc, self.value, self.task = desc, value, task
        n = desc["n"]
        if message is None:
            of = f" (in task {task} of the batch, counting from 0)" if task is not None else ""
            message = (f"{desc['where']}: label {value}{of} is {_classes(n)}"
                       + ("" if desc.get("input") is not None else "; the labels are computed in the program"))
        super().__init__(message, span, found=found, hint=_advice(n))

    def located(self, names: list[str], args: list, source: Source | None,
                batched: list[bool] | None = None) -> MetaccError:
        """The error restated for the user's call: the argument holding the labels (names
        and batched: one per kernel input leaf), the first bad label and its index, and
        the .meta line of the one_hot."""
        i = self.desc.get("input")
        span = _span(self.desc["where"], source)
        # with the span the message need not start with the location
        same = self.message if span is None else _strip(self.message)
        if i is None or i >= len(names) or i >= len(args):
            return LabelError(self.desc, self.value, self.task, span, message=same)
        arr = np.asarray(args[i])
        n = self.desc["n"]
        bad = (arr < 0) | (arr >= n)
        if not bad.any():                     # the kernel saw other values: keep its figure
            return LabelError(self.desc, self.value, self.task, span, message=same)
        first = tuple(int(k) for k in np.argwhere(bad)[0])
        at = f" at index {first}" if arr.ndim else ""
        batch = " (the task axis first)" if batched and batched[i] and arr.ndim else ""
        msg = f"argument '{names[i]}' holds label {int(arr[first])}{at}{batch}, {_classes(n)}"
        return LabelError(self.desc, int(arr[first]), self.task, span, message=msg,
                          found=f"{int(bad.sum())} of {arr.size} labels out of range")


def _strip(message: str) -> str:
    return message.split(": ", 1)[1] if ": " in message else message


def _span(where: str, source: Source | None) -> Span | None:
    """The Span of a 'file:line:col' from the module's own source (for the caret excerpt)."""
    try:
        name, line, col = where.rsplit(":", 2)
        if source is None or name != source.name:
            return None
        return Span(source, int(line), int(col))
    except ValueError:
        return None


_count_nonzero = np.count_nonzero        # a figure per task: far cheaper than ndarray.any()


def check_labels(descs, figures, batched: bool) -> tuple[list, list]:
    """Raise a LabelError for the first nonzero label figure; the other figures back."""
    rest_d, rest_f = [], []
    for d, f in zip(descs, figures):
        if d["kind"] != KIND:
            rest_d.append(d)
            rest_f.append(f)
            continue
        if not _count_nonzero(f):                 # every call passes here: keep it cheap
            continue
        vals = np.asarray(f, dtype=np.float64).reshape(-1)
        task = int(np.flatnonzero(vals)[0]) if batched else None
        amount = int(vals[task or 0])
        value = -amount if d["side"] == "below" else d["n"] - 1 + amount
        raise LabelError(d, value, task)
    return rest_d, rest_f
