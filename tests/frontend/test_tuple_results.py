"""Tuple results (issue 11): `-> (loss: f32, acc: f32)`, `return a, b`, `a, b = g(...)`.

The first result is the one differentiated; the others come back beside it (JAX's
has_aux), as the mean over the task batch for a meta function. Expected values come
from the reference interpreter (metacc/interp.py) on the function's own IR and
from central finite differences of the first result, never from a derivative kernel.
"""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError, MetaccErrors
from metacc.frontend import load_source
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir
from metacc.runtime.optim import SGD
from metacc.runtime.train import train

SRC = """
params Net { w: f64[3, 2] = he_normal  b: f64[2] = zeros }
task Cls { support: (x: f64[s, 3], y: i64[s])  query: (x: f64[q, 3], y: i64[q]) }

fn logits(p: Net, x: f64[n, 3]) -> f64[n, 2] { return tanh(x @ p.w + p.b) }

fn eval(p: Net, x: f64[n, 3], y: i64[n]) -> (loss: f64, acc: f64, z: f64[n, 2]) {
    z = logits(p, x)
    return cross_entropy(z, y), mean(f64(argmax(z, axis=1) == y)), z
}

fn loss_only(p: Net, x: f64[n, 3], y: i64[n]) -> f64 {
    l, _, _ = eval(p, x, y)
    return l
}

fn passes_on(p: Net, x: f64[n, 3], y: i64[n]) -> (loss: f64, acc: f64, z: f64[n, 2]) {
    return eval(p, x, y)
}

meta maml(theta: Net, t: Cls, alpha: f64 = 0.3) -> (loss: f64, acc: f64) {
    p = theta
    repeat 2 {
        p = p - alpha * grad(loss_only(p, t.support.x, t.support.y), p)
    }
    l, a, _ = eval(p, t.query.x, t.query.y)
    return l, a
}
"""

EPS = 1e-6


@pytest.fixture(scope="module")
def mod(tmp_path_factory):
    return metacc.compile(SRC, cache_dir=tmp_path_factory.mktemp("tuple_cache"))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    theta = {"w": rng.normal(size=(3, 2)), "b": 0.1 * rng.normal(size=2)}
    b = 3
    tasks = {"support": {"x": rng.normal(size=(b, 4, 3)), "y": rng.integers(0, 2, size=(b, 4))},
             "query": {"x": rng.normal(size=(b, 6, 3)), "y": rng.integers(0, 2, size=(b, 6))}}
    return theta, tasks


def _flat_theta(theta):
    return [theta["w"], theta["b"]]


def _meta_outputs(mod, theta, tasks):
    """The interpreter's (loss, acc) of every task, from the meta function's own IR."""
    ir = mod.program.functions["maml"].ir
    per_task = []
    for i in range(tasks["query"]["x"].shape[0]):
        args = _flat_theta(theta) + [tasks["support"]["x"][i], tasks["support"]["y"][i],
                                     tasks["query"]["x"][i], tasks["query"]["y"][i], np.float64(0.3)]
        per_task.append([float(v) for v in evaluate(ir, args)])
    return np.array(per_task)


def _fd_grad(f, theta):
    out = {}
    for k, v in theta.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            plus = {kk: vv.copy() for kk, vv in theta.items()}
            minus = {kk: vv.copy() for kk, vv in theta.items()}
            plus[k][idx] += EPS
            minus[k][idx] -= EPS
            g[idx] = (f(plus) - f(minus)) / (2 * EPS)
        out[k] = g
    return out


# ---- the front end ----

def test_the_program_records_every_result_and_which_outputs_are_auxiliary(mod):
    f = mod.program.functions["eval"]
    assert [r.name for r in f.results] == ["loss", "acc", "z"]
    assert f.ir.n_aux == 2 and len(f.ir.outs) == 3
    m = mod.program.functions["maml"]
    assert [r.name for r in m.results] == ["loss", "acc"] and m.ir.n_aux == 1
    assert "-> (loss: f64, acc: f64)" in repr(mod.maml)


# ---- forward ----

def test_forward_returns_a_named_tuple_equal_to_the_interpreter(mod, data):
    theta, tasks = data
    x, y = tasks["query"]["x"][0], tasks["query"]["y"][0]
    out = mod.eval(theta, x, y)
    assert out._fields == ("loss", "acc", "z")
    want = evaluate(mod.program.functions["eval"].ir, _flat_theta(theta) + [x, y])
    for got, w in zip(out, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
    assert 0.0 <= out.acc <= 1.0 and out.acc * 6 == round(out.acc * 6)
    again = mod.passes_on(theta, x, y)      # `return g(...)` hands g's results on whole
    np.testing.assert_allclose(again.z, out.z, rtol=1e-12)


def test_meta_results_are_means_over_the_task_batch(mod, data):
    theta, tasks = data
    loss, acc = mod.maml(theta, tasks)
    per_task = _meta_outputs(mod, theta, tasks)
    np.testing.assert_allclose([loss, acc], per_task.mean(axis=0), rtol=1e-10)


# ---- derivatives: of the first result only ----

def test_meta_value_and_grad_returns_every_result_and_the_gradient_of_the_loss(mod, data):
    theta, tasks = data
    (loss, acc), g = mod.maml.value_and_grad(theta, tasks)
    per_task = _meta_outputs(mod, theta, tasks)
    np.testing.assert_allclose([loss, acc], per_task.mean(axis=0), rtol=1e-10)
    fd = _fd_grad(lambda th: _meta_outputs(mod, th, tasks)[:, 0].mean(), theta)
    for k in theta:
        np.testing.assert_allclose(g[k], fd[k], rtol=1e-5, atol=1e-8)
    assert set(mod.maml.grad(theta, tasks)) == {"w", "b"}


def test_fn_grad_vjp_jvp_and_hvp_differentiate_the_first_result(mod, data):
    theta, tasks = data
    x, y = tasks["query"]["x"][1], tasks["query"]["y"][1]
    loss = lambda th: float(evaluate(mod.program.functions["eval"].ir, _flat_theta(th) + [x, y])[0])  # noqa: E731
    fd = _fd_grad(loss, theta)
    out, g = mod.eval.value_and_grad(theta, x, y)
    assert out._fields == ("loss", "acc", "z") and out.z.shape == (6, 2)
    np.testing.assert_allclose(out.loss, loss(theta), rtol=1e-12)
    for k in theta:
        np.testing.assert_allclose(g[k], fd[k], rtol=1e-5, atol=1e-8)
    # vjp: a cotangent for the first result only; 2.5 times the gradient
    out_v, bars = mod.eval.vjp(theta, x, y, cotangent=2.5)
    np.testing.assert_allclose(out_v.acc, out.acc)
    for k in theta:
        np.testing.assert_allclose(bars[k], 2.5 * fd[k], rtol=1e-5, atol=1e-8)
    # jvp: the tangent of the first result, against a central difference along v
    rng = np.random.default_rng(5)
    v = {k: rng.normal(size=np.shape(a)) for k, a in theta.items()}
    out_j, t = mod.eval.jvp(theta, x, y, tangents=v)
    along = (loss({k: theta[k] + EPS * v[k] for k in theta}) - loss({k: theta[k] - EPS * v[k] for k in theta}))
    np.testing.assert_allclose(t, along / (2 * EPS), rtol=1e-6)
    np.testing.assert_allclose(out_j.z, out.z, rtol=1e-12)
    # hvp of the first result: symmetric, u.Hv = v.Hu
    u = {k: rng.normal(size=np.shape(a)) for k, a in theta.items()}
    hv, hu = mod.eval.hvp(theta, x, y, v=v), mod.eval.hvp(theta, x, y, v=u)
    uhv = sum(np.sum(u[k] * hv[k]) for k in theta)
    vhu = sum(np.sum(v[k] * hu[k]) for k in theta)
    np.testing.assert_allclose(uhv, vhu, rtol=1e-9)


def test_auxiliary_outputs_carry_no_derivative_in_the_kernel_ir(mod, data):
    """vjp takes one cotangent (the loss's); jvp returns one tangent; grad returns the
    results and then one gradient per field."""
    theta, tasks = data
    ir = mod.program.functions["eval"].ir
    x, y = tasks["query"]["x"][0], tasks["query"]["y"][0]
    vjp = kernel_ir(ir, "vjp", [0, 1])
    assert len(vjp.ins) == len(ir.ins) + 1 and len(vjp.outs) == 3 + 2
    jvp = kernel_ir(ir, "jvp", [0, 1])
    assert len(jvp.outs) == 3 + 1
    grad = kernel_ir(ir, "grad", [0, 1])
    assert len(grad.outs) == 3 + 2
    value = evaluate(grad, _flat_theta(theta) + [x, y])
    want = evaluate(ir, _flat_theta(theta) + [x, y])
    for a, b in zip(value[:3], want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_train_uses_the_first_result(mod, data):
    theta, tasks = data
    params, log = train(mod.maml.value_and_grad, theta, SGD(0.1), lambda: tasks, iterations=3, progress=False)
    assert len(log.losses) == 3 and all(np.isfinite(log.losses))
    np.testing.assert_allclose(log.losses[0], mod.maml(theta, tasks).loss, rtol=1e-12)


# ---- errors ----

PRELUDE = """params Net { w: f64[3, 2] = zeros }
task Cls { x: f64[n, 3]  y: i64[n] }
fn two(p: Net, x: f64[n, 3]) -> (a: f64, b: f64) { return sum(x @ p.w), 1.0 }
"""


def _error(body: str) -> MetaccError:
    with pytest.raises(MetaccError) as info:
        load_source(PRELUDE + body, "bad.meta")
    errs = info.value.errors if isinstance(info.value, MetaccErrors) else [info.value]
    assert len(errs) == 1, "\n".join(e.render() for e in errs)
    return errs[0]


@pytest.mark.parametrize("marked,message,hint", [
    ("fn f(x: f64) -> (a: f64, b: f64) { return $(x, x) }", "returned without parentheses: `return a, b`",
     "return x, x"),
    ("fn f(p: Net, x: f64[n, 3]) -> f64 { a = $two(p, x) return a }", "returns 2 results (a, b)",
     "a, b = two(p, x)"),
    ("fn f(p: Net, x: f64[n, 3]) -> f64 { return $two(p, x)[0] }", "destructure them first", "not indexed"),
    ("fn f(p: Net, x: f64[n, 3]) -> f64 { $a, b, c = two(p, x) return a }", "but 3 names are assigned",
     "name every result"),
    ("fn f(x: f64) -> $(a: f64) { return x }", "at least two results", "-> f64"),
    ("fn f(p: Net, x: f64[n, 3]) -> f64 { a, b = two(p, x) g = grad($a, p) return sum(g.w) }",
     "`a` is computed before this grad(...)", "one-result fn"),
    ("fn f(x: f64) -> (a: f64, $a: f64) { return x, x }", "named twice", None),
    ("fn f(x: f64) -> (a: f64, b: f64) { return $x }", "returns 2 results (a, b)", "return a, b"),
    ("fn f(x: f64) -> f64 { return $x, x }", "returns one value", "-> (loss: f32, acc: f32)"),
    ("fn f(x: f64) -> f64 { y = $(x, x) return x }", "a tuple (a, b) is not a value", "return a, b"),
    ("meta m(p: Net, t: Cls) -> (loss: f64, n: $i64) { return sum(t.x @ p.w), sum(t.y) }",
     "must be a float tensor", "cast it"),
    ("meta m(p: Net, t: Cls) -> (acc: $i64, loss: f64) { return sum(t.y), sum(t.x @ p.w) }",
     "first result `acc` of meta m must be a float scalar", "reduce the loss"),
])
def test_mistakes_are_located_errors_with_a_hint(marked, message, hint):
    err = _error(marked.replace("$", ""))
    assert message in err.message, err.render()
    assert (err.line, err.col) == (PRELUDE.count("\n") + 1, marked.index("$") + 1), err.render()
    if hint is not None:
        assert err.hint is not None and hint in err.hint, err.render()


def test_unnamed_results_are_a_named_syntax_error():
    err = _error("fn f(x: f64) -> (f64, f64) { return x, x }")
    assert "needs a name" in err.message and "(loss: f32, acc: f32)" in err.hint


def test_meta_vjp_jvp_hvp_kernels_differentiate_the_loss(mod, data):
    """The meta's per-task kernels (the interpreter runs one task): vjp and jvp of the loss
    against central differences, hvp symmetric; the accuracy is passed through untouched."""
    theta, tasks = data
    ir = mod.program.functions["maml"].ir
    task = [tasks["support"]["x"][0], tasks["support"]["y"][0], tasks["query"]["x"][0], tasks["query"]["y"][0],
            np.float64(0.3)]
    args = _flat_theta(theta) + task
    rng = np.random.default_rng(9)
    v = [rng.normal(size=a.shape) for a in _flat_theta(theta)]
    u = [rng.normal(size=a.shape) for a in _flat_theta(theta)]
    at = lambda s: evaluate(ir, [theta["w"] + s * v[0], theta["b"] + s * v[1]] + task)  # noqa: E731
    fd = (at(EPS)[0] - at(-EPS)[0]) / (2 * EPS)
    loss, acc, t = evaluate(kernel_ir(ir, "jvp", [0, 1]), args + v)
    np.testing.assert_allclose(t, fd, rtol=1e-6)
    np.testing.assert_allclose([loss, acc], at(0.0), rtol=1e-12)
    loss, acc, w_bar, b_bar = evaluate(kernel_ir(ir, "vjp", [0, 1]), args + [np.float64(1.0)])
    np.testing.assert_allclose(np.sum(w_bar * v[0]) + np.sum(b_bar * v[1]), fd, rtol=1e-6)
    hvp = kernel_ir(ir, "hvp", [0, 1])
    hv, hu = evaluate(hvp, args + v)[2:], evaluate(hvp, args + u)[2:]
    np.testing.assert_allclose(sum(np.sum(a * b) for a, b in zip(u, hv)),
                               sum(np.sum(a * b) for a, b in zip(v, hu)), rtol=1e-9)


def test_a_non_finite_auxiliary_result_does_not_poison_the_gradient():
    prog = load_source("params Net { w: f64[3, 2] = zeros }\n"
                       "fn f(p: Net, x: f64[n, 3]) -> (loss: f64, bad: f64) {\n"
                       "    return sum(x @ p.w), log(sum(x) * 0.0 - 1.0)\n}\n", "nan_aux.meta")
    ir = prog.functions["f"].ir
    x = np.arange(6.0).reshape(2, 3)
    loss, bad, g = evaluate(kernel_ir(ir, "grad", [0]), [np.ones((3, 2)), x])
    assert np.isnan(bad) and np.isfinite(loss)
    np.testing.assert_allclose(g, np.repeat(x.sum(axis=0)[:, None], 2, axis=1))
    loss, bad, w_bar = evaluate(kernel_ir(ir, "vjp", [0]), [np.ones((3, 2)), x, np.float64(1.0)])
    assert np.isnan(bad) and np.all(np.isfinite(w_bar))
