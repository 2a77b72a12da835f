"""A meta program whose value has no derivative (issue 11): `metacc check` and
`metacc.compile` treat it the same. It checks (with a note), its forward call
runs, and value_and_grad refuses with a MetaccError naming the function and
its value. And argmax along an axis, the accuracy such a program computes."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.cli import main
from metacc.errors import MetaccError
from metacc.frontend import load_source
from metacc.interp import evaluate

SRC = """params Net { w: f64[3, 2] = he_normal  b: f64[2] = zeros }
task Cls { support: (x: f64[s, 3], y: i64[s])  query: (x: f64[q, 3], y: i64[q]) }
fn logits(p: Net, x: f64[n, 3]) -> f64[n, 2] { return x @ p.w + p.b }
fn ce(p: Net, x: f64[n, 3], y: i64[n]) -> f64 { return cross_entropy(logits(p, x), y) }
meta acc_only(theta: Net, t: Cls, alpha: f64 = 0.3) -> f64 {
    p = theta
    repeat 2 { p = p - alpha * grad(ce(p, t.support.x, t.support.y), p) }
    return mean(f64(argmax(logits(p, t.query.x), axis=1) == t.query.y))
}
fn argmaxes(x: f64[4, 3], c: f64[2, 3, 4]) -> (a0: i64[3], a1: i64[4], last: i64[2, 3], mid: i64[2, 4]) {
    return argmax(x, axis=0), argmax(x, axis=1), argmax(c, axis=-1), argmax(c, axis=1)
}
"""


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("forward_only") / "acc.meta"
    p.write_text(SRC)
    return p


@pytest.fixture(scope="module")
def mod(path, tmp_path_factory):
    return metacc.compile(path, cache_dir=tmp_path_factory.mktemp("forward_only_cache"))


def _tasks(b=3):
    rng = np.random.default_rng(7)
    return {"support": {"x": rng.normal(size=(b, 4, 3)), "y": rng.integers(0, 2, size=(b, 4))},
            "query": {"x": rng.normal(size=(b, 5, 3)), "y": rng.integers(0, 2, size=(b, 5))}}


def test_check_accepts_it_with_a_note(path, capsys):
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert f"note: {path}:5:6: meta acc_only: its value has no derivative" in out
    assert f"cut by argmax at {path}:8:21" in out and "value_and_grad and grad refuse it" in out


def test_compile_evaluates_it_and_value_and_grad_says_why_not(mod):
    theta, tasks = mod.Net.init(seed=1), _tasks()
    acc = mod.acc_only(theta, tasks)
    ir = mod.program.functions["acc_only"].ir
    per_task = [evaluate(ir, [theta["w"], theta["b"], tasks["support"]["x"][i], tasks["support"]["y"][i],
                              tasks["query"]["x"][i], tasks["query"]["y"][i], np.float64(0.3)])[0]
                for i in range(3)]
    np.testing.assert_allclose(acc, np.mean(per_task), rtol=1e-12)
    assert acc * 15 == pytest.approx(round(acc * 15))
    with pytest.raises(MetaccError) as info:
        mod.acc_only.value_and_grad(theta, tasks)
    text = str(info.value)
    assert "gradient of the value of acc_only" in text and "identically zero" in text
    assert "argmax" in text and "acc_only itself can still be called" in text


def test_a_cut_by_stop_gradient_is_treated_alike_by_check_and_compile(tmp_path, capsys):
    """Almost always a mistake, but a program compile accepts: check accepts it too and warns
    with the message value_and_grad gives; the forward call runs; value_and_grad refuses."""
    bad = tmp_path / "cut.meta"
    bad.write_text("params W { w: f64[3] = zeros }\ntask T { x: f64[3] }\n"
                   "meta m(p: W, t: T) -> f64 {\n    return sum(stop_gradient(p.w) * t.x)\n}\n")
    assert main(["check", str(bad)]) == 0
    err = capsys.readouterr().err
    assert "cut.meta:3:6: warning:" in err and "identically zero" in err
    assert "m can still be called" in err
    mod = metacc.compile(str(bad), dtype="f64")
    w, x = np.array([1.0, 2.0, 3.0]), np.array([[1.0, 0.5, 2.0], [0.0, 1.0, 1.0]])
    assert float(mod.m({"w": w}, {"x": x})) == pytest.approx(np.mean(x @ w), rel=1e-12)
    with pytest.raises(MetaccError, match="identically zero"):
        mod.m.value_and_grad({"w": w}, {"x": x})


def test_argmax_along_each_axis_matches_numpy(mod):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    x[1, 2] = x[3, 2] = 10.0          # a tie: the first index wins, as in NumPy
    c = rng.normal(size=(2, 3, 4))
    out = mod.argmaxes(x, c)
    want = (np.argmax(x, axis=0), np.argmax(x, axis=1), np.argmax(c, axis=-1), np.argmax(c, axis=1))
    for got, w in zip(out, want):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, w)
    assert out.a0[2] == 1
    ir = load_source(SRC, "acc.meta").functions["argmaxes"].ir
    for got, w in zip(evaluate(ir, [x, c]), want):
        np.testing.assert_array_equal(got, w)
