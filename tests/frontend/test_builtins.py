"""Builtins and operators, evaluated in the reference interpreter, against NumPy.

Each case is an expression over x, y: f64[4, 3], v: f64[3], a: f64[3, 3] and
i64 labels l: i64[4] in [0, 3), with its declared result type; the expected
value is written with NumPy directly.
"""
from __future__ import annotations

import numpy as np
import pytest

from metacc.frontend import load_source
from metacc.interp import evaluate

rng = np.random.default_rng(123)
X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
V, A = rng.normal(size=3), rng.normal(size=(3, 3))
L = np.array([0, 2, 1, 2])


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(z, axis=-1):
    return np.log(_softmax(z, axis))


CASES = [
    ("exp(x)", "f64[4, 3]", np.exp(X)),
    ("log(abs(x) + 1)", "f64[4, 3]", np.log(np.abs(X) + 1)),
    ("log1p(abs(x))", "f64[4, 3]", np.log1p(np.abs(X))),
    ("sqrt(abs(x))", "f64[4, 3]", np.sqrt(np.abs(X))),
    ("tanh(x)", "f64[4, 3]", np.tanh(X)),
    ("sigmoid(x)", "f64[4, 3]", 1 / (1 + np.exp(-X))),
    ("relu(x)", "f64[4, 3]", np.maximum(X, 0)),
    ("softplus(x)", "f64[4, 3]", np.log1p(np.exp(X))),
    ("sin(x) + cos(y)", "f64[4, 3]", np.sin(X) + np.cos(Y)),
    ("sign(x)", "f64[4, 3]", np.sign(X)),
    ("step(x)", "f64[4, 3]", (X > 0).astype(float)),
    ("maximum(x, 0.5)", "f64[4, 3]", np.maximum(X, 0.5)),
    ("minimum(x, y)", "f64[4, 3]", np.minimum(X, Y)),
    ("where(x > y, x, y)", "f64[4, 3]", np.where(X > Y, X, Y)),
    ("where(x > 0, 1.0, -1.0)", "f64[4, 3]", np.where(X > 0, 1.0, -1.0)),
    ("where(not (x > 0) and y > 0 or x == y, v, x)", "f64[4, 3]", np.where(~(X > 0) & (Y > 0) | (X == Y), V, X)),
    ("x + v", "f64[4, 3]", X + V),
    ("2 - x / (abs(y) + 1)", "f64[4, 3]", 2 - X / (np.abs(Y) + 1)),
    ("-x ^ 2", "f64[4, 3]", -(X ** 2)),
    ("x ^ 3 + x ^ -1", "f64[4, 3]", X ** 3 + 1 / X),
    ("abs(x) ^ 0.5", "f64[4, 3]", np.abs(X) ** 0.5),
    ("abs(x) ^ abs(y)", "f64[4, 3]", np.abs(X) ** np.abs(Y)),
    ("exp(0.5) * x + 1 / 4 * y + 2 ^ 3", "f64[4, 3]", np.exp(0.5) * X + 0.25 * Y + 8),
    ("x @ transpose(y)", "f64[4, 4]", X @ Y.T),
    ("sum(x)", "f64", X.sum()),
    ("sum(x, axis=0)", "f64[3]", X.sum(0)),
    ("sum(x, axis=[0, 1])", "f64", X.sum()),
    ("sum(x, axis=1, keepdims=true)", "f64[4, 1]", X.sum(1, keepdims=True)),
    ("mean(x, axis=-1)", "f64[4]", X.mean(-1)),
    ("mean(x)", "f64", X.mean()),
    ("max(x, axis=0)", "f64[3]", X.max(0)),
    ("min(x)", "f64", X.min()),
    ("argmax(x)", "i64[4]", X.argmax(-1)),
    ("argmax(x, axis=0)", "i64[3]", X.argmax(0)),
    ("logsumexp(x, axis=1)", "f64[4]", np.log(np.exp(X).sum(1))),
    ("logsumexp(x * 1000)", "f64", 1000 * X.max() + np.log(np.exp(1000 * (X - X.max())).sum())),
    ("logsumexp(x, axis=0, keepdims=true)", "f64[1, 3]", np.log(np.exp(X).sum(0, keepdims=True))),
    ("softmax(x)", "f64[4, 3]", _softmax(X)),
    ("softmax(x * 1000, axis=0)", "f64[4, 3]", _softmax(1000 * X, 0)),
    ("log_softmax(x, axis=0)", "f64[4, 3]", _log_softmax(X, 0)),
    ("cross_entropy(x, softmax(y))", "f64", -np.mean((_softmax(Y) * _log_softmax(X)).sum(-1))),
    ("cross_entropy(x, l)", "f64", -np.mean(_log_softmax(X)[np.arange(4), L])),
    ("one_hot(l, 3)", "f64[4, 3]", np.eye(3)[L]),
    ("transpose(x)", "f64[3, 4]", X.T),
    ("transpose(reshape(x, [2, 2, 3]), [2, 0, 1])", "f64[3, 2, 2]", X.reshape(2, 2, 3).transpose(2, 0, 1)),
    ("reshape(x, [3, 4])", "f64[3, 4]", X.reshape(3, 4)),
    ("reshape(x, [-1])", "f64[12]", X.reshape(-1)),
    ("concat([x, y], axis=0)", "f64[8, 3]", np.concatenate([X, Y], 0)),
    ("concat([x, y], axis=1)", "f64[4, 6]", np.concatenate([X, Y], 1)),
    ("stack([x, y])", "f64[2, 4, 3]", np.stack([X, Y])),
    ("stack([x, y], axis=-1)", "f64[4, 3, 2]", np.stack([X, Y], -1)),
    ("x[1:3, :]", "f64[2, 3]", X[1:3, :]),
    ("x[:, 0]", "f64[4]", X[:, 0]),
    ("x[-1]", "f64[3]", X[-1]),
    ("x[::2, 1:]", "f64[2, 2]", X[::2, 1:]),
    ("x[0, 2]", "f64", X[0, 2]),
    ("zeros([2, 3])", "f64[2, 3]", np.zeros((2, 3))),
    ("ones(2)", "f64[2]", np.ones(2)),
    ("full([2, 2], 3.5)", "f64[2, 2]", np.full((2, 2), 3.5)),
    ("full([2], sum(v))", "f64[2]", np.full(2, V.sum())),
    ("eye(3)", "f64[3, 3]", np.eye(3)),
    ("zeros_like(x) + ones_like(v)", "f64[4, 3]", np.ones((4, 3))),
    ("solve(a + 3 * eye(3), transpose(x))", "f64[3, 4]", np.linalg.solve(A + 3 * np.eye(3), X.T)),
    ("f32(x)", "f32[4, 3]", X.astype(np.float32)),
    ("i64(x > 0)", "i64[4, 3]", (X > 0).astype(np.int64)),
    ("x > y", "bool[4, 3]", X > Y),
    ("sqnorm(x)", "f64", (X ** 2).sum()),
    ("dot(x, y)", "f64", (X * Y).sum()),
    ("straight_through(step(x), x)", "f64[4, 3]", (X > 0).astype(float)),
    ("stop_gradient(x) + detach(y)", "f64[4, 3]", X + Y),
]


@pytest.mark.parametrize("expr,result,expected", CASES, ids=[c[0] for c in CASES])
def test_builtin_value(expr, result, expected):
    program = load_source(f"fn f(x: f64[4, 3], y: f64[4, 3], v: f64[3], a: f64[3, 3], l: i64[4]) -> {result} "
                          f"{{ return {expr} }}", "builtins.meta")
    (out,) = evaluate(program.functions["f"].ir, [X, Y, V, A, L])
    assert out.dtype == np.asarray(expected).dtype
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_mean_over_a_symbolic_axis_divides_by_its_size_at_call_time():
    program = load_source("fn f(x: f64[n, 3]) -> f64[3] { return mean(x, axis=0) }", "m.meta")
    fn = program.functions["f"].ir
    assert any(e.prim == "dim_size" and e.params["dims"] == ("n",) for e in fn.eqns)
    for n in (1, 4, 9):
        x = rng.normal(size=(n, 3))
        np.testing.assert_allclose(evaluate(fn, [x])[0], x.mean(0), rtol=1e-12)


def test_a_dim_name_is_a_value_in_arithmetic():
    program = load_source("fn f(x: f64[n, 2]) -> f64[n, 2] { return x / n + eye(n) @ x * 2 }", "d.meta")
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(evaluate(program.functions["f"].ir, [x])[0], x / 5 + 2 * x, rtol=1e-12)


def test_explicit_randomness_is_a_function_of_the_key():
    from metacc.ir import rng as counter_rng
    program = load_source("fn f(k: key) -> f64[3, 2] { return uniform(fold_in(k, 3), [3, 2]) + normal(k, [3, 2]) }",
                          "r.meta")
    fn = program.functions["f"].ir
    key = np.uint64(12345)
    (a,) = evaluate(fn, [key])
    (b,) = evaluate(fn, [key])
    expected = counter_rng.uniform(counter_rng.fold(key, 3), (3, 2), np.float64) + \
        counter_rng.normal(key, (3, 2), np.float64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, expected, rtol=1e-12)
    assert not np.allclose(evaluate(fn, [np.uint64(1)])[0], a)


def test_categorical_samples_follow_softmax_of_the_logits():
    program = load_source("fn f(z: f64[n, 3], k: key) -> i64[n] { return categorical(z, k) }", "c.meta")
    logits = np.tile(np.log([0.2, 0.5, 0.3]), (6000, 1))
    (draws,) = evaluate(program.functions["f"].ir, [logits, np.uint64(7)])
    assert draws.dtype == np.int64 and draws.shape == (6000,)
    freq = np.bincount(draws, minlength=3) / 6000
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.025)
