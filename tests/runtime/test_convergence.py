"""Convergence diagnostics: argmin's SGD and conjugate gradient say when they stop short.

The programs are in solvers.meta (one implicit argmin solved well, with too few
SGD steps, with too few CG iterations; unrolled ones that stop short, diverge,
or sit in a loop). Each check runs in the reference interpreter and in the
compiled kernels; the compiled module is built once per session.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.convergence import hoist
from metacc.frontend import load
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

SOURCE = Path(__file__).with_name("solvers.meta")
LINES = {name: i + 1 for i, line in enumerate(SOURCE.read_text().splitlines())
         for name in ("converged", "short_sgd", "short_cg", "short_fit", "diverging", "in_a_loop")
         if line.startswith(("meta " + name + "(", "fn " + name + "("))}


def where(fn: str, col: int = 11) -> str:
    """file:line:col of the argmin in `fn` (written on the line after its header)."""
    return f"{SOURCE}:{LINES[fn] + 1 + (2 if fn == 'in_a_loop' else 0)}:{col}"


@pytest.fixture(scope="module")
def solvers(cache_dir):
    return metacc.compile(str(SOURCE), cache_dir=cache_dir)


@pytest.fixture(scope="module")
def program():
    return load(str(SOURCE))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(4)
    B = 3
    return {"support": {"x": rng.normal(size=(B, 6, 3)), "y": rng.normal(size=(B, 6, 1))},
            "query": {"x": rng.normal(size=(B, 5, 3)), "y": rng.normal(size=(B, 5, 1))}}


def one_task(batch, b):
    return [batch["support"]["x"][b], batch["support"]["y"][b], batch["query"]["x"][b], batch["query"]["y"][b]]


def caught(call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, [w.message for w in seen if isinstance(w.message, metacc.ConvergenceWarning)]


def figure(w) -> float:
    m = re.search(r"(?:norm .*?|residual .*?) ([0-9.]+e[+-][0-9]+) > tol", str(w))
    return float(m.group(1))


# ---- the reference interpreter -----------------------------------------------------------

def test_interpreter_warns_about_an_under_iterated_argmin(program, batch):
    theta = np.ones((3, 1))
    _, ws = caught(lambda: evaluate(program.functions["short_sgd"].ir, [theta] + one_task(batch, 0) + [1.0]))
    (w,) = ws
    assert w.kind == "argmin" and w.where == where("short_sgd")
    assert str(w).startswith(where("short_sgd") + ": argmin (sgd, 3 steps, lr 0.1) did not converge")
    assert w.tol == 1e-4 and w.value > 1e-2 and math.isclose(figure(w), w.value, rel_tol=1e-2)
    assert "Raise sgd(steps=3)" in str(w)


def test_interpreter_is_quiet_when_converged(program, batch):
    theta = np.ones((3, 1))
    for fn in ("converged", "short_cg"):            # short_cg's value needs no CG: quiet too
        _, ws = caught(lambda: evaluate(program.functions[fn].ir, [theta] + one_task(batch, 0) + [1.0]))
        assert ws == [], fn


def test_interpreter_warns_about_too_few_cg_iterations(program, batch):
    theta = np.ones((3, 1))
    g = kernel_ir(program.functions["short_cg"].ir, "meta_grad", [0])
    _, ws = caught(lambda: evaluate(g, [theta] + one_task(batch, 0) + [1.0]))
    (w,) = ws
    assert w.kind == "cg" and w.where == where("short_cg") and w.tol == 1e-10
    assert "relative residual |r| / |b|" in str(w) and w.value > 1e-6 and "Raise cg(iters=1)" in str(w)
    ok = kernel_ir(program.functions["converged"].ir, "meta_grad", [0])
    assert caught(lambda: evaluate(ok, [theta] + one_task(batch, 0) + [1.0]))[1] == []


def test_a_diverging_solver_warns_with_nan_or_inf(program, batch):
    theta = np.ones((3, 1))
    _, ws = caught(lambda: evaluate(program.functions["diverging"].ir, [theta] + one_task(batch, 0)[:2]))
    (w,) = ws
    assert not math.isfinite(w.value) and "diverged" in str(w) and w.where == where("diverging")


def test_a_diagnostic_in_a_loop_reports_its_worst_iteration(program, batch):
    """hoist() turns the diagnostic into an output; inside a loop, a carry of the worst figure."""
    fn = kernel_ir(program.functions["in_a_loop"].ir, "forward")
    args = [np.ones((3, 1))] + one_task(batch, 1)[:2]
    (value,), ws = caught(lambda: evaluate(fn, args))
    (w,) = ws
    hoisted, descs = hoist(fn)
    assert [d["kind"] for d in descs] == ["argmin"] and descs[0]["where"] == where("in_a_loop", 13)
    assert not any(e.prim == "diagnostic" for e in hoisted.eqns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the hoisted function only computes: no warning
        out = evaluate(hoisted, args)
    assert out[0] == value and out[1] == w.value > 1e-4


# ---- the compiled kernels ------------------------------------------------------------------

def test_compiled_meta_gradient_warns_naming_worst_task(solvers, batch):
    theta = solvers.Lin.init(seed=1)
    (value, g), ws = caught(lambda: solvers.short_sgd.value_and_grad(theta, batch))
    (w,) = ws
    assert w.kind == "argmin" and w.where == where("short_sgd") and w.n_tasks == 3 and w.tasks_missed == 3
    worst = int(re.search(r"worst: task (\d) of the batch", str(w)).group(1))
    # the figure is task `worst`'s, as the interpreter measures it
    _, ref = caught(lambda: evaluate(solvers.short_sgd.fn.ir, [theta["w"]] + one_task(batch, worst) + [1.0]))
    assert math.isclose(ref[0].value, w.value, rel_tol=1e-9)
    assert "3 of 3 tasks missed" in str(w) and np.isfinite(value) and g["w"].shape == (3, 1)


def test_compiled_cg_with_too_few_iterations_warns(solvers, batch):
    theta = solvers.Lin.init(seed=1)
    _, ws = caught(lambda: solvers.short_cg.value_and_grad(theta, batch))
    (w,) = ws
    assert w.kind == "cg" and w.where == where("short_cg") and f"{w.value:.2e}" in str(w)
    assert "> tol 1e-10" in str(w) and w.tasks_missed >= 1
    # the value alone runs no derivative solve: no warning
    assert caught(lambda: solvers.short_cg(theta, batch))[1] == []


def test_compiled_converged_argmin_is_quiet_and_matches_finite_differences(solvers, batch):
    theta = solvers.Lin.init(seed=1)
    (value, g), ws = caught(lambda: solvers.converged.value_and_grad(theta, batch))
    assert ws == []
    eps = 1e-6
    for i in range(3):
        e = np.zeros((3, 1))
        e[i] = eps
        (plus, minus), ws = caught(lambda: (solvers.converged({"w": theta["w"] + e}, batch),
                                            solvers.converged({"w": theta["w"] - e}, batch)))
        assert ws == []
        fd = (plus - minus) / (2 * eps)
        assert abs(g["w"][i, 0] - fd) <= 1e-7 * max(1.0, abs(fd)), (i, g["w"][i, 0], fd)
    # and against the closed form: p* = (X'X 2/k + I)^-1 (X'y 2/k + theta) per task
    want = 0.0
    for b in range(3):
        xs, ys, xq, yq = one_task(batch, b)
        A = 2 / 6 * xs.T @ xs + np.eye(3)
        p = np.linalg.solve(A, 2 / 6 * xs.T @ ys + theta["w"])
        want += np.linalg.solve(A, 2 / 5 * xq.T @ (xq @ p - yq)) / 3
    np.testing.assert_allclose(g["w"], want, rtol=1e-8)


def test_compiled_single_call_warns_and_can_be_an_error(solvers, batch):
    theta = solvers.Lin.init(seed=1)
    xs, ys, xq, yq = one_task(batch, 2)
    value, ws = caught(lambda: solvers.short_fit(theta, xs, ys, xq, yq))
    (w,) = ws
    assert w.where == where("short_fit") and w.tol == 1e-3 and w.n_tasks is None and "task" not in str(w)
    _, ref = caught(lambda: evaluate(solvers.short_fit.fn.ir, [theta["w"], xs, ys, xq, yq]))
    assert math.isclose(ref[0].value, w.value, rel_tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", metacc.ConvergenceWarning)
        with pytest.raises(metacc.ConvergenceWarning, match="short_fit|did not converge"):
            solvers.short_fit(theta, xs, ys, xq, yq)


def test_warning_points_at_the_callers_line(solvers, batch):
    theta = solvers.Lin.init(seed=1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        solvers.short_sgd(theta, batch)
    (rec,) = [w for w in seen if issubclass(w.category, metacc.ConvergenceWarning)]
    assert rec.filename == __file__


# ---- the command line ------------------------------------------------------------------------

def test_gradcheck_prints_the_convergence_warning(capsys):
    from metacc.cli import main
    assert main(["gradcheck", str(SOURCE), "--fn", "short_sgd"]) == 1
    out = capsys.readouterr().out
    warning = next(line for line in out.splitlines() if line.startswith("warning: "))
    assert where("short_sgd") in warning and "did not converge" in warning and "> tol 0.0001" in warning
    assert re.search(r"relative gradient norm .* [0-9.]+e-0[0-9] > tol", warning)
    assert "1 solver(s) did not converge" in out.splitlines()[-1] and "FAILED" in out.splitlines()[-1]


def test_check_notes_each_argmin(capsys):
    from metacc.cli import main
    assert main(["check", str(SOURCE)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 6 and where("short_fit") in notes[3] and "sgd tol 0.001" in notes[3]
    assert "cg tol 1e-10" in notes[0] and "ConvergenceWarning" in notes[0]
