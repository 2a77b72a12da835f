"""The convolution family lowered, for more strides, paddings and odd sizes than
test_prims' family function: each configuration against the interpreter, f64 at 1e-10."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.ad import vjp_func
from metacc.backend import lower_source
from metacc.ir.builder import Builder
from tests.backend.check import assert_matches
from tests.backend.conv_programs import CONV_CONFIGS, T, conv_fn
from tests.backend.test_prims import args_for


@pytest.mark.parametrize("config", range(1, len(CONV_CONFIGS)))
def test_conv_configuration_matches_interpreter(build, config):
    fn = conv_fn("f64", config)
    mod = build(fn)
    rng = np.random.default_rng(config)
    for n in (3, 1):
        assert_matches(fn, mod, args_for(fn, rng, n), "f64")


def _small_net():
    """relu(conv) -> max-pool -> conv -> avg-pool -> sum of squares: every family member in its VJP."""
    b = Builder()
    x = b.input("x", T("f64", "n", 7, 6, 2))
    w1 = b.input("w1", T("f64", 3, 3, 2, 3))
    w2 = b.input("w2", T("f64", 2, 2, 3, 4))
    h = b.relu(b.conv2d(x, w1, stride=(1, 1), pad=(1, 1, 1, 1)))
    h = b.window_gather(h, b.window_argmax(h, window=(2, 2), stride=(2, 2)))
    h = b.avg_pool2d(b.conv2d(h, w2, stride=(1, 2), pad=(1, 0, 0, 1)), window=(2, 1), stride=(1, 1))
    return b.build("net", [b.reduce_sum(b.mul(h, h), axes=(0, 1, 2, 3))])


def test_compiled_vjp_of_a_conv_net_matches_interpreter(build):
    fn = vjp_func(_small_net())
    mod = build(fn)
    rng = np.random.default_rng(5)
    args = [rng.normal(size=(3, 7, 6, 2)), rng.normal(size=(3, 3, 2, 3)), rng.normal(size=(2, 2, 3, 4)),
            np.float64(1.3)]
    got = assert_matches(fn, mod, args, "f64")
    assert all(np.max(np.abs(g)) > 0 for g in got[1:])      # every cotangent is non-trivial


def test_convolutions_share_one_scratch_buffer_and_allocate_nothing():
    src = lower_source(vjp_func(_small_net()))
    kernel = src.split("@njit", 1)[1].split("\ndef net_vjp_ws", 1)[0]
    assert kernel.count("conv_scratch_f64 = ") == 1          # one buffer, however many convolutions
    assert kernel.count("conv2d_nhwc(") + kernel.count("conv2d_input_grad_nhwc(") >= 3
    assert "np.empty" not in kernel and "np.zeros" not in kernel
