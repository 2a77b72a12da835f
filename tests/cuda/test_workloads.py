"""P1's meta vjp/jvp/hvp, P2 (Meta-SGD), P3 (HVP of one task's support MSE) and P6
(learned optimizer) on the CUDA target in the simulator, every kernel against the
reference interpreter run task by task and averaged (f64, 1e-10). Tiny sizes."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from tests.cuda.programs import ROOT, interp_mean, leaves, need_simulator, p1_text, sinusoid_batch

cuda = need_simulator()

RTOL, ATOL = 1e-10, 1e-13
TASKS = 2


def assert_close(got: list, want: list):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)
    assert any(np.abs(np.asarray(b)).max() > 1e-8 for b in want)     # not all zeros


def _like(rng, tree):
    return {n: rng.normal(size=a.shape) for n, a in tree.items()}


@pytest.fixture(scope="module")
def p1():
    mod = metacc.compile(p1_text(), dtype="f64", target="cuda")
    rng = np.random.default_rng(8)
    return mod, mod.Net.init(seed=2), sinusoid_batch(rng, TASKS, 3, 2), rng


@pytest.mark.parametrize("kind", ["vjp", "jvp", "hvp"])
def test_p1_meta_derivative_kernels(p1, kind):
    mod, theta, t, rng = p1
    ir = mod.program.functions["maml"].ir
    v = _like(rng, theta)
    wrt = list(range(6))
    shared = leaves(theta)
    if kind == "vjp":
        out, ct = mod.maml.vjp(theta, t, cotangent=np.float64(0.7))
        got = [out] + leaves(ct, theta)
        after = [np.float64(0.01), np.float64(0.7)]
    elif kind == "jvp":
        out, tan = mod.maml.jvp(theta, t, tangents=v)
        got = [out, tan]
        after = [np.float64(0.01)] + leaves(v)
    else:
        g, hv = mod.maml.grad_and_hvp(theta, t, v=v)
        got = leaves(g, theta) + leaves(hv, theta)
        after = [np.float64(0.01)] + leaves(v)
    want = interp_mean(ir, kind, wrt, shared, leaves(t), after, TASKS)
    assert_close(got, want[-len(got):])


def test_p3_hvp_of_one_task(p1):
    """P3: H v of one task's support MSE at the initial weights (a plain fn call)."""
    mod, theta, t, rng = p1
    x, y = t["support"]["x"][0], t["support"]["y"][0]
    v = _like(rng, theta)
    g, hv = mod.mse.grad_and_hvp(theta, x, y, v=v)
    want = interp_mean(mod.program.functions["mse"].ir, "hvp", list(range(6)), leaves(theta) + [x, y],
                       [], leaves(v), 1)
    assert_close(leaves(g, theta) + leaves(hv, theta), want[-12:])


def test_p2_meta_sgd():
    text = (ROOT / "examples" / "meta_sgd.meta").read_text().replace("40", "4")
    mod = metacc.compile(text, dtype="f64", target="cuda")
    rng = np.random.default_rng(3)
    theta, alpha = mod.Net.init(seed=0), mod.Rates.init()
    t = sinusoid_batch(rng, TASKS, 3, 2)
    ir = mod.program.functions["meta_sgd"].ir
    loss = mod.meta_sgd(theta, alpha, t)
    assert_close([loss], interp_mean(ir, "forward", None, leaves(theta) + leaves(alpha), leaves(t), [], TASKS))
    loss, (g_theta, g_alpha) = mod.meta_sgd.value_and_grad(theta, alpha, t, wrt=("theta", "alpha"))
    want = interp_mean(ir, "meta_grad", list(range(12)), leaves(theta) + leaves(alpha), leaves(t), [], TASKS)
    assert_close([loss] + leaves(g_theta, theta) + leaves(g_alpha, alpha), want)


def _p6(seed: int):
    """P6 (examples/learned_optimizer.meta) at a tiny size: the module, phi, w0, tasks."""
    text = (ROOT / "examples" / "learned_optimizer.meta").read_text()
    text = text.replace("[10, 1]", "[3, 1]").replace("[n, 10]", "[n, 3]").replace("T: int = 10", "T: int = 2")
    text = text.replace("[2, 8]", "[2, 4]").replace("[8]", "[4]").replace("[8, 1]", "[4, 1]")
    mod = metacc.compile(text, dtype="f64", target="cuda")
    rng = np.random.default_rng(seed)
    phi, w0 = mod.Opt.init(seed=1), {"w": rng.normal(size=(3, 1))}
    t = {"x": rng.normal(size=(TASKS, 4, 3)), "y": rng.normal(size=(TASKS, 4, 1))}
    return mod, phi, w0, t, rng


def test_p6_learned_optimizer():
    mod, phi, w0, t, _ = _p6(4)
    ir = mod.program.functions["learned_optimizer"].ir
    loss, g = mod.learned_optimizer.value_and_grad(phi, t, w0, wrt="phi")
    want = interp_mean(ir, "meta_grad", list(range(4)), leaves(phi), leaves(t), leaves(w0), TASKS)
    assert_close([loss] + leaves(g, phi), want)


def test_imaml_solver_loops_and_their_figures():
    """argmin by SGD with an implicit CG derivative: scan loops, and the solver figures
    the kernel returns per task (metacc.convergence) come back and warn as on the CPU."""
    text = (ROOT / "examples" / "imaml.meta").read_text().replace("20", "3")
    text = text.replace("steps=1500", "steps=10").replace("iters=100", "iters=4")
    mod = metacc.compile(text, dtype="f64", target="cuda")
    theta = mod.Net.init(seed=0)
    t = sinusoid_batch(np.random.default_rng(0), TASKS, 3, 2)
    with pytest.warns(metacc.ConvergenceWarning, match="did not converge"):
        loss, g = mod.imaml.value_and_grad(theta, t)
    with pytest.warns(metacc.ConvergenceWarning):
        want = interp_mean(mod.program.functions["imaml"].ir, "meta_grad", list(range(6)), leaves(theta),
                           leaves(t), [np.float64(1.0)], TASKS)
    assert_close([loss] + leaves(g, theta), want[:7])


def _derivatives(f, ir, kind, args, wrt, tree, wrt_idx, before, per_task, after, rng):
    """One of vjp / jvp / hvp of the meta function f w.r.t. the argument `wrt` (the tree `tree`),
    on the device and by the interpreter task by task: (got, want)."""
    v = _like(rng, tree)
    if kind == "vjp":
        out, ct = f.vjp(*args, cotangent=np.float64(0.7), wrt=wrt)
        got, extra = [out] + leaves(ct, tree), [np.float64(0.7)]
    elif kind == "jvp":
        out, tan = f.jvp(*args, tangents=v, wrt=wrt)
        got, extra = [out, tan], leaves(v, tree)
    else:
        g, hv = f.grad_and_hvp(*args, v=v, wrt=wrt)
        got, extra = leaves(g, tree) + leaves(hv, tree), leaves(v, tree)
    want = interp_mean(ir, kind, wrt_idx, before, per_task, after + extra, TASKS)
    return got, want[-len(got):]


@pytest.mark.parametrize("kind", ["vjp", "jvp", "hvp"])
def test_p2_meta_sgd_derivative_kernels(kind):
    text = (ROOT / "examples" / "meta_sgd.meta").read_text().replace("40", "4")
    mod = metacc.compile(text, dtype="f64", target="cuda")
    rng = np.random.default_rng(13)
    theta, alpha = mod.Net.init(seed=0), mod.Rates.init()
    t = sinusoid_batch(rng, TASKS, 3, 2)
    ir = mod.program.functions["meta_sgd"].ir
    got, want = _derivatives(mod.meta_sgd, ir, kind, (theta, alpha, t), "theta", theta, list(range(6)),
                             leaves(theta) + leaves(alpha), leaves(t), [], rng)
    assert_close(got, want)


@pytest.mark.parametrize("kind", ["vjp", "jvp", "hvp"])
def test_p6_learned_optimizer_derivative_kernels(kind):
    mod, phi, w0, t, rng = _p6(14)
    ir = mod.program.functions["learned_optimizer"].ir
    got, want = _derivatives(mod.learned_optimizer, ir, kind, (phi, t, w0), "phi", phi, list(range(4)),
                             leaves(phi), leaves(t), leaves(w0), rng)
    assert_close(got, want)
