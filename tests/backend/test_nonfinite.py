"""No silent NaN, inf or zero (issue 9, numerics).

- A task whose value is NaN or inf makes its derivatives non-finite
  (metacc.ad.poison), so it cannot vanish from a batch mean: compiled kernels
  and the reference interpreter alike, for grad, meta, vjp, jvp and hvp.
- check_finite=True / METACC_CHECK_FINITE=1 raises NonFiniteError naming the
  first equation that made a non-finite value, its .meta line and the task.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.frontend import load_source
from metacc.interp import evaluate
from metacc.nonfinite import ENV, NonFiniteError
from metacc.pipeline import kernel_ir
from metacc.runtime.tasks import sinusoid_tasks

P1 = Path(__file__).resolve().parents[2] / "examples" / "sinusoid_maml.meta"

# relu's derivative mask `x > 0` is False at NaN and tanh' is exactly 0 when
# saturated: before the fix the gradient here was finite (w) or exactly 0 (b)
# while the value was NaN
MASKED = """
params P {
    b: f64[3] = zeros
    w: f64[3] = zeros
}
task T { support: (x: f64[n, 3]) }
fn f(p: P, x: f64[n, 3]) -> f64 {
    return mean(relu(x + p.b) + tanh(p.w * 100.0))
}
meta m(p: P, t: T) -> f64 {
    return f(p, t.support.x)
}
"""


def _finite(tree) -> bool:
    leaves = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else [tree]
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in leaves)


@pytest.fixture(scope="module")
def masked():
    return metacc.compile(MASKED)


P = {"b": np.zeros(3), "w": np.ones(3)}
ONES = {"b": np.ones(3), "w": np.ones(3)}


def _x(bad=np.nan):
    x = np.ones((4, 3))
    x[0, 0] = bad
    return x


def test_interpreter_masked_gradient_of_a_nan_value_is_nan():
    prog = load_source(MASKED, "masked.meta")
    ir = prog.functions["f"].ir
    args = [P["b"], P["w"], _x()]
    for kind, extra, n_primal in [("grad", [], 1), ("vjp", [np.float64(1.0)], 1),
                                  ("jvp", [ONES["b"], ONES["w"]], 1), ("hvp", [ONES["b"], ONES["w"]], 0)]:
        outs = evaluate(kernel_ir(ir, kind, [0, 1]), args + extra)
        if n_primal:
            assert np.isnan(outs[0]), kind
        for d in outs[n_primal:]:
            assert not np.isfinite(d).any(), (kind, d)


def test_interpreter_inf_value_poisons_a_finite_gradient():
    prog = load_source(MASKED, "masked.meta")
    value, db, dw = evaluate(kernel_ir(prog.functions["f"].ir, "grad", [0, 1]), [P["b"], P["w"], _x(np.inf)])
    assert value == np.inf
    # mathematically d/db is finite here (1/12 where x = inf): the rule makes it NaN
    assert np.isnan(db).all() and np.isnan(dw).all()


def test_poison_leaves_finite_gradients_bit_identical():
    prog = load_source(MASKED, "masked.meta")
    ir = prog.functions["f"].ir
    x = np.random.default_rng(0).normal(size=(4, 3))
    v, db, dw = evaluate(kernel_ir(ir, "grad", [0, 1]), [P["b"], P["w"], x])
    assert np.array_equal(db, (x + P["b"] > 0).sum(axis=0) / 12.0)
    assert np.array_equal(dw, (1 - np.tanh(100.0 * P["w"]) ** 2) * 100.0 / 4.0)


def test_compiled_masked_gradient_of_a_nan_task(masked):
    v, g = masked.f.value_and_grad(P, _x())
    assert np.isnan(v) and not _finite(g)
    xs = np.ones((3, 4, 3))
    xs[1, 0, 0] = np.nan                      # one NaN task among three
    v, g = masked.m.value_and_grad(P, {"support": {"x": xs}})
    assert np.isnan(v) and np.isnan(g["b"]).all() and np.isnan(g["w"]).all()
    v, g = masked.m.value_and_grad(P, {"support": {"x": np.ones((3, 4, 3))}})
    assert np.isfinite(v) and _finite(g)


@pytest.fixture(scope="module")
def p1():
    return metacc.compile(P1)


@pytest.fixture(scope="module")
def p1_checked():
    return metacc.compile(P1, check_finite=True)


def _tasks():
    return sinusoid_tasks(np.random.default_rng(0), 3, k=10)


def test_p1_nan_task_and_divergence_are_not_finite(p1):
    theta = p1.Net.init(seed=0)
    tasks = _tasks()
    v, g = p1.maml.value_and_grad(theta, tasks)
    assert np.isfinite(v) and _finite(g)
    tasks["support"]["x"][1, 2, 0] = np.nan
    v, g = p1.maml.value_and_grad(theta, tasks)
    assert not np.isfinite(v) and all(not np.isfinite(x).any() for x in g.values())
    v, g = p1.maml.value_and_grad(theta, _tasks(), alpha=5.0)       # the inner loop diverges
    assert not np.isfinite(v) and all(not np.isfinite(x).any() for x in g.values())


def test_p1_interpreter_agrees_on_the_nan_task(p1):
    fn = p1.maml.fn
    ir = kernel_ir(fn.ir, "meta_grad", list(range(6)))
    theta = p1.Net.init(seed=0)
    tasks = _tasks()
    tasks["support"]["y"][1, 0, 0] = np.nan
    leaves = [theta[k] for k in ("w1", "b1", "w2", "b2", "w3", "b3")]
    per_task = []
    for j in range(3):
        task = [tasks[s][f][j] for s in ("support", "query") for f in ("x", "y")]
        per_task.append(evaluate(ir, leaves + task + [np.float32(0.01)]))
    assert all(_finite(o) for j, o in enumerate(per_task) if j != 1)
    assert np.isnan(per_task[1][0]) and all(np.isnan(d).all() for d in per_task[1][1:])
    # alpha = 5: the inner loop diverges, value and every gradient entry non-finite
    task = [_tasks()[s][f][0] for s in ("support", "query") for f in ("x", "y")]
    value, *grads = evaluate(ir, leaves + task + [np.float32(5.0)])
    assert not np.isfinite(value) and all(not np.isfinite(d).any() for d in grads)


def test_check_finite_names_the_first_bad_equation(tmp_path, p1_checked):
    src = tmp_path / "logzero.meta"
    src.write_text("params P { w: f32[3] = const(1.0) }\ntask T { x: f32[k, 3] }\n"
                   "fn f(p: P, x: f32[n, 3]) -> f32 {\n    h = x * p.w\n    return mean(log(h * h))\n}\n"
                   "meta m(p: P, t: T) -> f32 {\n    return f(p, t.x)\n}\n")
    mod = metacc.compile(src, check_finite=True)
    x = np.ones((3, 4, 3), np.float32)
    assert np.isfinite(mod.m(mod.P.init(), {"x": x}))
    x[2, 1, 1] = 0.0
    with pytest.raises(NonFiniteError) as err:
        mod.m(mod.P.init(), {"x": x})
    e = err.value
    assert isinstance(e, metacc.MetaccError) and isinstance(e, FloatingPointError)
    assert e.task == 2 and e.prim == "log" and e.where == f"{src}:5:17"
    text = str(e)
    assert "task 2 of the batch of 3" in text and "return mean(log(h * h))" in text and "-inf" in text
    assert "log(x + eps)" in text


def test_check_finite_blames_the_path_to_the_result_not_a_discarded_nan(tmp_path):
    # log(x) is NaN / -inf where x <= 0, but `where` discards those: the NaN of the
    # result comes from sqrt of a negative number two lines later
    src = tmp_path / "where.meta"
    src.write_text("fn f(x: f32[n], s: f32) -> f32 {\n    l = where(x > 0.0, log(x), 0.0)\n"
                   "    r = sqrt(s - 2.0)\n    return mean(l) + r\n}\n")
    mod = metacc.compile(src, check_finite=True)
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    assert np.isfinite(mod.f(x, np.float32(3.0)))
    with pytest.raises(NonFiniteError) as err:
        mod.f(x, np.float32(1.0))
    assert err.value.prim == "sqrt" and err.value.where == f"{src}:3:9" and err.value.task is None
    assert "r = sqrt(s - 2.0)" in str(err.value)


def test_check_finite_on_p1(p1_checked):
    theta = p1_checked.Net.init(seed=0)
    v, _ = p1_checked.maml.value_and_grad(theta, _tasks())
    assert np.isfinite(v)
    tasks = _tasks()
    tasks["query"]["y"][2, 4, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"task 2 .*input 't.query.y' is already inf \(first at index \(4, 0\)\)"):
        p1_checked.maml.value_and_grad(theta, tasks)
    with pytest.raises(NonFiniteError) as err:
        p1_checked.maml.value_and_grad(theta, _tasks(), alpha=5.0)
    e = err.value
    assert e.task == 0 and e.where.startswith(str(P1) + ":") and e.span is not None
    assert "iteration" in str(e) and "f32 holds up to 3.4e38" in str(e)


def test_check_finite_follows_the_environment(monkeypatch, p1):
    monkeypatch.setenv(ENV, "1")
    assert metacc.compile(P1).check_finite
    monkeypatch.setenv(ENV, "0")
    assert not metacc.compile(P1).check_finite
    assert metacc.compile(P1, check_finite=True).check_finite
    with pytest.raises(metacc.MetaccError, match="check_finite must be True, False or None"):
        metacc.compile(P1, check_finite="yes")
    # off: a diverged call returns its NaN without raising
    v, _ = p1.maml.value_and_grad(p1.Net.init(seed=0), _tasks(), alpha=5.0)
    assert not np.isfinite(v)
