"""Meta-level forward values of the examples against plain-NumPy implementations.

These evaluate grad/argmin equations, so they need the AD expansion
(metacc.ad.expand); the annotations must leave every value unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest

from metacc.frontend import load, load_source
from metacc.interp import evaluate
from tests.frontend.helpers import ROOT
from tests.frontend.numpy_models import NET, init_net, log_softmax, mse, mse_grad, sinusoid_task

pytest.importorskip("metacc.ad.expand")

EX = ROOT / "examples"


def _flat(p):
    return [p[k] for k in NET]


def _numpy_maml(p, task, alpha, k, act="relu"):
    xs, ys, xq, yq = task
    for _ in range(k):
        g = mse_grad(p, xs, ys, act)
        p = {n: p[n] - alpha * g[n] for n in NET}
    return mse(p, xq, yq, act)


@pytest.fixture
def p1():
    rng = np.random.default_rng(7)
    return init_net(rng, (1, 40, 40, 1)), sinusoid_task(rng)


@pytest.mark.parametrize("example,fn", [("sinusoid_maml", "maml"), ("sinusoid_fomaml", "fomaml"),
                                        ("sinusoid_truncated", "truncated_maml"),
                                        ("sinusoid_checkpointed", "maml_long")])
@pytest.mark.parametrize("k", [1, 3])
def test_inner_loop_variants_all_compute_the_maml_value(p1, example, fn, k):
    p, task = p1
    program = load(EX / f"{example}.meta", float_dtype="f64", constants={"K": k})
    (loss,) = evaluate(program.functions[fn].ir, _flat(p) + list(task) + [np.float64(0.01)])
    np.testing.assert_allclose(loss, _numpy_maml(p, task, 0.01, k), rtol=1e-10)


def test_meta_sgd_takes_one_step_with_per_parameter_rates(p1):
    p, task = p1
    rng = np.random.default_rng(3)
    alpha = {n: rng.uniform(0.005, 0.02, size=v.shape) for n, v in p.items()}
    program = load(EX / "meta_sgd.meta", float_dtype="f64")
    (loss,) = evaluate(program.functions["meta_sgd"].ir, _flat(p) + _flat(alpha) + list(task))
    g = mse_grad(p, task[0], task[1])
    adapted = {n: p[n] - alpha[n] * g[n] for n in NET}
    np.testing.assert_allclose(loss, mse(adapted, task[2], task[3]), rtol=1e-10)


def test_learned_optimizer_sums_the_losses_of_ten_steps():
    rng = np.random.default_rng(5)
    phi = {"w1": rng.normal(size=(2, 8)), "b1": rng.normal(size=8) * 0.1,
           "w2": rng.normal(size=(8, 1)), "b2": rng.normal(size=1) * 0.1}
    x, y, w = rng.normal(size=(20, 10)), rng.normal(size=(20, 1)), rng.normal(size=(10, 1)) * 0.1
    program = load(EX / "learned_optimizer.meta", float_dtype="f64")
    (loss,) = evaluate(program.functions["learned_optimizer"].ir,
                       [phi["w1"], phi["b1"], phi["w2"], phi["b2"], x, y, w])
    m, total = np.zeros_like(w), 0.0
    for _ in range(10):
        g = 2 * x.T @ (x @ w - y) / y.size
        m = 0.9 * m + g
        u = 0.01 * (np.tanh(np.hstack([g, m]) @ phi["w1"] + phi["b1"]) @ phi["w2"] + phi["b2"])
        w = w - u
        total += np.mean((x @ w - y) ** 2)
    np.testing.assert_allclose(loss, total, rtol=1e-10)


def test_ridge_head_fits_in_closed_form_and_scores_the_query():
    rng = np.random.default_rng(11)
    w1, b1, w2 = rng.normal(size=(8, 32)) * 0.5, rng.normal(size=32) * 0.1, rng.normal(size=(32, 16)) * 0.3
    lam = np.float64(1.0)
    ys, yq = np.repeat(np.arange(5), 5), np.repeat(np.arange(5), 15)
    centers = rng.normal(size=(5, 8)) * 2
    xs, xq = centers[ys] + rng.normal(size=(25, 8)), centers[yq] + rng.normal(size=(75, 8))
    program = load(EX / "ridge_head.meta", float_dtype="f64")
    (loss,) = evaluate(program.functions["r2d2"].ir, [w1, b1, w2, lam, xs, ys, xq, yq])
    embed = lambda x: np.maximum(x @ w1 + b1, 0) @ w2  # noqa: E731
    fs = embed(xs)
    head = fs.T @ np.linalg.solve(fs @ fs.T + lam * np.eye(25), np.eye(5)[ys])
    expected = -np.mean(log_softmax(embed(xq) @ head)[np.arange(75), yq])
    np.testing.assert_allclose(loss, expected, rtol=1e-9)


def test_straight_through_uses_the_hard_step_forward():
    rng = np.random.default_rng(13)
    w, x, t = rng.normal(size=(8, 1)), rng.normal(size=(30, 8)), rng.integers(0, 2, size=(30, 1)).astype(float)
    program = load(EX / "straight_through.meta", float_dtype="f64")
    (loss,) = evaluate(program.functions["ste"].ir, [w, x, t])
    np.testing.assert_allclose(loss, np.sum(((x @ w > 0).astype(float) - t) ** 2), rtol=1e-12)


def test_imaml_inner_solution_is_gradient_descent_on_the_proximal_objective():
    rng = np.random.default_rng(17)
    theta = init_net(rng, (1, 20, 20, 1))
    task = sinusoid_task(rng)
    # 100 of the example's 1,500 steps: between 100 and 200 this trajectory turns towards one
    # of two minima on differences in the last bits of tanh (NumPy's SIMD tanh differs between
    # AVX2 and AVX-512 machines), and two exact float64 runs end 26 % apart
    source = (EX / "imaml.meta").read_text()
    assert "sgd(lr=0.02, steps=1500)" in source
    program = load_source(source.replace("steps=1500", "steps=100"), float_dtype="f64")
    (loss,) = evaluate(program.functions["imaml"].ir, _flat(theta) + list(task) + [np.float64(1.0)])
    p = dict(theta)
    for _ in range(100):
        g = mse_grad(p, task[0], task[1], "tanh")
        p = {n: p[n] - 0.02 * (g[n] + 1.0 * (p[n] - theta[n])) for n in NET}
    np.testing.assert_allclose(loss, mse(p, task[2], task[3], "tanh"), rtol=1e-8)
