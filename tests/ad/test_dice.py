"""magic(x) (DiCE, Foerster et al. 2018) against closed forms, float64.

The surrogate magic(sum log p(samples)) * reward has the value of the reward and
differentiates, at every order, to the score-function estimator. Expected values
here come from outside the code under test: the closed-form gradient and Hessian
of E[reward] for a softmax policy written in NumPy, the n-th derivative of
exp(f(x) - f(x0)) at x0 (a complete Bell polynomial in f's derivatives), and
central finite differences of the exact expectation computed by enumeration.
Samples are fixed (one-hot data), so "the average over samples" is an exact sum
over every outcome weighted by its probability (the weights are data: constants).
Every compiled kernel is also checked against the reference interpreter on its
stage-"ir" IR (straight from AD, before the simplifier) to 1e-10.
"""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.interp import evaluate

SOURCE = """
fn dice(z: f64[3], a: f64[3], r: f64) -> f64 {
    return magic(sum(a * log_softmax(z))) * r
}

fn naive(z: f64[3], a: f64[3], r: f64) -> f64 {
    return sum(a * log_softmax(z)) * r
}

fn two_steps(z1: f64[3], z2: f64[3, 3], a1: f64[3], a2: f64[3], r1: f64, r2: f64) -> f64 {
    # a1 ~ softmax(z1), then a2 ~ softmax(row a1 of z2); r1 comes after a1, r2 after both
    # (DiCE's causality: each reward is multiplied by magic of the log-probabilities before it)
    logp1 = sum(a1 * log_softmax(z1))
    row = sum(transpose(z2) * a1, axis=1)
    logp2 = sum(a2 * log_softmax(row))
    return magic(logp1) * r1 + magic(logp1 + logp2) * r2
}

fn d1(x: f64) -> f64 { return grad(magic(sin(x)), x) }
fn d2(x: f64) -> f64 { return grad(grad(magic(sin(x)), x), x) }
fn d3(x: f64) -> f64 { return grad(grad(grad(magic(sin(x)), x), x), x) }
fn value_only(x: f64) -> f64 { return magic(sin(x)) }
"""

Z = np.array([0.3, -0.8, 0.5])
REWARD = np.array([1.5, -0.4, 2.0])
EYE = np.eye(3)


@pytest.fixture(scope="module")
def mod():
    return metacc.compile(SOURCE, dtype="f64")


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def interpreted(handle, kind, wrt, args, extra=()):
    """The reference interpreter on the kernel's IR straight from AD (stage 'ir')."""
    ir = handle.kernel(kind, handle._wrt(wrt) if wrt else None).ir("ir")
    return [np.asarray(x) for x in evaluate(ir, [np.asarray(a, np.float64) for a in args] + list(extra))]


def hessian(handle, args, wrt, n, interp=False):
    """Columns H e_i from the hvp kernel (compiled, or interpreted)."""
    cols = []
    for i in range(n):
        e = np.zeros(np.shape(args[0]))
        e.flat[i] = 1.0
        if interp:
            cols.append(interpreted(handle, "hvp", wrt, args, [e])[1].ravel())
        else:
            cols.append(np.asarray(handle.hvp(*args, v=e, wrt=wrt)).ravel())
    return np.stack(cols, axis=1)


def test_magic_has_the_value_one(mod):
    for x in (0.0, 0.7, -2.5):
        assert mod.value_only(x) == 1.0
        assert interpreted(mod.value_only, "forward", None, [x])[0] == 1.0
    for k in range(3):
        assert mod.dice(Z, EYE[k], REWARD[k]) == REWARD[k]


def test_every_order_of_magic_is_the_bell_polynomial(mod):
    # d^n/dx^n exp(f(x) - f(x0)) at x0 with f = sin: f', f'' + f'^2, f''' + 3 f' f'' + f'^3
    for x in (0.4, -1.3, 2.2):
        f1, f2, f3 = np.cos(x), -np.sin(x), -np.cos(x)
        want = [f1, f2 + f1 ** 2, f3 + 3 * f1 * f2 + f1 ** 3]
        for name, w in zip(("d1", "d2", "d3"), want):
            got = getattr(mod, name)(x)
            ref = interpreted(getattr(mod, name), "forward", None, [x])[0]
            assert abs(got - w) < 1e-12, (name, x, got, w)
            assert abs(got - ref) < 1e-12, (name, x, got, ref)
        # the gradient kernel of d2 is the third derivative, too
        assert abs(mod.d2.grad(x, wrt="x") - want[2]) < 1e-12


def test_score_function_gradient_averages_to_the_true_gradient(mod):
    p = softmax(Z)
    true = (np.diag(p) - np.outer(p, p)) @ REWARD           # d/dz sum_k softmax(z)_k r_k
    est = np.zeros(3)
    for k in range(3):
        value, g = mod.dice.value_and_grad(Z, EYE[k], REWARD[k], wrt="z")
        ref = interpreted(mod.dice, "grad", "z", [Z, EYE[k], REWARD[k]])
        np.testing.assert_allclose(g, ref[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, REWARD[k] * (EYE[k] - p), rtol=1e-12, atol=1e-14)   # r * grad log p_k
        est += p[k] * g
    np.testing.assert_allclose(est, true, rtol=1e-12, atol=1e-14)


def test_second_derivative_is_the_second_order_score_function_estimator(mod):
    p = softmax(Z)
    jac = np.diag(p) - np.outer(p, p)          # d p / d z, and minus the Hessian of log p_k
    expected_hessian = np.zeros((3, 3))
    for k in range(3):
        g = EYE[k] - p                          # grad log p_k
        closed = REWARD[k] * (np.outer(g, g) - jac)          # r (grad log p grad log p^T + hess log p)
        args = [Z, EYE[k], REWARD[k]]
        h = hessian(mod.dice, args, "z", 3)
        np.testing.assert_allclose(h, closed, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h, hessian(mod.dice, args, "z", 3, interp=True), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h, h.T, atol=1e-13)
        # without magic the surrogate log p * r loses the grad log p grad log p^T term
        naive = hessian(mod.naive, args, "z", 3)
        np.testing.assert_allclose(naive, -REWARD[k] * jac, rtol=1e-12, atol=1e-13)
        assert np.max(np.abs(naive - closed)) > 0.01
        expected_hessian += p[k] * closed
    # weighted by p, the estimator is the exact Hessian of E[r] = sum_k p_k r_k:
    # central differences of the closed-form gradient jac(z) r
    eps = 1e-6
    fd = np.stack([((np.diag(softmax(Z + eps * e)) - np.outer(softmax(Z + eps * e), softmax(Z + eps * e))) @ REWARD
                    - (np.diag(softmax(Z - eps * e)) - np.outer(softmax(Z - eps * e), softmax(Z - eps * e))) @ REWARD)
                   / (2 * eps) for e in EYE], axis=1)
    np.testing.assert_allclose(expected_hessian, fd, rtol=1e-7, atol=1e-8)


# ---- two stochastic nodes: each reward depends only on the choices before it ----

R1 = np.array([0.5, -1.0, 1.2])
R2 = np.array([[1.0, -0.5, 0.3], [2.0, 0.1, -1.5], [-0.7, 0.9, 0.4]])
Z1 = np.array([0.2, -0.4, 0.1])
Z2 = np.array([[0.5, -0.2, 0.0], [-0.3, 0.8, 0.1], [0.2, 0.2, -0.6]])


def expected_reward(z1, z2):
    """E[r1(a1) + r2(a1, a2)] by enumeration, in NumPy."""
    p1 = softmax(z1)
    return float(p1 @ R1 + sum(p1[i] * softmax(z2[i]) @ R2[i] for i in range(3)))


def _outcomes(z1, z2):
    for i in range(3):
        for j in range(3):
            yield softmax(z1)[i] * softmax(z2[i])[j], [z1, z2, EYE[i], EYE[j], R1[i], R2[i, j]]


def test_two_step_surrogate_gradient_is_the_gradient_of_the_expectation(mod):
    g1, g2 = np.zeros(3), np.zeros((3, 3))
    for weight, args in _outcomes(Z1, Z2):
        value, (a, b) = mod.two_steps.value_and_grad(*args, wrt=("z1", "z2"))
        assert value == args[4] + args[5]                    # magic's value is 1
        ref = interpreted(mod.two_steps, "grad", ("z1", "z2"), args)
        np.testing.assert_allclose(a, ref[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, ref[2], rtol=1e-10, atol=1e-12)
        g1 += weight * a
        g2 += weight * b
    eps = 1e-6
    for gi, g, base in ((0, g1, Z1), (1, g2, Z2)):
        for idx in np.ndindex(base.shape):
            step = np.zeros(base.shape)
            step[idx] = eps
            plus = (Z1 + step, Z2) if gi == 0 else (Z1, Z2 + step)
            minus = (Z1 - step, Z2) if gi == 0 else (Z1, Z2 - step)
            fd = (expected_reward(*plus) - expected_reward(*minus)) / (2 * eps)
            assert abs(g[idx] - fd) < 1e-8, (gi, idx, g[idx], fd)


def test_two_step_second_order_estimator_is_the_hessian_of_the_expectation(mod):
    # d^2 E / dz1 dz1 along random directions: sum over outcomes of p * (v^T H_surrogate v)
    rng = np.random.default_rng(3)
    h = 1e-4
    for _ in range(3):
        v1, v2 = rng.normal(size=3), rng.normal(size=(3, 3))
        est = 0.0
        for weight, args in _outcomes(Z1, Z2):
            hv = mod.two_steps.hvp(*args, v=(v1, v2), wrt=("z1", "z2"))
            ref = interpreted(mod.two_steps, "hvp", ("z1", "z2"), args, [v1, v2])
            np.testing.assert_allclose(hv[0], ref[2], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(hv[1], ref[3], rtol=1e-10, atol=1e-12)
            est += weight * (np.sum(hv[0] * v1) + np.sum(hv[1] * v2))
        fd = (expected_reward(Z1 + h * v1, Z2 + h * v2) - 2 * expected_reward(Z1, Z2)
              + expected_reward(Z1 - h * v1, Z2 - h * v2)) / h ** 2
        assert abs(est - fd) < 1e-6 * max(1.0, abs(fd)), (est, fd)


# ---- the tools say what magic does ----

def test_explain_names_magic_and_drops_no_term():
    from metacc.explain import explain
    from metacc.frontend import load_source
    text = explain(load_source(SOURCE, "dice.meta").functions["dice"].ir, "dice")
    at_magic = [line for line in text.splitlines() if "dice.meta:3:12:" in line]
    # magic's own stop_gradient drops nothing: one line, magic's (log_softmax's max-shift is at 3:26)
    assert len(at_magic) == 1 and "magic (DiCE)" in at_magic[0] and "score-function" in at_magic[0]


def test_gradcheck_refuses_a_score_function_surrogate_by_name(tmp_path):
    from metacc.errors import MetaccError
    from metacc.gradcheck import gradcheck
    path = tmp_path / "dice.meta"
    path.write_text(SOURCE)
    with pytest.raises(MetaccError, match="magic: a score-function surrogate"):
        gradcheck(str(path), "dice")


@pytest.mark.parametrize("decl, arg, message", [
    ("p: G", "p", "the argument of magic must be a float tensor, not"),
    ("i: i64[3]", "i", "magic needs a float tensor (a log-probability)"),
])
def test_magic_of_the_wrong_kind_is_a_located_error(decl, arg, message):
    from metacc.errors import MetaccError
    src = f"params G {{ w: f64[3] }}\nfn f({decl}) -> f64 {{\n    return sum(magic({arg}))\n}}\n"
    with pytest.raises(MetaccError) as err:
        metacc.compile(src, dtype="f64")
    assert message in str(err.value) and ":3:16" in str(err.value), str(err.value)
