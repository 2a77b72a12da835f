"""Adam and SGD on parameter groups, against steps computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.errors import MetaccError
from metacc.runtime.optim import SGD, Adam


def test_adam_first_two_steps_by_hand():
    p = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}
    g1 = {"w": np.array([0.1, -0.4]), "b": np.array(2.0)}
    g2 = {"w": np.array([-0.3, 0.2]), "b": np.array(1.0)}
    adam = Adam(lr=0.1, b1=0.9, b2=0.999, eps=1e-8)
    s = adam.init(p)
    p1, s = adam.update(g1, s, p)
    # step 1: m = 0.1 g, v = 0.001 g^2; corrected m/(1-0.9) = g, v/(1-0.999) = g^2 -> p - 0.1 g/(|g| + eps)
    assert np.allclose(p1["w"], [1.0 - 0.1 * 0.1 / (0.1 + 1e-8), -2.0 + 0.1 * 0.4 / (0.4 + 1e-8)], rtol=0, atol=1e-15)
    assert np.isclose(p1["b"], 0.5 - 0.1 * 2.0 / (2.0 + 1e-8), rtol=0, atol=1e-15)
    p2, s = adam.update(g2, s, p1)
    # step 2 on w[0]: m = 0.9*0.01 + 0.1*(-0.3) = -0.021, v = 0.999*1e-5 + 0.001*0.09 = 9.999e-5
    m_hat, v_hat = -0.021 / (1 - 0.81), 9.999e-05 / (1 - 0.999 ** 2)
    assert np.isclose(p2["w"][0], p1["w"][0] - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=0, atol=1e-14)
    assert s.step == 2
    assert np.array_equal(p["w"], [1.0, -2.0])      # inputs are never written


def test_sgd_plain_and_momentum_by_hand():
    p = {"w": np.array([1.0, 2.0])}
    g = {"w": np.array([0.5, -1.0])}
    plain = SGD(lr=0.1)
    q, _ = plain.update(g, plain.init(p), p)
    assert np.allclose(q["w"], [0.95, 2.1])
    mom = SGD(lr=0.1, momentum=0.9)
    s = mom.init(p)
    q1, s = mom.update(g, s, p)
    q2, s = mom.update(g, s, q1)
    # buffer: g, then 0.9 g + g = 1.9 g
    assert np.allclose(q2["w"], p["w"] - 0.1 * g["w"] - 0.1 * 1.9 * g["w"])


def test_float32_stays_float32_and_groups_can_be_tuples():
    theta = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    rates = {"w": np.full((2, 3), 0.01, np.float32), "b": np.array(0.01, np.float32)}
    params = (theta, rates)
    grads = ({"w": np.ones((2, 3), np.float32), "b": np.ones(3, np.float32)},
             {"w": -np.ones((2, 3), np.float32), "b": np.array(3.0, np.float32)})
    adam = Adam(1e-2)
    new, state = adam.update(grads, adam.init(params), params)
    assert isinstance(new, tuple) and len(new) == 2
    for group in new:
        for v in group.values():
            assert v.dtype == np.float32
    assert np.allclose(new[0]["w"], 1 - 1e-2, atol=1e-6) and np.allclose(new[1]["w"], 0.01 + 1e-2, atol=1e-6)
    assert new[1]["b"].shape == ()


def test_gradients_that_do_not_match_are_user_errors():
    p = {"w": np.zeros(2), "b": np.zeros(1)}
    adam = Adam()
    s = adam.init(p)
    with pytest.raises(MetaccError, match="missing b"):
        adam.update({"w": np.zeros(2)}, s, p)
    with pytest.raises(MetaccError, match="shapes"):
        adam.update({"w": np.zeros(3), "b": np.zeros(1)}, s, p)
    with pytest.raises(MetaccError, match="not finite at step 1"):
        adam.update({"w": np.array([np.nan, 0.0]), "b": np.zeros(1)}, s, p)


@pytest.mark.parametrize("make", [lambda: Adam(lr=0), lambda: Adam(b1=1.0), lambda: SGD(lr=-1),
                                  lambda: SGD(momentum=1.0)])
def test_bad_hyperparameters(make):
    with pytest.raises(MetaccError):
        make()


def test_parameters_must_be_float_arrays():
    with pytest.raises(MetaccError, match="float32 or float64"):
        Adam().init({"w": np.zeros(2, np.int64)})
    with pytest.raises(MetaccError, match="dict of arrays"):
        SGD().init(np.zeros(3))
