"""Class labels outside 0..C-1 are errors that name the argument, the label, its
index and the valid range; they never drop out of the loss (issue 9: 3 classes,
labels [0, 7] gave 0.549 instead of log 3). The compiled kernels check them
(metacc.labels), and so does the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.interp import evaluate

SOURCE = """
params Clf {
    w: f64[2, 3] = zeros
    b: f64[3] = zeros
}

task Cls {
    support: (x: f64[k, 2], y: i64[k])
    query:   (x: f64[q, 2], y: i64[q])
}

fn ce(p: Clf, x: f64[n, 2], y: i64[n]) -> f64 {
    return cross_entropy(x @ p.w + p.b, y)
}

fn shifted(z: f64[n, 3], y: i64[n]) -> f64 {
    return cross_entropy(z, i64(f64(y) + 1.0))
}

meta adapt(theta: Clf, t: Cls, alpha: f64 = 0.5, K: int = 2) -> f64 {
    p = theta
    repeat K {
        p = p - alpha * grad(ce(p, t.support.x, t.support.y), p)
    }
    return ce(p, t.query.x, t.query.y)
}

meta shifted_meta(theta: Clf, t: Cls) -> f64 {
    return cross_entropy(t.query.x @ theta.w + theta.b, i64(f64(t.query.y) + 1.0))
}

meta anchored(theta: Clf, t: Cls, z: f64[m, 3], y0: i64[m]) -> f64 {
    return ce(theta, t.query.x, t.query.y) + cross_entropy(z, y0)
}
"""


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(SOURCE.splitlines(), 1) if text in line)


CE_LINE, SHIFTED_LINE = line_of("cross_entropy(x @ p.w"), line_of("cross_entropy(z,")


@pytest.fixture(scope="module")
def mod(cache_dir):
    return metacc.compile(SOURCE, cache_dir=cache_dir)


@pytest.fixture()
def tasks():
    rng = np.random.default_rng(3)
    B = 4
    return {"support": {"x": rng.normal(size=(B, 5, 2)), "y": rng.integers(0, 3, (B, 5))},
            "query": {"x": rng.normal(size=(B, 6, 2)), "y": rng.integers(0, 3, (B, 6))}}


def err(fn, *args, **kw) -> MetaccError:
    with pytest.raises(MetaccError) as info:
        fn(*args, **kw)
    return info.value


def test_in_range_labels_give_the_cross_entropy(mod):
    # zero weights: every class has probability 1/3, whatever the labels
    assert mod.ce(mod.Clf.init(), np.zeros((2, 2)), np.array([0, 2])) == pytest.approx(np.log(3), rel=1e-12)


@pytest.mark.parametrize("bad", [7, 3, -1])
def test_out_of_range_label_is_named(mod, bad):
    e = err(mod.ce, mod.Clf.init(), np.zeros((2, 2)), np.array([0, bad]))
    assert f"argument 'y' holds label {bad} at index (1,)" in e.message
    assert "3 classes" in e.message and "0..2" in e.message
    assert e.span is not None and e.span.line == CE_LINE and "cross_entropy" in e.span.excerpt()
    assert e.found == "1 of 2 labels out of range"


def test_inner_loop_labels_of_a_meta_function(mod, tasks):
    theta = mod.Clf.init()
    mod.adapt.value_and_grad(theta, tasks)               # fine as drawn
    tasks["support"]["y"][2, 3] = 3
    e = err(mod.adapt.value_and_grad, theta, tasks)
    assert "argument 't.support.y' holds label 3 at index (2, 3)" in e.message and "task axis" in e.message
    tasks["support"]["y"][2, 3] = 0
    tasks["query"]["y"][1, 0] = -5
    tasks["query"]["y"][3, 1] = 9
    e = err(mod.adapt.value_and_grad, theta, tasks)
    assert "argument 't.query.y' holds label -5 at index (1, 0)" in e.message
    assert e.found == "2 of 24 labels out of range"


def test_computed_labels_are_checked_too(mod):
    z = np.zeros((2, 3))
    assert mod.shifted(z, np.array([0, 1])) == pytest.approx(np.log(3), rel=1e-12)
    e = err(mod.shifted, z, np.array([0, 2]))
    assert "label 3 is out of range: 3 classes" in e.message and "computed in the program" in e.message
    assert e.span is not None and e.span.line == SHIFTED_LINE


def test_float32_module_checks_labels(cache_dir):
    m = metacc.compile(SOURCE, dtype="f32", cache_dir=cache_dir)
    x = np.zeros((3, 2), np.float32)
    assert m.ce(m.Clf.init(), x, np.array([0, 1, 2])) == pytest.approx(np.log(3), rel=1e-6)
    e = err(m.ce, m.Clf.init(), x, np.array([0, 1, 2 ** 40]))
    assert f"holds label {2 ** 40} at index (2,)" in e.message


def test_interpreter_raises_instead_of_a_zero_row(mod):
    fn = mod.program.functions["ce"].ir
    args = [np.zeros((2, 3)), np.zeros(3), np.zeros((2, 2))]
    out = evaluate(fn, args + [np.array([0, 2])])[0]
    assert out == pytest.approx(np.log(3), rel=1e-12)
    for bad in (7, -1):
        e = err(evaluate, fn, args + [np.array([0, bad])])
        assert f"label {bad} at index (1,) is out of range: 3 classes" in e.message
        assert e.span is not None and e.span.line == CE_LINE


def test_labels_shared_by_every_task(mod, tasks):
    theta, z = mod.Clf.init(), np.zeros((2, 3))
    assert mod.anchored(theta, tasks, z, np.array([1, 2])) == pytest.approx(2 * np.log(3), rel=1e-12)
    e = err(mod.anchored, theta, tasks, z, np.array([1, 4]))
    assert "argument 'y0' holds label 4 at index (1,), out of range" in e.message   # no task axis here


def test_computed_labels_name_the_task(mod, tasks):
    tasks["query"]["y"][:] = 0
    tasks["query"]["y"][2, 4] = 2                        # becomes 3 inside the program
    e = err(mod.shifted_meta, mod.Clf.init(), tasks)
    assert "label 3 (in task 2 of the batch, counting from 0) is out of range" in e.message
    assert "computed in the program" in e.message


def test_loop_constant_labels_are_checked_once_outside_the_loop(mod):
    from metacc.passes.inline import inline_calls
    from metacc.convergence import hoist
    k = mod.adapt.kernel("grad", mod.adapt._wrt(None))
    base = inline_calls(k.ir())
    fn, descs = hoist(base)
    # support and query labels (kernel inputs 3 and 5), each checked once although the
    # support labels are used in the K-step forward loop and again in its reverse
    assert sorted((d["input"], d["side"]) for d in descs) == [(3, "above"), (3, "below"), (5, "above"), (5, "below")]

    def carries(f):
        return [e.params["n_carry"] for e in f.eqns if e.prim == "scan"]
    assert carries(fn) == carries(base)          # no per-step figure carried through the loops
