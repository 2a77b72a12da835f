"""Derivative requests the program cannot honour are user errors with a place and a hint."""
from __future__ import annotations

import pytest

from metacc.errors import MetaccError
from metacc.frontend import load_source
from metacc.pipeline import kernel_ir

SRC = '''
params W { w: f64[3] = zeros }
task T { x: f64[3] }
fn hard_loss(p: W, x: f64[3]) -> f64 {
    return sum(step(x * p.w))
}
meta through_step(p: W, t: T) -> f64 {
    g = grad(hard_loss(p, t.x), p)
    return sum(g.w * g.w)
}
meta through_where(p: W, t: T) -> f64 {
    return sum(where(t.x * p.w > 0, 1.0, 0.0))
}
meta detached(p: W, t: T) -> f64 {
    return sum(stop_gradient(p.w) * t.x)
}
meta fine(p: W, t: T) -> f64 {
    return sum(straight_through(step(t.x * p.w), sigmoid(t.x * p.w)))
}
'''


@pytest.fixture(scope="module")
def prog():
    return load_source(SRC, "nodiff.meta")


def test_grad_through_a_comparison_names_the_construct_and_line(prog):
    with pytest.raises(MetaccError) as err:
        kernel_ir(prog.functions["through_step"].ir, "forward")
    e = err.value
    assert (e.line, e.col) == (8, 9)
    text = str(e)
    assert "identically zero" in text and "'p.w'" in text
    assert "comparison '>' (nodiff.meta:5:16)" in text
    assert "straight_through" in e.hint


def test_meta_gradient_through_where_condition(prog):
    with pytest.raises(MetaccError) as err:
        kernel_ir(prog.functions["through_where"].ir, "meta_grad", [0])
    assert "comparison '>' (nodiff.meta:12:22)" in str(err.value)


def test_meta_gradient_through_stop_gradient(prog):
    with pytest.raises(MetaccError) as err:
        kernel_ir(prog.functions["detached"].ir, "meta_grad", [0])
    assert "cut here by stop_gradient (nodiff.meta:15:16)" in str(err.value)


def test_straight_through_is_fine(prog):
    g = kernel_ir(prog.functions["fine"].ir, "meta_grad", [0])
    assert len(g.outs) == 2
