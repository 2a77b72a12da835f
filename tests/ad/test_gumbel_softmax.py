"""gumbel_softmax (relaxed and straight-through hard) against NumPy, float64.

The noise is the program's own: `uniform(k, shape)` from the same key gives the
u that gumbel_softmax turns into g = -log(-log(u)), so the NumPy reference uses
the same draws. Gradients are checked against the closed form of the softmax
Jacobian written here, the hard variant's against the relaxed one's (value
one-hot, derivative of the relaxed sample at every order), and every compiled
kernel against the reference interpreter on its stage-"ir" IR to 1e-10.
"""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.interp import evaluate

SOURCE = """
fn noise(k: key) -> f64[4, 3] { return uniform(k, [4, 3]) }
fn soft(z: f64[4, 3], k: key, tau: f64) -> f64[4, 3] { return gumbel_softmax(k, z, tau) }
fn hard(z: f64[4, 3], k: key, tau: f64) -> f64[4, 3] { return gumbel_softmax(k, z, tau, hard=true) }
fn drawn(z: f64[4, 3], k: key) -> i64[4] { return categorical(z, k) }
fn soft_loss(z: f64[4, 3], k: key, tau: f64, c: f64[4, 3]) -> f64 {
    return sum(c * gumbel_softmax(k, z, tau)) + sum(gumbel_softmax(fold_in(k, 1), z, 0.5) ^ 2)
}
fn soft_c(z: f64[4, 3], k: key, tau: f64, c: f64[4, 3]) -> f64 { return sum(c * gumbel_softmax(k, z, tau)) }
fn hard_c(z: f64[4, 3], k: key, tau: f64, c: f64[4, 3]) -> f64 { return sum(c * gumbel_softmax(k, z, tau, hard=true)) }
fn hard_loss(z: f64[4, 3], k: key, tau: f64, c: f64[4, 3]) -> f64 {
    return sum(c * gumbel_softmax(k, z, tau, hard=true)) + sum(gumbel_softmax(fold_in(k, 1), z, 0.5, hard=true) ^ 2)
}
"""

rng = np.random.default_rng(11)
Z = rng.normal(size=(4, 3))
C = rng.normal(size=(4, 3))
TAU = 0.7
KEY = np.uint64(12345)


@pytest.fixture(scope="module")
def mod():
    return metacc.compile(SOURCE, dtype="f64")


def interpreted(handle, kind, wrt, args, extra=()):
    ir = handle.kernel(kind, handle._wrt(wrt) if wrt else None).ir("ir")
    return [np.asarray(x) for x in evaluate(ir, list(args) + list(extra))]


def gumbel(mod, key):
    return -np.log(-np.log(np.asarray(mod.noise(key))))


def relaxed(z, g, tau):
    s = (z + g) / tau
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def keyed():
    # the noise of the second use, fold_in(k, 1), drawn by a tiny program of its own
    return metacc.compile("fn f(k: key) -> f64[4, 3] { return uniform(fold_in(k, 1), [4, 3]) }", dtype="f64")


def test_relaxed_sample_matches_numpy(mod):
    for key in (KEY, np.uint64(7)):
        want = relaxed(Z, gumbel(mod, key), TAU)
        got = np.asarray(mod.soft(Z, key, TAU))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got, interpreted(mod.soft, "forward", None, [Z, key, TAU])[0], rtol=1e-10)
        np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-12)


def test_low_temperature_approaches_the_hard_sample(mod):
    hard = np.asarray(mod.hard(Z, KEY, TAU))
    assert np.max(np.abs(np.asarray(mod.soft(Z, KEY, 1e-3)) - hard)) < 1e-6


def test_hard_sample_is_one_hot_of_the_categorical_draw(mod):
    for key in (KEY, np.uint64(7), np.uint64(99)):
        h = np.asarray(mod.hard(Z, key, TAU))
        assert set(np.unique(h)) <= {0.0, 1.0} and np.all(h.sum(axis=-1) == 1.0)
        picked = np.argmax(Z + gumbel(mod, key), axis=-1)
        np.testing.assert_array_equal(h, np.eye(3)[picked])
        np.testing.assert_array_equal(np.asarray(mod.drawn(Z, key)), picked)     # same key, same noise
        np.testing.assert_array_equal(h, interpreted(mod.hard, "forward", None, [Z, key, TAU])[0])


def _closed_form(mod, keyed, z, tau, c):
    g0 = gumbel(mod, KEY)
    g1 = -np.log(-np.log(np.asarray(keyed.f(KEY))))
    gz, gtau = np.zeros_like(z), 0.0
    for g, t, learned in ((g0, tau, True), (g1, 0.5, False)):
        y, s = relaxed(z, g, t), (z + g) / t
        cot = c if learned else 2 * y
        for i in range(z.shape[0]):
            jac = np.diag(y[i]) - np.outer(y[i], y[i])
            gz[i] += jac @ cot[i] / t
            if learned:
                gtau += -(jac @ s[i]) @ cot[i] / t
    return gz, gtau


def test_relaxed_gradient_matches_the_closed_form(mod, keyed):
    want_z, want_tau = _closed_form(mod, keyed, Z, TAU, C)
    value, (gz, gtau) = mod.soft_loss.value_and_grad(Z, KEY, TAU, C, wrt=("z", "tau"))
    np.testing.assert_allclose(gz, want_z, rtol=1e-11, atol=1e-13)
    assert abs(gtau - want_tau) < 1e-11 * max(1.0, abs(want_tau))
    ref = interpreted(mod.soft_loss, "grad", ("z", "tau"), [Z, KEY, TAU, C])
    np.testing.assert_allclose(gz, ref[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gtau, ref[2], rtol=1e-10, atol=1e-12)


def test_hard_gradient_is_the_relaxed_one_at_every_order(mod, keyed):
    # the hard loss's value differs (one-hot samples) but its derivatives are the relaxed loss's
    soft_value, soft_g = mod.soft_loss.value_and_grad(Z, KEY, TAU, C, wrt=("z", "tau"))
    hard_value, hard_g = mod.hard_loss.value_and_grad(Z, KEY, TAU, C, wrt=("z", "tau"))
    hard1 = np.eye(3)[np.argmax(Z + gumbel(mod, KEY), axis=-1)]
    assert abs(hard_value - (np.sum(C * hard1) + 4.0)) < 1e-12     # 4 one-hot rows squared
    assert abs(hard_value - soft_value) > 1e-3
    want_z, want_tau = _closed_form(mod, keyed, Z, TAU, C)
    # the hard loss's cotangent of the second use is 2 * (one-hot), not 2 * y: redo that part
    g1 = -np.log(-np.log(np.asarray(keyed.f(KEY))))
    y1, h1 = relaxed(Z, g1, 0.5), np.eye(3)[np.argmax(Z + g1, axis=-1)]
    for i in range(4):
        want_z[i] += (np.diag(y1[i]) - np.outer(y1[i], y1[i])) @ (2 * h1[i] - 2 * y1[i]) / 0.5
    np.testing.assert_allclose(hard_g[0], want_z, rtol=1e-11, atol=1e-13)
    assert abs(hard_g[1] - want_tau) < 1e-11 * max(1.0, abs(want_tau))
    ref = interpreted(mod.hard_loss, "grad", ("z", "tau"), [Z, KEY, TAU, C])
    np.testing.assert_allclose(hard_g[0], ref[1], rtol=1e-10, atol=1e-12)
    # the samples themselves: the hard one's VJP and JVP are the relaxed one's
    v = rng.normal(size=(4, 3))
    soft_vjp = np.asarray(mod.soft.vjp(Z, KEY, TAU, cotangent=C, wrt="z")[1])
    np.testing.assert_allclose(np.asarray(mod.hard.vjp(Z, KEY, TAU, cotangent=C, wrt="z")[1]), soft_vjp,
                               rtol=1e-12, atol=1e-14)
    soft_jvp = np.asarray(mod.soft.jvp(Z, KEY, TAU, tangents=v, wrt="z")[1])
    np.testing.assert_allclose(np.asarray(mod.hard.jvp(Z, KEY, TAU, tangents=v, wrt="z")[1]), soft_jvp,
                               rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(soft_jvp)) > 1e-3
    # second order: sum(c * sample) has the same Hessian, hard or relaxed
    np.testing.assert_allclose(np.asarray(mod.hard_c.hvp(Z, KEY, TAU, C, v=v, wrt="z")),
                               np.asarray(mod.soft_c.hvp(Z, KEY, TAU, C, v=v, wrt="z")), rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(np.asarray(mod.soft_c.hvp(Z, KEY, TAU, C, v=v, wrt="z")))) > 1e-3


def test_relaxed_hessian_is_symmetric_and_matches_finite_differences(mod, keyed):
    # finite differences of the closed-form gradient (NumPy), not of the code under test
    rng2 = np.random.default_rng(5)
    u, v = rng2.normal(size=(4, 3)), rng2.normal(size=(4, 3))
    hu = np.asarray(mod.soft_loss.hvp(Z, KEY, TAU, C, v=u, wrt="z"))
    hv = np.asarray(mod.soft_loss.hvp(Z, KEY, TAU, C, v=v, wrt="z"))
    assert abs(np.sum(hu * v) - np.sum(hv * u)) < 1e-11
    eps = 1e-6
    fd = (_closed_form(mod, keyed, Z + eps * v, TAU, C)[0]
          - _closed_form(mod, keyed, Z - eps * v, TAU, C)[0]) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-7, atol=1e-8)
    hard_hv = np.asarray(mod.hard_loss.hvp(Z, KEY, TAU, C, v=v, wrt="z"))
    ref = interpreted(mod.hard_loss, "hvp", "z", [Z, KEY, TAU, C], [v])
    np.testing.assert_allclose(hard_hv, ref[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("body, message", [
    ("gumbel_softmax(k, z, 0.0)", "temperature of gumbel_softmax must be positive"),
    ("gumbel_softmax(z, k, 0.5)", "gumbel_softmax takes the key first"),
    ("gumbel_softmax(z, z, 0.5)", "the key of gumbel_softmax must be a random key"),
    ("gumbel_softmax(k, z, z)", "the temperature of gumbel_softmax must be"),
])
def test_misuse_is_a_located_error(body, message):
    src = f"fn f(z: f64[4, 3], k: key) -> f64[4, 3] {{\n    return {body}\n}}\n"
    with pytest.raises(MetaccError) as err:
        metacc.compile(src, dtype="f64")
    text = str(err.value)
    assert message in text and ":2:12" in text, text


def test_hard_needs_a_fixed_class_count():
    src = "fn f(z: f64[n, m], k: key) -> f64[n, m] {\n    return gumbel_softmax(k, z, 0.5, hard=true)\n}\n"
    with pytest.raises(MetaccError, match="fixed number of classes"):
        metacc.compile(src, dtype="f64")
