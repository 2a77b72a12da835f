"""conv2d, max_pool2d, avg_pool2d and global_mean_pool as written in .meta: padding and
stride conventions against a brute-force NumPy loop, and the errors for bad shapes,
strides and padding (each with its line:col, a caret and what to do)."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.errors import MetaccError, MetaccErrors
from metacc.frontend import load_source
from metacc.interp import evaluate
from tests.frontend.test_errors import _locate


def brute_conv(x, w, stride, pads):
    """y[n, i, j, d] = sum over the window of the zero-padded x times w, one element at a time."""
    (t, b), (l, r) = pads
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw, _, co = w.shape
    oh = (xp.shape[1] - kh) // stride[0] + 1
    ow = (xp.shape[2] - kw) // stride[1] + 1
    y = np.zeros((x.shape[0], oh, ow, co))
    for n in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                patch = xp[n, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw, :]
                y[n, i, j] = np.tensordot(patch, w, axes=3)
    return y


def run(call: str, x_shape, w_shape=(3, 3, 2, 4)):
    src = (f"fn f(x: f64[n, {x_shape[1]}, {x_shape[2]}, {x_shape[3]}], w: f64[{', '.join(map(str, w_shape))}])"
           f" -> f64 {{\n    y = {call}\n    return sum(y * y)\n}}\n"
           f"fn g(x: f64[n, {x_shape[1]}, {x_shape[2]}, {x_shape[3]}], w: f64[{', '.join(map(str, w_shape))}])"
           f" -> f64[n, {x_shape[1]}, {x_shape[2]}, {x_shape[3]}] {{ return x }}\n")
    fn = load_source(src).functions["f"].ir
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    return float(evaluate(fn, [x, w])[0]), x, w


@pytest.mark.parametrize("call,stride,pads", [
    ("conv2d(x, w)", (1, 1), ((1, 1), (1, 1))),                           # same, odd kernel: symmetric
    ("conv2d(x, w, stride=2)", (2, 2), ((1, 1), (0, 1))),                  # same: 7 -> 4 rows, 6 -> 3 cols
    ("conv2d(x, w, stride=[2, 1], padding=valid)", (2, 1), ((0, 0), (0, 0))),
    ("conv2d(x, w, padding=2)", (1, 1), ((2, 2), (2, 2))),
    ("conv2d(x, w, stride=[1, 3], padding=[[0, 2], [1, 0]])", (1, 3), ((0, 2), (1, 0))),
])
def test_conv2d_padding_and_stride(call, stride, pads):
    got, x, w = run(call, (2, 7, 6, 2))
    want = brute_conv(x, w, stride, pads)
    assert abs(got - float(np.sum(want * want))) <= 1e-10 * abs(got)


def test_same_padding_keeps_ceil_of_size_over_stride():
    fn = load_source("fn f(x: f64[n, 7, 6, 2], w: f64[4, 3, 2, 5]) -> f64[n, 4, 3, 5] "
                     "{ return conv2d(x, w, stride=2, padding=same) }\n").functions["f"].ir
    assert fn.outs[0].type.shape == ("n", 4, 3, 5)


def test_pools_and_global_mean():
    src = ("fn f(x: f64[n, 5, 7, 3]) -> f64[n, 3] {\n"
           "    a = max_pool2d(x, 2)\n    b = avg_pool2d(x, [3, 2], stride=[1, 2])\n"
           "    return global_mean_pool(a) + global_mean_pool(b)\n}\n")
    fn = load_source(src).functions["f"].ir
    x = np.random.default_rng(1).normal(size=(2, 5, 7, 3))
    a = np.max(x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3), axis=(2, 4))        # 2x2 windows, floor: 5 -> 2, 7 -> 3
    b = np.stack([np.stack([x[:, i:i + 3, j:j + 2].mean(axis=(1, 2)) for j in range(0, 6, 2)], 1)
                  for i in range(3)], 1)
    want = a.mean(axis=(1, 2)) + b.mean(axis=(1, 2))
    np.testing.assert_allclose(evaluate(fn, [x])[0], want, rtol=1e-12)


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
    fn = load_source("fn f(x: f64[1, 2, 2, 1]) -> f64 { return sum(max_pool2d(x, 2)) }\n").functions["f"].ir
    from metacc.ad import grad_func
    g = grad_func(fn)
    x = np.array([[[[1.0], [3.0]], [[3.0], [2.0]]]])     # the two 3s tie: (0, 1) comes first
    np.testing.assert_array_equal(evaluate(g, [x])[1][0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def fn_src(sig: str, body: str) -> str:
    return f"fn f({sig}) -> f32 {{\n{body}\n}}\n"


IMG = "x: f32[n, 8, 8, 1], w: f32[3, 3, 2, 4]"
OK = "x: f32[n, 8, 8, 2], w: f32[3, 3, 2, 4]"
ERRORS = [
    ("channel_mismatch", fn_src(IMG, "    return sum($conv2d(x, w))"), "the input has 1 channels but the filter "
     "expects 2", None),
    ("not_an_image", fn_src("x: f32[n, 8], w: f32[3, 3, 2, 4]", "    return sum($conv2d(x, w))"),
     "must be a 4-D image batch", "reshape"),
    ("symbolic_height", fn_src("x: f32[n, h, 8, 2], w: f32[3, 3, 2, 4]", "    return sum($conv2d(x, w))"),
     "only the batch axis may be symbolic", "declare the image size"),
    ("zero_stride", fn_src(OK, "    return sum(conv2d(x, w, stride=$0))"), "must be a whole number >= 1", None),
    ("three_strides", fn_src(OK, "    return sum(conv2d(x, w, stride=$[1, 2, 3]))"), "a pair [rows, columns]", None),
    ("unknown_padding", fn_src(OK, "    return sum(conv2d(x, w, padding=$sme))"), "unknown padding `sme`", "same"),
    ("flat_padding_list", fn_src(OK, "    return sum(conv2d(x, w, padding=$[1, 2]))"),
     "[[top, bottom], [left, right]]", None),
    ("negative_padding", fn_src(OK, "    return sum(conv2d(x, w, padding=$[[0, -1], [0, 0]]))"), "must be >= 0",
     None),
    ("kernel_too_big", fn_src("x: f32[n, 2, 2, 2], w: f32[3, 3, 2, 4]",
                              "    return sum($conv2d(x, w, padding=valid))"), "window (3) is larger than the "
     "input height (2)", None),
    ("pool_window_too_big", fn_src(OK, "    return sum($max_pool2d(x, 9))"), "window (9) is larger than the input "
     "height (8)", None),
    ("pool_zero_window", fn_src(OK, "    return sum(avg_pool2d(x, $0))"), "must be a whole number >= 1", None),
    ("pool_of_a_group", "params P { a: f32[3] = zeros }\n" + fn_src("p: P", "    return sum($max_pool2d(p, 2))"),
     "must be a tensor", None),
]


@pytest.mark.parametrize("name,marked,message,hint", ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_conv_program(name, marked, message, hint):
    text, line, col = _locate(marked)
    with pytest.raises(MetaccError) as info:
        load_source(text, "bad.meta")
    errors = info.value.errors if isinstance(info.value, MetaccErrors) else [info.value]
    assert len(errors) == 1, "\n\n".join(e.render() for e in errors)
    err = errors[0]
    assert message in err.message, err.render()
    assert (err.line, err.col) == (line, col), err.render()
    if hint is not None:
        assert err.hint is not None and hint in err.hint, err.render()
    rendered = err.render()
    assert rendered.startswith(f"bad.meta:{line}:{col}: error: ")
    assert "^" in rendered.splitlines()[2]
