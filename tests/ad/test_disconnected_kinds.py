"""The disconnected-field rule (issue 9, metacc/disconnected.py) in the kernel kinds
tests/ad/test_disconnected.py does not reach: the hvp and meta kernels when nothing
connects (an error), a meta's own field its loss does not use (a warning and a zero),
and auxiliary results (a tuple result's results after the first), which never count
as a use: a field only they read is disconnected from the differentiated value."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from metacc.ad.activity import DisconnectedWarning
from metacc.errors import MetaccError
from metacc.frontend import load_source
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

SRC = """params Net {
    w: f64[3, 2] = he_normal
    temp: f64 = const(1.5)
}
task T { x: f64[k, 3]  y: f64[k, 2] }
fn nothing(p: Net, x: f64[n, 3]) -> f64 { return sum(x) + sum(stop_gradient(p.w)) }
fn scaled(p: Net, x: f64[n, 3], y: f64[n, 2]) -> (loss: f64, scale: f64) {
    return mean((x @ p.w - y) ^ 2), p.temp * 2.0
}
fn aux_only(p: Net, x: f64[n, 3]) -> (loss: f64, scale: f64) {
    return sum(x), p.temp * sum(x @ p.w)
}
meta unused_temp(theta: Net, t: T) -> f64 { return mean((t.x @ theta.w - t.y) ^ 2) }
meta cut(theta: Net, t: T) -> f64 { return sum(stop_gradient(theta.w)) * stop_gradient(theta.temp) + sum(t.x) }
"""

rng = np.random.default_rng(0)
W, TEMP = rng.normal(size=(3, 2)), np.float64(1.5)
X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))


@pytest.fixture(scope="module")
def prog():
    return load_source(SRC, "kinds.meta")


def _caught(fn):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", DisconnectedWarning)
        out = fn()
    return out, [w.message for w in got if issubclass(w.category, DisconnectedWarning)]


@pytest.mark.parametrize("fn,kind", [("nothing", "hvp"), ("cut", "meta_grad"), ("cut", "hvp"),
                                     ("aux_only", "grad"), ("aux_only", "vjp"), ("aux_only", "jvp"),
                                     ("aux_only", "hvp")])
def test_nothing_connected_is_an_error_in_every_kind(prog, fn, kind):
    with pytest.raises(MetaccError, match="identically zero") as err:
        kernel_ir(prog.functions[fn].ir, kind, [0, 1])
    assert "'theta.w'" in str(err.value) or "'p.w'" in str(err.value)


def test_a_meta_field_its_loss_does_not_use_warns_and_gets_a_zero(prog):
    ir = prog.functions["unused_temp"].ir
    (value, d_w, d_temp), got = _caught(lambda: evaluate(kernel_ir(ir, "meta_grad", [0, 1]), [W, TEMP, X, Y]))
    assert [w.field for w in got] == ["theta.temp"]
    assert d_temp == 0.0
    np.testing.assert_allclose(d_w, 2 * X.T @ (X @ W - Y) / Y.size, rtol=1e-12)


@pytest.mark.parametrize("kind", ["grad", "vjp", "jvp", "hvp"])
def test_a_field_only_an_auxiliary_result_reads_is_disconnected(prog, kind):
    ir = prog.functions["scaled"].ir
    extra = {"grad": [], "vjp": [np.float64(1.0)], "jvp": [np.ones((3, 2)), np.float64(1.0)],
             "hvp": [np.ones((3, 2)), np.float64(1.0)]}[kind]
    out, got = _caught(lambda: evaluate(kernel_ir(ir, kind, [0, 1]), [W, TEMP, X, Y] + extra))
    assert [w.field for w in got] == ["p.temp"], [str(w) for w in got]
    d_w = 2 * X.T @ (X @ W - Y) / Y.size
    if kind == "grad":                       # loss, scale, d_w, d_temp
        np.testing.assert_allclose(out[1], 2 * TEMP)
        np.testing.assert_allclose(out[2], d_w, rtol=1e-12)
        assert out[3] == 0.0
    elif kind == "vjp":                      # loss, scale, w_bar, temp_bar
        np.testing.assert_allclose(out[2], d_w, rtol=1e-12)
        assert out[3] == 0.0
    elif kind == "jvp":                      # loss, scale, loss_dot (of the loss only)
        assert len(out) == 3
        np.testing.assert_allclose(out[2], np.sum(d_w), rtol=1e-12)
    else:                                    # d_w, d_temp, hv_w, hv_temp
        assert out[1] == 0.0 and out[3] == 0.0
