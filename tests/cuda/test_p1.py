"""P1 (MAML on sinusoids, full second order) on the CUDA target, in the simulator:
each kernel kind against the reference interpreter (f64, 1e-10), the meta function
one thread per task with a fixed-order reduction, device arrays in and out."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from tests.cuda.programs import interp_mean, leaves, need_simulator, p1_text, sinusoid_batch

cuda = need_simulator()

TASKS, K_SUPPORT, Q = 3, 4, 3
RTOL = 1e-10


@pytest.fixture(scope="module")
def mod():
    return metacc.compile(p1_text(), dtype="f64", target="cuda")


@pytest.fixture(scope="module")
def data(mod):
    rng = np.random.default_rng(5)
    return mod.Net.init(seed=1), sinusoid_batch(rng, TASKS, K_SUPPORT, Q)


def _oracle(mod, kind, theta, t, wrt=None):
    ir = mod.program.functions["maml"].ir
    return interp_mean(ir, kind, wrt, leaves(theta), leaves(t), [np.float64(0.01)], TASKS)


def test_forward_matches_interpreter(mod, data):
    theta, t = data
    loss = mod.maml(theta, t)
    want = _oracle(mod, "forward", theta, t)[0]
    assert isinstance(loss, np.float64)
    np.testing.assert_allclose(loss, want, rtol=RTOL)


def test_meta_grad_matches_interpreter(mod, data):
    theta, t = data
    loss, g = mod.maml.value_and_grad(theta, t)
    want = _oracle(mod, "meta_grad", theta, t, wrt=list(range(6)))
    np.testing.assert_allclose(loss, want[0], rtol=RTOL)
    for name, w in zip(theta, want[1:]):
        assert g[name].shape == theta[name].shape and isinstance(g[name], np.ndarray)
        np.testing.assert_allclose(g[name], w, rtol=RTOL, atol=1e-14)
    assert any(np.abs(g[n]).max() > 1e-6 for n in g)      # a gradient that can fail the test


def test_meta_grad_is_deterministic(mod, data):
    theta, t = data
    a = mod.maml.value_and_grad(theta, t)
    b = mod.maml.value_and_grad(theta, t)
    assert a[0] == b[0] and all(np.array_equal(a[1][n], b[1][n]) for n in a[1])


@pytest.mark.parametrize("kind", ["grad", "vjp", "jvp", "hvp"])
def test_plain_function_kernels(mod, data, kind):
    """mse is a plain fn: one thread runs the call (the _one kernel)."""
    theta, t = data
    x, y = t["support"]["x"][0], t["support"]["y"][0]
    ir = mod.program.functions["mse"].ir
    rng = np.random.default_rng(2)
    v = {n: rng.normal(size=a.shape) for n, a in theta.items()}
    from metacc.interp import evaluate
    from metacc.pipeline import kernel_ir
    flat = leaves(theta) + [x, y]
    wrt = list(range(6))
    if kind == "grad":
        loss, g = mod.mse.value_and_grad(theta, x, y)
        got = [loss] + [g[n] for n in theta]
        want = evaluate(kernel_ir(ir, "grad", wrt), flat)
    elif kind == "hvp":
        g, hv = mod.mse.grad_and_hvp(theta, x, y, v=v)
        got = [g[n] for n in theta] + [hv[n] for n in theta]
        want = evaluate(kernel_ir(ir, "hvp", wrt), flat + leaves(v))
        want = list(want)[-12:]
    elif kind == "jvp":
        out, tan = mod.mse.jvp(theta, x, y, tangents=v)
        got = [out, tan]
        want = evaluate(kernel_ir(ir, "jvp", wrt), flat + leaves(v))
    else:
        out, ct = mod.mse.vjp(theta, x, y, cotangent=np.float64(1.5))
        got = [out] + [ct[n] for n in theta]
        want = evaluate(kernel_ir(ir, "vjp", wrt), flat + [np.float64(1.5)])
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-14)


def test_device_arrays_stay_on_the_device(mod, data):
    theta, t = data
    d_theta = {n: cuda.to_device(a) for n, a in theta.items()}
    d_t = {s: {f: cuda.to_device(a) for f, a in part.items()} for s, part in t.items()}
    loss, g = mod.maml.value_and_grad(d_theta, d_t)
    host_loss, host_g = mod.maml.value_and_grad(theta, t)
    assert loss == host_loss
    for n in theta:
        assert not isinstance(g[n], np.ndarray) and hasattr(g[n], "copy_to_host")
        assert g[n].shape == theta[n].shape
        assert np.array_equal(g[n].copy_to_host(), host_g[n])


def test_wrong_dtype_is_a_named_error(mod, data):
    theta, t = data
    bad = dict(theta, w2=theta["w2"].astype(np.float32))
    with pytest.raises(MetaccError, match="theta.w2.*dtype float32, expected float64"):
        mod.maml(bad, t)
    d_bad = dict(theta, w2=cuda.to_device(theta["w2"].astype(np.float32)))
    with pytest.raises(MetaccError, match="theta.w2.*dtype float32, expected float64"):
        mod.maml(d_bad, t)


def test_the_launch_checks_its_arguments(mod, data):
    """Called directly (past the runtime), the generated entry checks dtype and rank itself:
    the simulator would compute with whatever it is given."""
    theta, t = data
    entry = mod.maml.kernel("forward").module().ENTRY_BATCHED
    args = leaves(theta) + leaves(t) + [np.float64(0.01)]
    assert np.isclose(entry(*args)[0], mod.maml(theta, t))
    args[0] = args[0].astype(np.float32)
    with pytest.raises(MetaccError, match="argument 'theta_w1' has dtype float32, expected float64"):
        entry(*args)
    args[0] = theta["w1"][0]
    with pytest.raises(MetaccError, match="argument 'theta_w1' has 1 axes, expected 2"):
        entry(*args)


def test_shape_mismatch_is_a_named_error(mod, data):
    theta, t = data
    bad = dict(theta, w2=cuda.to_device(np.zeros((3, 4))))
    with pytest.raises(MetaccError, match="theta.w2"):
        mod.maml(bad, t)


def test_a_non_contiguous_device_array_is_a_named_error(mod, data):
    theta, t = data
    wide = cuda.to_device(np.zeros((4, 8)))
    bad = dict(theta, w2=wide[:, :4])                  # the right shape, strided
    with pytest.raises(MetaccError, match="theta.w2.*not C-contiguous"):
        mod.maml(bad, t)
    entry = mod.maml.kernel("forward").module().ENTRY_BATCHED
    args = [theta["w1"], theta["b1"], wide[:, :4]] + [theta[n] for n in ("b2", "w3", "b3")]
    with pytest.raises(MetaccError, match="argument 'theta_w2' is a device array that is not C-contiguous"):
        entry(*args, *[t[s][f] for s in ("support", "query") for f in ("x", "y")], np.float64(0.01))
