"""Convergence diagnostics: solvers that say when they stopped short.

An `argmin` runs a fixed number of SGD steps and its implicit gradient a fixed
number of conjugate-gradient iterations; neither stops early enough to be
safe by construction, so each reports how far it got:

    argmin   |grad F(p*)| / |grad F(p0)|   the inner objective's gradient at the
             returned point, relative to where the solver started (absolute when
             it started at a stationary point); tolerance sgd(tol=...), default 1e-4
    cg       |r| / |b|                     the final relative residual of the linear
             solve (0 when b = 0); tolerance cg(tol=...), default 1e-8

The figure is computed inside the program, as a `diagnostic` equation (a float
scalar in, no outputs, no derivative) placed where the solver is written, so
every backend computes it:

- the reference interpreter (metacc.interp) records each diagnostic it
  evaluates and, when the outermost `evaluate` returns, warns about the worst;
- before code generation `hoist` turns them into extra outputs of the kernel
  (inside a loop: an extra carry holding the worst figure over the
  iterations); the runtime's Kernel lists them in the generated module as
  DIAGNOSTICS, strips them from the results and warns (`check`). A
  task-batched (meta) kernel keeps one figure per task ('stack'), so the
  warning names the worst task and how many missed.

A figure that is not <= tol (NaN included: a diverged solver) raises
`metacc.ConvergenceWarning` naming the .meta location, the figure, the
tolerance and what to change. `warnings.simplefilter("error", metacc.ConvergenceWarning)`
turns it into an error.
"""
from __future__ import annotations

import contextvars
import math
import os
import sys
import warnings

import numpy as np

from metacc.ir.builder import Builder, inline
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.scan import ScanLayout, rebuilt
from metacc.ir.walk import any_eqn
from metacc.labels import add_label_checks, check_labels, has_one_hot
from metacc.passes.inline import inline_calls

PRIM = "diagnostic"
SGD_TOL = 1e-4          # default stationarity tolerance of argmin ... by sgd(...)
KEYS = ("kind", "where", "tol", "what", "advice", "side", "n", "input")   # the last three: metacc.labels


class ConvergenceWarning(UserWarning):
    """A solver inside a compiled program (argmin's SGD, conjugate gradient) missed its tolerance.

    Attributes: kind ('argmin' or 'cg'), where (file:line:col), value (the worst
    figure measured), tol, tasks_missed / n_tasks (meta programs; else None).
    """

    def __init__(self, message: str, kind: str = "", where: str = "", value: float = float("nan"),
                 tol: float = 0.0, tasks_missed: int | None = None, n_tasks: int | None = None):
        super().__init__(message)
        self.kind, self.where, self.value, self.tol = kind, where, value, tol
        self.tasks_missed, self.n_tasks = tasks_missed, n_tasks


# ---- building the figures (used by metacc.ad.implicit and metacc.passes.lower_cg) ----

def sq_norm(b, xs):
    """Sum of squares over every leaf of a tree of tensors (a float scalar)."""
    total = None
    for x in xs:
        s = b.reduce_sum(b.mul(x, x), axes=tuple(range(x.type.rank))) if x.type.rank else b.mul(x, x)
        total = s if total is None else b.add(total, s)
    return total


def relative_norm(b, num_sq, den_sq, name: str):
    """sqrt(num_sq / den_sq), or sqrt(num_sq) where den_sq is 0 (no division by zero)."""
    dtype = num_sq.type.dtype
    tiny = b.lit(1e-30 if dtype == "f32" else 1e-300, dtype)
    ratio = b.div(num_sq, b.maximum(den_sq, tiny))
    return b.sqrt(b.select(b.gt(den_sq, b.lit(0.0, dtype)), ratio, num_sq), name=name)


def emit(b, figure, *, kind: str, tol: float, span, what: str, advice: str) -> None:
    where = span.where() if span is not None else "<unknown location>"
    b.emit(PRIM, b.stop_gradient(figure, name=figure.name), span=span, kind=kind, tol=float(tol),
           where=where, what=what, advice=advice)


# ---- hoisting: diagnostics become kernel outputs ------------------------------------------

def has_diagnostics(fn: Func) -> bool:
    return any_eqn(fn, lambda e: e.prim == PRIM)


def _describe(e: Eqn) -> dict:
    return {k: e.params[k] for k in KEYS if k in e.params}


def hoist(fn: Func) -> tuple[Func, list[dict]]:
    """fn with every diagnostic turned into an extra output (after its own), and
    one description per extra output. Calls are inlined first (as the backend
    does); a diagnostic inside a scan body becomes an extra carry holding the
    worst figure so far (NaN sticks: a diverged iteration is the worst).
    Every one_hot first gets its label range check (metacc.labels)."""
    labels = has_one_hot(fn)
    if not (labels or has_diagnostics(fn)):
        return fn, []
    fn = inline_calls(fn)
    if labels:
        fn = add_label_checks(fn)
    eqns, figures, descs = _hoist_eqns(fn.eqns)
    out = Func(fn.name, fn.ins, tuple(eqns), tuple(fn.outs) + tuple(figures), fn.span)
    return out, descs


def _hoist_eqns(eqns) -> tuple[list[Eqn], list[Var], list[dict]]:
    kept: list[Eqn] = []
    figures: list = []
    descs: list[dict] = []
    for e in eqns:
        if e.prim == PRIM:
            figures.append(e.ins[0])
            descs.append(_describe(e))
            continue
        if e.prim == "scan" and has_diagnostics(e.params["body"]):
            new, outs, d = _hoist_scan(e)
            kept += new
            figures += outs
            descs += d
            continue
        kept.append(e)
    return kept, figures, descs


def _worst(b, acc, x):
    """acc if acc is NaN, else x if x is NaN or larger, else acc."""
    acc_nan = b.ne(acc, acc)
    take = b.logical_or(b.gt(x, acc), b.ne(x, x))
    return b.select(acc_nan, acc, b.select(take, x, acc), name="worst")


def _hoist_scan(e: Eqn):
    body: Func = e.params["body"]
    layout = ScanLayout.of(e)
    inner_eqns, inner_figs, descs = _hoist_eqns(body.eqns)
    flat = Func(body.name, body.ins, tuple(inner_eqns), tuple(body.outs) + tuple(inner_figs), body.span)
    n = len(inner_figs)
    # new body: consts, carry + one accumulator per figure, xs -> carry + accs, ys
    bb = Builder(span=body.span)
    consts, carry, xs = ([bb.input(v.name, v.type) for v in part] for part in layout.split_ins(body.ins))
    accs = [bb.input("worst", f.type) for f in inner_figs]
    outs = inline(bb, flat, consts + carry + xs)
    figs = outs[len(body.outs):]
    new_accs = [_worst(bb, a, f) for a, f in zip(accs, figs)]
    carry_next, ys = layout.split_outs(outs[:len(body.outs)])
    new_body = bb.build(body.name, list(carry_next) + new_accs + list(ys))
    # the accumulators start at 0 (figures are >= 0); a carry init needs a var
    pre = [Eqn("full", (), (Var("worst0", f.type),), {"shape": (), "value": 0.0, "dtype": f.type.dtype}, e.span)
           for f in inner_figs]
    init = [p.outs[0] for p in pre]
    acc_outs = tuple(Var("worst", f.type) for f in inner_figs)
    e_consts, e_carry, e_xs = layout.split_ins(e.ins)
    e_carry_out, e_ys = layout.split_outs(e.outs)
    new = rebuilt(e, e_consts + e_carry + tuple(init) + e_xs, e_carry_out + acc_outs + e_ys, new_body,
                  n_carry=layout.n_carry + n)
    return pre + [new], list(acc_outs), descs


# ---- reading the figures: warnings ----------------------------------------------------------

def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.2e}"


def message(desc: dict, value: float, task: int | None = None, missed: int | None = None,
            n_tasks: int | None = None) -> str:
    figure = {"argmin": "relative gradient norm |grad F(p*)| / |grad F(p0)|",
              "cg": "relative residual |r| / |b|"}.get(desc.get("kind"), "figure")
    text = f"{desc['where']}: {desc['what']} did not converge: "
    if math.isnan(value) or math.isinf(value):
        text += f"its {figure} is {_fmt(value)} (the iteration diverged; tol {desc['tol']:g})"
    else:
        text += f"{figure} {_fmt(value)} > tol {desc['tol']:g}"
    if task is not None:
        text += f" (worst: task {task} of the batch, counting from 0; {missed} of {n_tasks} tasks missed)"
    return text + ". " + desc.get("advice", "")


def _user_stacklevel() -> int:
    """The first frame outside metacc (so the warning points at the caller's line)."""
    here = os.path.dirname(os.path.abspath(__file__))
    runtime = os.path.dirname(os.path.abspath(sys.modules["metacc.runtime"].__file__)) \
        if "metacc.runtime" in sys.modules else here
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(here + os.sep) or path.startswith(runtime + os.sep)):
            return level
        frame = frame.f_back
        level += 1
    return 1


def check(descs, figures, batched: bool = False) -> list[ConvergenceWarning]:
    """Compare figures (one per description; an array of per-task figures when
    batched) with their tolerances and warn, once per (kind, location, what),
    about the worst. Returns the warnings issued. A label figure that is not 0
    raises metacc.labels.LabelError (a MetaccError) instead."""
    if any(d["kind"] == "labels" for d in descs):
        descs, figures = check_labels(descs, figures, batched)
        if not descs:
            return []
    groups: dict = {}
    for d, f in zip(descs, figures):
        vals = np.asarray(f, dtype=np.float64).reshape(-1) if batched else \
            np.asarray([float(f)], dtype=np.float64)
        key = (d["kind"], d["where"], d["what"], d["tol"])
        if key in groups:
            old_d, old = groups[key]
            # the same solve reached twice (primal and recomputed copies): per task, the worse
            worse = np.where(np.isnan(old) | (old >= vals), old, vals) if len(old) == len(vals) else \
                np.concatenate([old, vals])
            groups[key] = (old_d, worse)
        else:
            groups[key] = (d, vals)
    issued = []
    for d, vals in groups.values():
        bad = ~(vals <= d["tol"])          # NaN counts as a miss
        if not bad.any():
            continue
        nan = np.isnan(vals)
        worst = int(np.argmax(nan)) if nan.any() else int(np.argmax(vals))
        value = float(vals[worst])
        if batched:
            msg = message(d, value, worst, int(bad.sum()), len(vals))
            w = ConvergenceWarning(msg, d["kind"], d["where"], value, d["tol"], int(bad.sum()), len(vals))
        else:
            w = ConvergenceWarning(message(d, value), d["kind"], d["where"], value, d["tol"])
        warnings.warn(w, stacklevel=_user_stacklevel())
        issued.append(w)
    return issued


# ---- the interpreter's side -------------------------------------------------------------------

_collector: contextvars.ContextVar = contextvars.ContextVar("metacc_diagnostics", default=None)


def start_collecting():
    """The outermost evaluation collects every diagnostic evaluated under it
    (loop bodies, expanded argmins): a token for `finish_collecting`, or None
    when an enclosing evaluation is already collecting."""
    if _collector.get() is not None:
        return None
    records: list = []
    return records, _collector.set(records)


def finish_collecting(token, ok: bool = True) -> None:
    """Stop collecting; when the evaluation finished (ok), warn about the worst figures."""
    if token is None:
        return
    records, reset = token
    _collector.reset(reset)
    if ok and records:
        check([d for d, _ in records], [v for _, v in records])


def record(e: Eqn, value) -> None:
    records = _collector.get()
    if records is not None:
        records.append((_describe(e), float(value)))
