"""P1-P3 derivatives through the reference interpreter, against outside oracles.

Float64 throughout (the programs are compiled with float_dtype='f64'). P1's
landscape is sharp with this initialisation (WORKLOADS.md), so finite
differences use eps = 1e-6 and check directional derivatives along random
directions plus a sample of single coordinates.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from metacc.frontend import load
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir
from tests.frontend.numpy_models import NET, init_net, mse_grad, sinusoid_task

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EPS = 1e-6


@lru_cache(maxsize=None)
def program(name, **constants):
    return load(EXAMPLES / f"{name}.meta", float_dtype="f64", constants=constants or None)


def flat_theta(seed=0):
    rng = np.random.default_rng(seed)
    p = init_net(rng, (1, 40, 40, 1))
    p = {k: (v if k.startswith("w") else np.zeros_like(v)) for k, v in p.items()}
    return [p[k] for k in NET]


def task(seed=1):
    return list(sinusoid_task(np.random.default_rng(seed)))


def wrt_of(fn, *names):
    sl = fn.leaf_slices()
    return [i for n in names for i in range(sl[n].start, sl[n].stop)]


def check_gradient(ir, args, wrt, grads, n_dirs=3, n_coords=12, tol=1e-6, seed=0):
    """Directional and coordinate central differences of ir's first output."""
    rng = np.random.default_rng(seed)

    def f(shift):
        moved = [a + shift.get(i, 0.0) for i, a in enumerate(args)]
        return float(evaluate(ir, moved)[0])

    scale = max(1.0, max(float(np.max(np.abs(g))) for g in grads))
    for _ in range(n_dirs):
        v = {i: rng.normal(size=np.shape(args[i])) for i in wrt}
        fd = (f({i: EPS * v[i] for i in wrt}) - f({i: -EPS * v[i] for i in wrt})) / (2 * EPS)
        ad = sum(float(np.sum(g * v[i])) for g, i in zip(grads, wrt))
        assert abs(fd - ad) <= tol * max(1.0, abs(fd), scale), (fd, ad)
    for _ in range(n_coords):
        k = int(rng.integers(len(wrt)))
        i = wrt[k]
        idx = tuple(int(rng.integers(s)) for s in np.shape(args[i]))
        e = np.zeros(np.shape(args[i]))
        e[idx] = EPS
        fd = (f({i: e}) - f({i: -e})) / (2 * EPS)
        assert abs(fd - grads[k][idx]) <= tol * scale, (i, idx, fd, grads[k][idx])


def sgd_steps(theta, xs, ys, alpha, steps):
    """Adapted weights by an independent NumPy backprop (tests/frontend/numpy_models.py)."""
    p = dict(zip(NET, theta))
    for _ in range(steps):
        g = mse_grad(p, xs, ys)
        p = {k: p[k] - alpha * g[k] for k in NET}
    return [p[k] for k in NET]


@pytest.mark.parametrize("K", [1, 5])
def test_p1_meta_gradient_full_second_order(K):
    fn = program("sinusoid_maml", K=K).functions["maml"]
    args = flat_theta() + task() + [np.array(0.01)]
    wrt = wrt_of(fn, "theta")
    out = evaluate(kernel_ir(fn.ir, "meta_grad", wrt), args)
    check_gradient(fn.ir, args, wrt, out[1:])


def test_p1_first_order_is_the_query_gradient_at_the_adapted_weights():
    """FOMAML's meta-gradient is the exact gradient of L_q(theta_K + c) with c held fixed."""
    fn = program("sinusoid_fomaml").functions["fomaml"]
    K = 5
    theta, t = flat_theta(), task()
    args = theta + t + [np.array(0.01)]
    assert len(args) == len(fn.ir.ins), [v.name for v in fn.ir.ins]
    g = evaluate(kernel_ir(fn.ir, "meta_grad", wrt_of(fn, "theta")), args)[1:]
    adapted = sgd_steps(theta, t[0], t[1], 0.01, K)
    mse = program("sinusoid_fomaml").functions["mse"]
    q_args = adapted + [t[2], t[3]]
    check_gradient(mse.ir, q_args, list(range(6)), g)


def test_p1_truncated_is_exact_gradient_of_last_steps():
    """truncate(2) of K=5: theta_3 = theta + c (identity Jacobian), then 2 exact steps."""
    fn = program("sinusoid_truncated").functions["truncated_maml"]
    theta, t = flat_theta(), task()
    args = theta + t + [np.array(0.01)]
    g = evaluate(kernel_ir(fn.ir, "meta_grad", wrt_of(fn, "theta")), args)[1:]
    mid = sgd_steps(theta, t[0], t[1], 0.01, 3)
    tail = program("sinusoid_maml", K=2).functions["maml"]
    check_gradient(tail.ir, mid + t + [np.array(0.01)], list(range(6)), g)


def test_p1_checkpointed_equals_full():
    ck = program("sinusoid_checkpointed", K=20).functions["maml_long"]
    full = program("sinusoid_maml", K=20).functions["maml"]
    args = flat_theta() + task() + [np.array(0.01)]
    a = evaluate(kernel_ir(ck.ir, "meta_grad", wrt_of(ck, "theta")), args)
    b = evaluate(kernel_ir(full.ir, "meta_grad", wrt_of(full, "theta")), args)
    for x, y in zip(a, b):
        assert np.max(np.abs(x - y)) <= 1e-12 * max(1.0, float(np.max(np.abs(y))))


def test_p1_rolled_size_independent_of_K():
    sizes = [kernel_ir(program("sinusoid_maml", K=K).functions["maml"].ir, "meta_grad",
                       list(range(6))).size() for K in (5, 100)]
    assert sizes[0] == sizes[1]


def test_p2_meta_sgd_gradients_wrt_weights_and_rates():
    prog = program("meta_sgd")
    fn = prog.functions["meta_sgd"]
    theta = flat_theta()
    rates = [np.full(np.shape(w), 0.01) for w in theta]
    args = theta + rates + task()
    wrt = wrt_of(fn, "theta", "alpha")
    out = evaluate(kernel_ir(fn.ir, "meta_grad", wrt), args)
    check_gradient(fn.ir, args, wrt, out[1:])
    assert max(float(np.max(np.abs(g))) for g in out[7:]) > 0   # the rates really get a gradient


def test_p3_hvp_symmetric_and_matches_fd_of_gradient():
    mse = program("sinusoid_maml").functions["mse"]
    theta, t = flat_theta(), task()
    args = theta + [t[0], t[1]]
    rng = np.random.default_rng(7)
    u = [rng.normal(size=np.shape(w)) for w in theta]
    v = [rng.normal(size=np.shape(w)) for w in theta]
    h = kernel_ir(mse.ir, "hvp", list(range(6)))
    hu = evaluate(h, args + u)[6:]
    hv = evaluate(h, args + v)[6:]
    uhv = sum(float(np.sum(a * b)) for a, b in zip(u, hv))
    vhu = sum(float(np.sum(a * b)) for a, b in zip(v, hu))
    assert abs(uhv - vhu) <= 1e-10 * max(1.0, abs(uhv))
    # oracle: central differences of an independent NumPy gradient
    p = dict(zip(NET, theta))
    plus = mse_grad({k: p[k] + EPS * d for k, d in zip(NET, v)}, t[0], t[1])
    minus = mse_grad({k: p[k] - EPS * d for k, d in zip(NET, v)}, t[0], t[1])
    for k, got in zip(NET, hv):
        want = (plus[k] - minus[k]) / (2 * EPS)
        assert np.max(np.abs(got - want)) <= 1e-6 * max(1.0, float(np.max(np.abs(want))))
