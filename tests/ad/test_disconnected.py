"""One rule for differentiated inputs the output does not use (issue 9 / issue 11):
some reach it -> a DisconnectedWarning naming each one that does not, and exact
zeros; none reaches it -> a MetaccError. The same for grad(...) expressions and
grad, meta, vjp, jvp and hvp kernels."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import metacc
from metacc.ad.activity import DisconnectedWarning
from metacc.cli import main
from metacc.errors import MetaccError
from metacc.frontend import load_source
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

SRC = """params Net {
    w: f64[3, 2] = he_normal
    temp: f64 = const(1.5)
}
task T {
    support: (x: f64[k, 3], y: f64[k, 2])
    query:   (x: f64[q, 3], y: f64[q, 2])
}
fn loss(p: Net, x: f64[n, 3], y: f64[n, 2]) -> f64 {
    return mean((x @ p.w - y) ^ 2)
}
fn qloss(p: Net, x: f64[n, 3], y: f64[n, 2]) -> f64 {
    return mean((p.temp * (x @ p.w) - y) ^ 2)
}
fn scores(p: Net, x: f64[n, 3]) -> f64[n, 2] {
    return x @ p.w
}
fn nothing(p: Net, x: f64[n, 3]) -> f64[n, 2] {
    return (x * 2.0) @ stop_gradient(p.w)
}
meta m(theta: Net, t: T) -> f64 {
    p = theta - 0.1 * grad(loss(theta, t.support.x, t.support.y), theta)
    return qloss(p, t.query.x, t.query.y)
}
"""


@pytest.fixture(scope="module")
def prog():
    return load_source(SRC, "temp.meta")


RNG = np.random.default_rng(0)
W, X, Y = RNG.normal(size=(3, 2)), RNG.normal(size=(5, 3)), RNG.normal(size=(5, 2))
TEMP = np.float64(1.5)


def _caught(fn):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        out = fn()
    return out, [w.message for w in got if issubclass(w.category, DisconnectedWarning)]


@pytest.mark.parametrize("kind,extra", [("grad", []), ("hvp", [np.ones((3, 2)), np.float64(1.0)])])
def test_unused_field_warns_and_gets_exact_zeros(prog, kind, extra):
    ir = prog.functions["loss"].ir
    out, got = _caught(lambda: evaluate(kernel_ir(ir, kind, [0, 1]), [W, TEMP, X, Y] + extra))
    assert len(got) == 1 and got[0].field == "p.temp" and got[0].where == "temp.meta:9:4"
    assert "'p.temp'" in str(got[0]) and "returned as zeros" in str(got[0])
    derivs = out[1:] if kind == "grad" else out
    assert derivs[1] == 0.0 and (kind == "grad" or derivs[3] == 0.0)
    assert np.abs(derivs[0]).sum() > 0


def test_vjp_and_jvp_follow_the_same_rule(prog):
    ir = prog.functions["scores"].ir
    (y, w_bar, t_bar), got = _caught(lambda: evaluate(kernel_ir(ir, "vjp", [0, 1]), [W, TEMP, X, np.ones((5, 2))]))
    assert [w.field for w in got] == ["p.temp"] and "derivative of the outputs of scores" in str(got[0])
    assert t_bar == 0.0 and np.allclose(w_bar, X.T @ np.ones((5, 2)))
    (y, y_dot), got = _caught(lambda: evaluate(kernel_ir(ir, "jvp", [0, 1]), [W, TEMP, X, np.ones((3, 2)), 7.0]))
    assert [w.field for w in got] == ["p.temp"]
    assert np.allclose(y_dot, X @ np.ones((3, 2)))       # the temperature's tangent adds nothing


@pytest.mark.parametrize("kind", ["vjp", "jvp", "grad"])
def test_no_differentiated_input_reaching_the_output_stays_an_error(prog, kind):
    fn = prog.functions["nothing" if kind != "grad" else "loss"].ir
    wrt = [0, 1] if kind != "grad" else [1]
    with pytest.raises(MetaccError, match="identically zero") as err:
        kernel_ir(fn, kind, wrt)
    assert "'p.w'" in str(err.value) or "'p.temp'" in str(err.value)


def test_inner_grad_of_a_query_only_temperature(prog):
    """The issue-11 case: a temperature used only by the query loss, in the network's group."""
    ir = prog.functions["m"].ir
    g, got = _caught(lambda: kernel_ir(ir, "meta_grad", [0, 1]))
    assert [(w.field, w.where) for w in got] == [("theta.temp", "temp.meta:22:23")]
    assert "this grad(...) expression" in str(got[0])
    value, d_w, d_temp = evaluate(g, [W, TEMP, X, Y, X, Y])
    # d/dtemp of the query loss at the adapted weights (the inner step leaves temp alone)
    p_w = W - 0.1 * (2 * X.T @ (X @ W - Y) / Y.size)
    pred = X @ p_w
    assert np.isclose(d_temp, np.mean(2 * (TEMP * pred - Y) * pred), rtol=1e-12)


def test_compiled_kernels_warn_also_when_loaded_from_the_cache(tmp_path):
    src = tmp_path / "temp.meta"
    src.write_text(SRC)
    task = {"support": {"x": X[None], "y": Y[None]}, "query": {"x": X[None], "y": Y[None]}}
    for attempt in range(2):            # built, then a new module loading it from the disk cache
        mod = metacc.compile(src, cache_dir=tmp_path / "cache")
        with pytest.warns(DisconnectedWarning, match=r"temp.meta:9:4: gradient of the value of loss with "
                                                     r"respect to 'p.temp' is identically zero"):
            v, g = mod.loss.value_and_grad({"w": W, "temp": TEMP}, X, Y)
        assert g["temp"] == 0.0 and np.abs(g["w"]).sum() > 0
        assert mod.loss.kernel("grad", mod.loss._wrt(None))._fresh == (attempt == 0)
        with pytest.warns(DisconnectedWarning, match="theta.temp"):
            v, g = mod.m.value_and_grad({"w": W, "temp": TEMP}, task)
        assert g["temp"] != 0.0


def test_check_prints_the_warning_and_passes(tmp_path, capsys):
    src = tmp_path / "temp.meta"
    src.write_text(SRC)
    assert main(["check", str(src)]) == 0
    err = capsys.readouterr().err
    assert f"{src}:22:23: warning: gradient of this grad(...) expression with respect to 'theta.temp'" in err
