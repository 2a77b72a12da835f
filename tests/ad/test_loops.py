"""Loops, nested gradients, annotations and implicit differentiation, through the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.ad import grad_func, hvp_func, jvp_func
from metacc.errors import MetaccError
from metacc.ir.builder import Builder
from metacc.interp import evaluate
from metacc.ir.verify import verify
from metacc.passes import simplify
from metacc.passes.lower_cg import lower_cg
from tests.ad.handbuilt import f64, maml, quadratic_argmin
from tests.oracles import fd_grad, inner, rel_err


@pytest.fixture
def args():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(3, 1)), rng.normal(size=(5, 3)), rng.normal(size=(5, 1)),
            rng.normal(size=(6, 3)), rng.normal(size=(6, 1)), np.array(0.1)]


@pytest.mark.parametrize("K", [1, 5])
def test_meta_gradient_matches_finite_differences(K, args):
    fn = verify(maml(K))
    g = verify(grad_func(fn, [0, 5]))
    _, d_theta, d_alpha = evaluate(g, args)
    assert rel_err(d_theta, fd_grad(fn, args, 0)) < 1e-7
    assert rel_err(d_alpha, fd_grad(fn, args, 5)) < 1e-7


def test_first_order_is_the_gradient_with_inner_gradients_held_fixed(args):
    """FOMAML: d/dtheta of L_q(theta - a*sum_k g_k) with each g_k a constant."""
    K = 3
    fo = verify(maml(K, first_order=True))
    _, d_theta, _ = evaluate(verify(grad_func(fo, [0, 5])), args)
    # with the inner gradients constant, theta_K = theta + const, so the meta-gradient is
    # the query gradient at theta_K: compute it by finite differences of the query loss alone
    full = verify(maml(K))
    theta_k = _adapted(K, args)
    q_only = verify(maml(0))
    want = fd_grad(q_only, [theta_k] + args[1:], 0)
    assert rel_err(d_theta, want) < 1e-7
    # and it differs from the full second-order gradient (the dropped term is real)
    _, d_full, _ = evaluate(verify(grad_func(full, [0, 5])), args)
    assert rel_err(d_theta, d_full) > 1e-4


def _adapted(K, args):
    from tests.ad.handbuilt import step_fn
    step = step_fn()
    p = args[0]
    for _ in range(K):
        (p,) = evaluate(step, [args[1], args[2], args[5], p])
    return p


def test_truncated_is_first_order_then_full(args):
    """truncate(T): the first K-T steps have identity Jacobian, the last T are exact."""
    K, T = 4, 2
    tr = verify(maml(K, truncate=T))
    _, d_theta, _ = evaluate(verify(grad_func(tr, [0, 5])), args)
    # oracle: finite differences of the last T steps started from theta_{K-T} = theta + const
    theta_mid = _adapted(K - T, args)
    tail = verify(maml(T))
    want = fd_grad(tail, [theta_mid] + args[1:], 0)
    assert rel_err(d_theta, want) < 1e-7


@pytest.mark.parametrize("policy", [{"every": 2}, {"every": 3}, {"snapshots": 2}])
def test_checkpointing_gives_the_same_gradient(policy, args):
    K = 7
    _, a_t, a_a = evaluate(verify(grad_func(maml(K), [0, 5])), args)
    _, b_t, b_a = evaluate(verify(grad_func(maml(K, checkpoint=policy), [0, 5])), args)
    assert np.max(np.abs(a_t - b_t)) <= 1e-12 * max(1, np.max(np.abs(a_t)))
    assert abs(a_a - b_a) <= 1e-12 * max(1, abs(a_a))


def test_loops_stay_rolled():
    sizes = {K: simplify(grad_func(maml(K), [0])).size() for K in (5, 100)}
    assert sizes[5] == sizes[100]
    sizes_h = {K: simplify(hvp_func(maml(K), [0])).size() for K in (5, 100)}
    assert sizes_h[5] == sizes_h[100]


def test_hvp_symmetric_and_matches_fd_of_gradient(args):
    fn = verify(maml(3))
    h = verify(hvp_func(fn, [0]))
    g = verify(grad_func(fn, [0]))
    rng = np.random.default_rng(5)
    u, v = rng.normal(size=(3, 1)), rng.normal(size=(3, 1))
    hu = evaluate(h, args + [u])[1]
    hv = evaluate(h, args + [v])[1]
    assert abs(inner([u], [hv]) - inner([v], [hu])) < 1e-10 * max(1, abs(inner([u], [hv])))
    eps = 1e-6
    fd = (evaluate(g, [args[0] + eps * v] + args[1:])[1] - evaluate(g, [args[0] - eps * v] + args[1:])[1]) / (2 * eps)
    assert rel_err(hv, fd) < 1e-6


def test_jvp_through_loop_equals_gradient_projection(args):
    fn = verify(maml(4))
    v = np.random.default_rng(3).normal(size=(3, 1))
    jv = evaluate(verify(jvp_func(fn, [0])), args + [v])[1]
    eps = 1e-6
    fd = (evaluate(fn, [args[0] + eps * v] + args[1:])[0] - evaluate(fn, [args[0] - eps * v] + args[1:])[0]) / (2 * eps)
    assert abs(jv - fd) < 1e-7 * max(1, abs(fd))


def test_simplify_preserves_values(args):
    for fn in (grad_func(maml(5), [0, 5]), hvp_func(maml(2), [0])):
        extra = [np.ones((3, 1))] if len(fn.ins) > len(args) else []
        for a, b in zip(evaluate(fn, args + extra), evaluate(simplify(fn), args + extra)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("implicit", [{"kind": "cg", "iters": 20, "tol": 1e-12}, None])
def test_argmin_gradient_matches_closed_form(implicit):
    rng = np.random.default_rng(1)
    th, A, y, q = rng.normal(size=(3, 1)), rng.normal(size=(5, 3)), rng.normal(size=(5, 1)), rng.normal(size=(3, 1))
    g = verify(lower_cg(grad_func(verify(quadratic_argmin(implicit)), [0])))
    val, d_theta = evaluate(g, [th, A, y, q])
    H = A.T @ A + np.eye(3)
    p_star = np.linalg.solve(H, A.T @ y + th)
    assert abs(val - float(np.sum(p_star * q))) < 1e-9
    assert rel_err(d_theta, np.linalg.solve(H, q)) < 1e-9


def test_disconnected_parameter_is_an_error():
    b = Builder()
    x, w = b.input("x", f64(3)), b.input("w", f64(3))
    mask = b.cast(b.gt(b.mul(x, w), 0.0), dtype="f64")
    fn = b.build("step_loss", [b.reduce_sum(b.mul(mask, x), axes=(0,))])
    with pytest.raises(MetaccError) as err:
        grad_func(fn, [1])
    msg = str(err.value)
    assert "identically zero" in msg and "'w'" in msg and "straight_through" in msg


def test_unused_parameter_is_an_error():
    b = Builder()
    x, w = b.input("x", f64(3)), b.input("w", f64(3))
    fn = b.build("f", [b.reduce_sum(b.sin(x), axes=(0,))])
    with pytest.raises(MetaccError, match="not used"):
        grad_func(fn, [1])


def test_grad_of_grad():
    """d/dx of (d/dx sum(x^3)) . 1 = 6x."""
    sb = Builder()
    x = sb.input("x", f64(4))
    cube = sb.build("cube", [sb.reduce_sum(sb.ipow(x, n=3), axes=(0,))])
    b = Builder()
    y = b.input("y", f64(4))
    (g,) = b.emit("grad", y, fn=cube, n_wrt=1)
    fn = b.build("gsum", [b.reduce_sum(g, axes=(0,))])
    xs = np.array([0.5, -1.0, 2.0, 3.0])
    _, gg = evaluate(verify(grad_func(fn, [0])), [xs])
    assert np.allclose(gg, 6 * xs, rtol=1e-14)


def test_first_order_reverse_loop_is_removed(args):
    """With every inner gradient held constant the cotangent passes through each step
    unchanged: the reverse loop carries nothing and disappears, the gradient stays."""
    g = grad_func(maml(4, first_order=True), [0])
    s = simplify(g)
    assert any(e.params.get("reverse") for e in g.eqns if e.prim == "scan")
    assert not any(e.params.get("reverse") for e in s.eqns if e.prim == "scan")
    for a, b in zip(evaluate(g, args), evaluate(s, args)):
        assert np.array_equal(a, b)
