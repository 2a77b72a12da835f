"""A small conv program on the CUDA target, in the simulator: conv2d with same and valid
padding, max- and average-pooling and a global mean pool inside a 2-step MAML
(tests/e2e/programs/conv_tiny.meta, with 2 filters), every kernel kind of its meta function
against the reference interpreter run task by task and averaged (f64, 1e-10), and a plain
fn's gradient. The device helpers are metacc.backend.cuda.conv_device."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from tests.cuda.programs import ROOT, interp_mean, leaves, need_simulator

cuda = need_simulator()

RTOL, ATOL = 1e-10, 1e-13
TASKS, K_SUPPORT, Q = 2, 2, 2
ALPHA = np.float64(0.1)


def assert_close(got: list, want: list):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)
    assert any(np.abs(np.asarray(b)).max() > 1e-8 for b in want)     # not all zeros


@pytest.fixture(scope="module")
def conv():
    text = (ROOT / "tests" / "e2e" / "programs" / "conv_tiny.meta").read_text()
    text = text.replace("1, 4]", "1, 2]").replace("4, 4]", "2, 2]").replace("f64[4]", "f64[2]") \
               .replace("f64[4, 3]", "f64[2, 3]")
    mod = metacc.compile(text, dtype="f64", target="cuda")
    rng = np.random.default_rng(11)
    t = {"support": {"x": rng.normal(size=(TASKS, K_SUPPORT, 8, 8, 1)),
                     "y": rng.integers(0, 3, size=(TASKS, K_SUPPORT))},
         "query": {"x": rng.normal(size=(TASKS, Q, 8, 8, 1)), "y": rng.integers(0, 3, size=(TASKS, Q))}}
    theta = mod.Conv.init(seed=3)
    theta = {k: v + 0.05 * rng.normal(size=v.shape) for k, v in theta.items()}     # biases not all zero
    return mod, theta, t, rng


def _want(mod, kind, theta, t, wrt, after):
    ir = mod.program.functions["maml"].ir
    return interp_mean(ir, kind, wrt, leaves(theta), leaves(t), after, TASKS)


def test_the_program_has_every_conv_family_member(conv):
    mod = conv[0]
    src = mod.maml.source("grad")
    for helper in ("conv2d_nhwc", "conv2d_input_grad_nhwc", "conv2d_filter_grad_nhwc", "window_argmax_nhwc",
                   "window_gather_nhwc", "window_scatter_nhwc", "avg_pool_nhwc", "avg_pool_t_nhwc"):
        assert helper + "(" in src, helper


def test_forward_and_meta_grad(conv):
    mod, theta, t, _ = conv
    loss = mod.maml(theta, t)
    assert_close([loss], _want(mod, "forward", theta, t, None, [ALPHA]))
    loss, g = mod.maml.value_and_grad(theta, t)
    want = _want(mod, "meta_grad", theta, t, list(range(6)), [ALPHA])
    assert_close([loss] + leaves(g, theta), want)


@pytest.mark.parametrize("kind", ["vjp", "jvp", "hvp"])
def test_meta_derivative_kernels(conv, kind):
    mod, theta, t, rng = conv
    v = {n: rng.normal(size=a.shape) for n, a in theta.items()}
    if kind == "vjp":
        out, ct = mod.maml.vjp(theta, t, cotangent=np.float64(0.7))
        got, after = [out] + leaves(ct, theta), [ALPHA, np.float64(0.7)]
    elif kind == "jvp":
        out, tan = mod.maml.jvp(theta, t, tangents=v)
        got, after = [out, tan], [ALPHA] + leaves(v, theta)
    else:
        g, hv = mod.maml.grad_and_hvp(theta, t, v=v)
        got, after = leaves(g, theta) + leaves(hv, theta), [ALPHA] + leaves(v, theta)
    want = _want(mod, kind, theta, t, list(range(6)), after)
    assert_close(got, want[-len(got):])


def test_a_plain_fn_gradient_on_device_arrays(conv):
    """loss(p, x, y) for one batch, its inputs as device arrays: the gradient comes back on the device."""
    mod, theta, t, _ = conv
    x, y = t["support"]["x"][0], t["support"]["y"][0]
    d_theta = {k: cuda.to_device(v) for k, v in theta.items()}
    value, g = mod.loss.value_and_grad(d_theta, cuda.to_device(x), cuda.to_device(y))
    want = interp_mean(mod.program.functions["loss"].ir, "grad", list(range(6)), leaves(theta) + [x, y], [], [], 1)
    assert all(hasattr(g[k], "copy_to_host") for k in theta)
    assert_close([value] + [g[k].copy_to_host() for k in theta], want)
