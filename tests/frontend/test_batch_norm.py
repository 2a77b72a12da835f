"""batch_norm and flatten: values against NumPy, derivatives against finite differences,
compiled kernels against the interpreter, and the errors a user meets.

batch_norm is a composite of existing primitives; these tests check that the composite
means what docs/language.md says (statistics of this batch over every axis but the last,
biased variance, eps 1e-3 by default) and that its first and second derivatives, through
the statistics, are right. Sizes are tiny and float64.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.frontend import load_source
from metacc.interp import evaluate
from tests.oracles import fd_grad, fd_jvp, rel_err

SRC = """
params Bn { g: f64[3] = ones  b: f64[3] = zeros  w: f64[12, 2] = he_normal }
fn bn(x: f64[n, 2, 2, 3], g: f64[3], b: f64[3]) -> f64[n, 2, 2, 3] { return batch_norm(x, g, b) }
fn bn_eps(x: f64[n, 3], g: f64[3], b: f64[3]) -> f64[n, 3] { return batch_norm(x, g, b, eps=0.5) }
fn flat(x: f64[n, 2, 2, 3]) -> f64[n, 12] { return flatten(x) }
fn loss(p: Bn, x: f64[n, 2, 2, 3]) -> f64 {
    return mean(tanh(flatten(batch_norm(x, p.g, p.b)) @ p.w) ^ 2)
}
"""

rng = np.random.default_rng(0)
X = rng.normal(size=(5, 2, 2, 3)) * 2 + 1
G, B = 1 + 0.3 * rng.normal(size=3), 0.3 * rng.normal(size=3)


def _np_bn(x, g, b, eps=1e-3):
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axes)) / np.sqrt(x.var(axes) + eps) * g + b


@lru_cache(maxsize=None)
def _program():
    return load_source(SRC, "bn.meta")


@lru_cache(maxsize=None)
def _module():
    return metacc.compile(SRC)


def _ir(name):
    return _program().functions[name].ir


def test_batch_norm_value_is_that_of_the_batch_statistics():
    (y,) = evaluate(_ir("bn"), [X, G, B])
    np.testing.assert_allclose(y, _np_bn(X, G, B), rtol=1e-12, atol=1e-12)
    # per channel, over n, h and w: each channel of (y - b) / g has mean 0 and variance var / (var + eps)
    z = (y - B) / G
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0, atol=1e-12)
    var = X.var((0, 1, 2))
    np.testing.assert_allclose(z.var((0, 1, 2)), var / (var + 1e-3), rtol=1e-12)


def test_batch_norm_eps_is_the_one_given():
    x = rng.normal(size=(4, 3))
    (y,) = evaluate(_ir("bn_eps"), [x, G, B])
    np.testing.assert_allclose(y, _np_bn(x, G, B, eps=0.5), rtol=1e-12)
    assert not np.allclose(y, _np_bn(x, G, B))


def test_batch_norm_jvp_through_the_statistics_matches_finite_differences():
    """Moving one image moves every image's output (the batch's mean and variance move)."""
    mod = _module()
    t = (rng.normal(size=X.shape), rng.normal(size=3), rng.normal(size=3))
    _, dy = mod.bn.jvp(X, G, B, tangents=t, wrt=("x", "g", "b"))
    (want,) = fd_jvp(_ir("bn"), [X, G, B], [0, 1, 2], list(t))
    assert rel_err(dy, want) <= 1e-7
    only_first = np.zeros_like(X)
    only_first[0] = t[0][0]
    _, dy0 = mod.bn.jvp(X, G, B, tangents=(only_first, 0 * G, 0 * B), wrt=("x", "g", "b"))
    assert np.max(np.abs(dy0[1:])) > 1e-3


def test_loss_gradient_and_hvp_through_batch_norm():
    mod = _module()
    p = {"g": G, "b": B, "w": rng.normal(size=(12, 2))}
    ir = _ir("loss")
    flat_in = [p["g"], p["b"], p["w"], X]       # the IR's inputs: the group's fields in order, then x
    _, g = mod.loss.value_and_grad(p, X)
    for i, name in enumerate(("g", "b", "w")):
        assert rel_err(g[name], fd_grad(ir, flat_in, i)) <= 1e-7, name
    _, gx = mod.loss.value_and_grad(p, X, wrt="x")
    assert rel_err(gx, fd_grad(ir, flat_in, 3)) <= 1e-7
    u = {k: rng.normal(size=np.shape(v)) for k, v in p.items()}
    v = {k: rng.normal(size=np.shape(v)) for k, v in p.items()}
    hu, hv = mod.loss.hvp(p, X, v=u), mod.loss.hvp(p, X, v=v)
    uhv = sum(np.sum(u[k] * hv[k]) for k in p)
    vhu = sum(np.sum(v[k] * hu[k]) for k in p)
    assert abs(uhv) > 1e-6 and abs(uhv - vhu) <= 1e-10 * max(1.0, abs(uhv))


def test_flatten_is_row_major_and_keeps_a_symbolic_batch_axis():
    (y,) = evaluate(_ir("flat"), [X])
    np.testing.assert_array_equal(y, X.reshape(5, 12))
    np.testing.assert_array_equal(_module().flat(X[:2]), X[:2].reshape(2, 12))


def _error(body: str, sig: str = "x: f32[n, 4, 4, 3], g: f32[3], b: f32[3]", result: str = "f32") -> str:
    with pytest.raises(MetaccError) as e:
        load_source(f"fn f({sig}) -> {result} {{ return {body} }}", "e.meta")
    return str(e.value)


@pytest.mark.parametrize("body,sig,words", [
    ("sum(batch_norm(x, g, b))", "x: f32[n, 4, 4, 2], g: f32[3], b: f32[3]", ["gamma", "2 channels", "f32[2]"]),
    ("sum(batch_norm(x, g, b[0:2]))", None, ["beta", "f32[3]"]),
    ("sum(batch_norm(x, g, b, eps=0))", None, ["eps must be positive"]),
    ("sum(batch_norm(v, g, b))", "v: f32[3], g: f32[3], b: f32[3]", ["batch axis and a channel axis"]),
    ("sum(flatten(x))", "x: f32[n, h, 3]", ["fixed sizes", "h"]),
    ("sum(flatten(v))", "v: f32[3]", ["leading axis"]),
])
def test_errors_name_the_problem_and_point_at_the_call(body, sig, words):
    msg = _error(body, sig) if sig else _error(body)
    for w in words:
        assert w in msg, (w, msg)
    assert "e.meta:1:" in msg and "^" in msg


def test_running_statistics_are_explicit_carried_values():
    """The docs' pattern: a running mean carried through a loop from stop_gradient of the batch's."""
    src = """
    fn running_mean(x: f64[n, 3], K: int = 3) -> f64[3] {
        rm = zeros([3])
        h = x
        repeat K {
            rm = 0.9 * rm + 0.1 * stop_gradient(mean(h, axis=0))
            h = h + 1
        }
        return rm
    }"""
    x = rng.normal(size=(4, 3))
    (rm,) = evaluate(load_source(src, "rm.meta").functions["running_mean"].ir, [x])
    want = np.zeros(3)
    for i in range(3):
        want = 0.9 * want + 0.1 * (x.mean(0) + i)
    np.testing.assert_allclose(rm, want, rtol=1e-12)
