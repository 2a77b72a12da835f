"""A few outer steps with the parameters and the optimizer's state kept as device
arrays: the CUDA module returns gradients on the device, metacc.runtime.optim
updates them there. The oracle: the same steps with the reference interpreter's
meta-gradients and the NumPy optimizer."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.runtime.optim import SGD, Adam
from tests.cuda.programs import interp_mean, leaves, need_simulator, p1_text, sinusoid_batch

cuda = need_simulator()

TASKS, STEPS = 2, 3


@pytest.fixture(scope="module")
def setup():
    mod = metacc.compile(p1_text(), dtype="f64", target="cuda")
    rng = np.random.default_rng(9)
    batches = [sinusoid_batch(rng, TASKS, 3, 2) for _ in range(STEPS)]
    return mod, mod.Net.init(seed=4), batches


@pytest.mark.parametrize("opt", [Adam(lr=1e-2), SGD(lr=1e-2, momentum=0.5)], ids=["adam", "sgd"])
def test_training_steps_on_the_device(setup, opt):
    mod, theta0, batches = setup
    ir = mod.program.functions["maml"].ir
    # the oracle: interpreter meta-gradients, NumPy optimizer
    theta, state = dict(theta0), opt.init(theta0)
    for t in batches:
        g = interp_mean(ir, "meta_grad", list(range(6)), leaves(theta, theta0), leaves(t), [np.float64(0.01)], TASKS)
        theta, state = opt.update(dict(zip(theta0, g[1:])), state, theta)
    # on the device: parameters and state never leave it
    d_theta = {n: cuda.to_device(a) for n, a in theta0.items()}
    d_state = opt.init(d_theta)
    for t in batches:
        loss, g = mod.maml.value_and_grad(d_theta, t)
        assert np.isfinite(loss)
        assert all(not isinstance(x, np.ndarray) for x in g.values())
        d_theta, d_state = opt.update(g, d_state, d_theta)
        assert all(not isinstance(x, np.ndarray) and hasattr(x, "copy_to_host") for x in d_theta.values())
    for n in theta0:
        np.testing.assert_allclose(d_theta[n].copy_to_host(), theta[n], rtol=1e-10, atol=1e-14)
        assert not np.array_equal(theta[n], theta0[n]) or n.startswith("b")    # the steps moved the weights


def test_device_parameters_need_device_gradients(setup):
    mod, theta0, batches = setup
    d_theta = {n: cuda.to_device(a) for n, a in theta0.items()}
    opt = SGD(lr=0.1)
    with pytest.raises(MetaccError, match="on the device but its gradient is not"):
        opt.update({n: np.zeros_like(a) for n, a in theta0.items()}, opt.init(d_theta), d_theta)
    with pytest.raises(MetaccError, match="some parameters are device arrays"):
        opt.init(dict(theta0, w1=d_theta["w1"]))


def test_a_non_finite_device_gradient_is_caught(setup):
    mod, theta0, _ = setup
    d_theta = {n: cuda.to_device(a) for n, a in theta0.items()}
    bad = {n: cuda.to_device(np.full(a.shape, np.nan) if n == "w2" else np.zeros_like(a)) for n, a in theta0.items()}
    opt = SGD(lr=0.1)
    with pytest.raises(MetaccError, match="gradient of 'w2' is not finite"):
        opt.update(bad, opt.init(d_theta), d_theta)


def test_the_training_loop_keeps_parameters_on_the_device(setup):
    """metacc.runtime.train.train with device parameters: the same parameters as the
    hand-written loop of the test above (its optimizer steps are checked there)."""
    from metacc.runtime.train import train
    mod, theta0, batches = setup
    d_theta = {n: cuda.to_device(a) for n, a in theta0.items()}
    it = iter(batches)
    out, log = train(mod.maml.value_and_grad, d_theta, Adam(lr=1e-2), lambda: next(it), iterations=STEPS,
                     progress=False)
    assert len(log.losses) == STEPS and all(np.isfinite(log.losses))
    assert all(not isinstance(x, np.ndarray) for x in out.values())
    by_hand, state = {n: cuda.to_device(a) for n, a in theta0.items()}, None
    opt = Adam(lr=1e-2)
    state = opt.init(by_hand)
    for t in batches:
        _, g = mod.maml.value_and_grad(by_hand, t)
        by_hand, state = opt.update(g, state, by_hand)
    for n in theta0:
        assert np.array_equal(out[n].copy_to_host(), by_hand[n].copy_to_host())
