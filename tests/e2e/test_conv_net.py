"""A tiny conv net compiled in float64: the MAML meta-gradient (2 inner steps, full second
order through conv2d, max-pool and avg-pool) against central differences of the compiled
meta-loss, and the loss's HVP (grad of grad) against differences of the gradient, plus its
symmetry. The forward kernel's value is checked against the reference interpreter first."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.frontend import load
from metacc.interp import evaluate
from tests.e2e.compiled import EPS, check_gradient, dot, moved, random_like

PROGRAM = Path(__file__).with_name("programs") / "conv_tiny.meta"


@pytest.fixture(scope="module")
def mod():
    return metacc.compile(PROGRAM, dtype="f64")


def tasks(seed=0, n_tasks=2):
    rng = np.random.default_rng(seed)
    return {"support": {"x": rng.normal(size=(n_tasks, 3, 8, 8, 1)), "y": rng.integers(0, 3, (n_tasks, 3))},
            "query": {"x": rng.normal(size=(n_tasks, 4, 8, 8, 1)), "y": rng.integers(0, 3, (n_tasks, 4))}}


def test_forward_kernel_matches_interpreter(mod):
    theta, t = mod.Conv.init(seed=0), tasks()
    fn = load(PROGRAM).functions["loss"].ir
    args = [theta[k] for k in ("w1", "b1", "w2", "b2", "wo", "bo")] + [t["support"]["x"][0], t["support"]["y"][0]]
    want = float(evaluate(fn, args)[0])
    got = float(mod.loss(theta, t["support"]["x"][0], t["support"]["y"][0]))
    assert abs(got - want) <= 1e-10 * abs(want)


def test_maml_meta_gradient_matches_finite_differences(mod):
    theta, t = mod.Conv.init(seed=0), tasks()
    loss, g = mod.maml.value_and_grad(theta, t)
    assert abs(float(loss) - float(mod.maml(theta, t))) <= 1e-12 * abs(float(loss))
    assert all(np.max(np.abs(v)) > 0 for v in g.values())
    check_gradient(lambda ps: float(mod.maml(ps[0], t)), (theta,), (g,), scales=(0.3,))


def test_hvp_of_the_loss_matches_differences_of_the_gradient_and_is_symmetric(mod):
    theta, t = mod.Conv.init(seed=1), tasks(1)
    x, y = t["support"]["x"][0], t["support"]["y"][0]
    rng = np.random.default_rng(2)
    (u,), (v,) = random_like((theta,), rng, (0.3,)), random_like((theta,), rng, (0.3,))
    hv = mod.loss.hvp(theta, x, y, v=v)
    hu = mod.loss.hvp(theta, x, y, v=u)
    g_plus = mod.loss.grad(moved((theta,), (v,), EPS)[0], x, y)
    g_minus = mod.loss.grad(moved((theta,), (v,), -EPS)[0], x, y)
    for k in theta:
        fd = (g_plus[k] - g_minus[k]) / (2 * EPS)
        assert np.max(np.abs(hv[k] - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd))), k
    lhs, rhs = dot((u,), (hv,)), dot((v,), (hu,))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))
