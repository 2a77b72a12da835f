"""Meta-gradients of every example, from the compiled kernels, against finite differences.

Float64 modules (dtype='f64'), 3 tasks of 5 support and 5 query points. For
exact programs the oracle is the central difference of the compiled mean
meta-loss; for the first-order and truncated programs, whose gradients are by
definition not those of their meta-loss, it is the central difference of the
loss they are the exact gradient of (computed with an independent NumPy model).
"""
from __future__ import annotations

import numpy as np
import pytest

from metacc.runtime.tasks import linear_regression_tasks
from tests.e2e.compiled import EPS, check_gradient, module, moved, random_like, small_tasks
from tests.frontend.numpy_models import mse as np_mse
from tests.frontend.numpy_models import mse_grad as np_mse_grad


def _sinusoid(name, fn, groups, **kw):
    """(value, groups) for a sinusoid program whose params arguments come first."""
    mod = module(name)
    tasks = small_tasks()
    handle = getattr(mod, fn)
    params = tuple(getattr(mod, g).init(seed=i) for i, g in enumerate(groups))
    return (lambda ps: float(handle(*ps, tasks, **kw)),
            lambda ps: handle.value_and_grad(*ps, tasks, **kw), params)


CASES = {
    # name: (program, meta function, params groups in argument order, extra keyword arguments,
    #        direction length per group: see check_gradient)
    "maml": ("sinusoid_maml", "maml", ("Net",), {}, (1.0,)),
    "meta_sgd": ("meta_sgd", "meta_sgd", ("Net", "Rates"), {}, (1.0, 1.0)),
    "per_layer_rates": ("per_layer_rates", "per_layer", ("Net", "Rates"), {}, (1.0, 0.1)),
    # alpha = 0.001: with he_normal features the head's curvature makes alpha = 0.01 diverge
    # at initialisation (meta-loss ~1e5), too sharp for finite differences
    "anil": ("anil", "anil", ("Body", "Head"), {"alpha": 0.001}, (1.0, 1.0)),
    "inner_adam": ("inner_adam", "inner_adam", ("Net",), {}, (1.0,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_meta_gradient_matches_finite_differences(case):
    program, fn, groups, kw, scales = CASES[case]
    value, value_and_grad, params = _sinusoid(program, fn, groups, **kw)
    loss, grads = value_and_grad(params)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert np.isfinite(loss) and abs(float(loss) - value(params)) <= 1e-12 * max(1.0, abs(float(loss)))
    assert len(grads) == len(groups)
    for g in grads:                     # every group really receives a gradient
        assert max(float(np.max(np.abs(v))) for v in g.values()) > 0
    check_gradient(value, params, grads, scales=scales)


def test_meta_sgd_rate_gradient_by_coordinates():
    """The rates' gradient on its own, coordinate by coordinate over a whole small leaf."""
    value, value_and_grad, (theta, rates) = _sinusoid("meta_sgd", "meta_sgd", ("Net", "Rates"))
    _, (_, g_rates) = value_and_grad((theta, rates))
    for i in range(g_rates["w3"].shape[0]):
        e = {k: np.zeros(np.shape(v)) for k, v in rates.items()}
        e["w3"][i, 0] = 1.0
        zero = {k: np.zeros(np.shape(v)) for k, v in theta.items()}
        fd = (value(moved((theta, rates), (zero, e), EPS)) - value(moved((theta, rates), (zero, e), -EPS))) / (2 * EPS)
        assert abs(fd - g_rates["w3"][i, 0]) <= 1e-6 * max(1.0, abs(fd)), (i, fd, g_rates["w3"][i, 0])


def test_learned_optimizer_phi_gradient():
    mod = module("learned_optimizer")
    tasks = linear_regression_tasks(np.random.default_rng(3), 3, n=20, d=10, dtype="f64")
    phi, w0 = mod.Opt.init(seed=0), mod.Linear.init()
    loss, g = mod.learned_optimizer.value_and_grad(phi, tasks, w0, wrt=("phi",))
    value = lambda ps: float(mod.learned_optimizer(ps[0], tasks, w0))  # noqa: E731
    assert abs(float(loss) - value((phi,))) <= 1e-12 * abs(float(loss))
    check_gradient(value, (phi,), (g,))


# ---- first-order and truncated: exact gradients of other losses ----

def _sgd(p, x, y, steps, alpha=0.01):
    """Adapted weights by independent NumPy backprop."""
    for _ in range(steps):
        g = np_mse_grad(p, x, y)
        p = {k: p[k] - alpha * g[k] for k in p}
    return p


def _per_task(tasks):
    s, q = tasks["support"], tasks["query"]
    return [(s["x"][i], s["y"][i], q["x"][i], q["y"][i]) for i in range(len(s["x"]))]


def _directional_check(grads, theta, value, seed=0):
    rng = np.random.default_rng(seed)
    scale = max(1.0, max(float(np.max(np.abs(v))) for v in grads.values()))
    for _ in range(3):
        (v,) = random_like((theta,), rng)
        want = (value(moved((theta,), (v,), EPS)[0]) - value(moved((theta,), (v,), -EPS)[0])) / (2 * EPS)
        got = float(sum(np.sum(grads[k] * v[k]) for k in v))
        assert abs(want - got) <= 1e-6 * max(1.0, abs(want), scale), (want, got)


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_weights():
    """FOMAML: d/d theta of mean_t L_q(theta + c_t) with c_t = theta_K - theta held fixed."""
    mod, tasks = module("sinusoid_fomaml"), small_tasks()
    theta = mod.Net.init(seed=0)
    _, g = mod.fomaml.value_and_grad(theta, tasks)
    shifts = [{k: a[k] - theta[k] for k in theta} for a in (_sgd(theta, sx, sy, 5) for sx, sy, _, _ in _per_task(tasks))]

    def value(p):
        return float(np.mean([np_mse({k: p[k] + c[k] for k in p}, qx, qy)
                              for c, (_, _, qx, qy) in zip(shifts, _per_task(tasks))]))
    _directional_check(g, theta, value)


def test_truncated_gradient_is_exact_through_the_last_steps_only():
    """truncate(2) of K=5: theta_3 = theta + c_t (identity Jacobian), then 2 differentiated steps."""
    mod, tasks = module("sinusoid_truncated"), small_tasks()
    theta = mod.Net.init(seed=0)
    _, g = mod.truncated_maml.value_and_grad(theta, tasks)
    shifts = [{k: a[k] - theta[k] for k in theta} for a in (_sgd(theta, sx, sy, 3) for sx, sy, _, _ in _per_task(tasks))]

    def value(p):
        return float(np.mean([np_mse(_sgd({k: p[k] + c[k] for k in p}, sx, sy, 2), qx, qy)
                              for c, (sx, sy, qx, qy) in zip(shifts, _per_task(tasks))]))
    _directional_check(g, theta, value)


def test_checkpointed_k100_equals_the_full_gradient():
    """Checkpointing changes memory, not the gradient: K = 100, every = 10 vs the plain loop."""
    tasks = small_tasks(n_tasks=2)
    ck, full = module("sinusoid_checkpointed"), module("sinusoid_maml")
    theta = ck.Net.init(seed=0)
    # scaled-down weights keep 100 steps of alpha = 0.01 from diverging
    theta = {k: 0.5 * v for k, v in theta.items()}
    a_loss, a = ck.maml_long.value_and_grad(theta, tasks)
    b_loss, b = full.maml.value_and_grad(theta, tasks, K=100)
    assert np.isfinite(a_loss) and abs(a_loss - b_loss) <= 1e-12 * max(1.0, abs(b_loss))
    scale = max(1.0, max(float(np.max(np.abs(v))) for v in b.values()))
    for k in b:
        assert np.max(np.abs(a[k] - b[k])) <= 1e-12 * scale, k
    # and the K = 100 gradient is right, not only consistent. Through 100 steps a move of
    # 1e-6 along a random direction flips some ReLU (the difference is then off by ~10%,
    # and exact again at 1e-7), so the directions are shortened tenfold.
    value = lambda ps: float(ck.maml_long(ps[0], tasks))  # noqa: E731
    check_gradient(value, (theta,), (a,), n_dirs=2, coords_per_group=4, scales=(0.1,))
