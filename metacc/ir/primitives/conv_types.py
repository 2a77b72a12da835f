"""Type rules of the convolution and pooling family (declared in conv.py).

Layout NHWC: images are x[n, h, w, c], filters w[kh, kw, c_in, c_out] (JAX/TF's
default). n may be symbolic; h, w and the channels are static ints, because the
window arithmetic (output sizes, padding) is decided at compile time.

Params, all tuples of ints: stride (sh, sw); pad (top, bottom, left, right), the
zeros added around each image; window (wh, ww); in_hw (h, w) and kernel (kh, kw)
where a result's spatial size cannot be read off its operands.

The family is closed under differentiation (conv.py):
  conv2d(x, w)               y[n, oh, ow, co] = sum x_padded[n, oh*sh + i, ow*sw + j, ci] w[i, j, ci, co]
  conv2d_input_grad(g, w)    the adjoint of x -> conv2d(x, w): a transposed convolution
  conv2d_filter_grad(x, g)   the adjoint of w -> conv2d(x, w): correlation of x with g
  window_argmax(x)           i64: the position h*W + w in x's plane of each window's maximum
                             (the first maximum in row-major window order wins ties)
  window_gather(x, idx)      y[n, o1, o2, c] = x[n, idx // W, idx % W, c]
  window_scatter(g, idx)     zeros of in_hw with g added at idx (the adjoint of the gather)
  avg_pool2d(x)              mean over each window (no padding)
  avg_pool2d_transpose(g)    its adjoint: each window's share spread back over it
"""
from __future__ import annotations

from metacc.ir.types import FLOAT_DTYPES, ShapeError, TensorType


def _image(x: TensorType, what: str, role: str = "the input") -> tuple:
    if x.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{what} needs a float tensor as {role}, got {x}")
    if x.rank != 4:
        raise ShapeError(f"{what}: {role} must be 4-D [n, h, w, c] (NHWC), got {x}")
    n, h, w, c = x.shape
    for d, name in ((h, "height"), (w, "width"), (c, "channel count")):
        if not isinstance(d, int):
            raise ShapeError(f"{what}: the {name} of {role} must be a fixed size, got the symbol {d} in {x} "
                             "(only the batch axis n may be symbolic)")
    return n, h, w, c


def _pair(v, what: str, name: str, least: int) -> tuple[int, int]:
    if len(v) != 2 or any(not isinstance(s, int) or s < least for s in v):
        raise ShapeError(f"{what}: {name} must be whole numbers >= {least}, got {tuple(v)}")
    return tuple(v)


def out_size(size: int, lo: int, hi: int, k: int, s: int, what: str, axis: str) -> int:
    """Output length of a window k at stride s over size plus padding lo, hi."""
    padded = size + lo + hi
    if k > padded:
        raise ShapeError(f"{what}: the window ({k}) is larger than the {'padded ' if lo or hi else ''}input "
                         f"{axis} ({padded})")
    return (padded - k) // s + 1


def _check_pad(pad, what: str) -> tuple[int, int, int, int]:
    if len(pad) != 4 or any(not isinstance(p, int) or p < 0 for p in pad):
        raise ShapeError(f"{what}: padding must be four whole numbers >= 0 (top, bottom, left, right), got {pad}")
    return tuple(pad)


def conv_out_hw(h, w, kh, kw, stride, pad, what: str) -> tuple[int, int]:
    sh, sw = _pair(stride, what, "the strides", 1)
    t, b, l, r = _check_pad(pad, what)
    return out_size(h, t, b, kh, sh, what, "height"), out_size(w, l, r, kw, sw, what, "width")


def _filter(w: TensorType, what: str) -> tuple:
    if w.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{what} needs a float filter, got {w}")
    if w.rank != 4 or not all(isinstance(d, int) for d in w.shape):
        raise ShapeError(f"{what}: the filter must be 4-D [kh, kw, c_in, c_out] with fixed sizes, got {w}")
    return w.shape


def _same(what, *ts):
    if len({t.dtype for t in ts}) != 1:
        raise ShapeError(f"{what}: operands have different dtypes ({', '.join(map(str, ts))}); "
                         "cast one with f32(...) or f64(...)")


def conv2d(x, w, *, stride, pad):
    what = "conv2d"
    n, h, wd, c = _image(x, what)
    kh, kw, ci, co = _filter(w, what)
    _same(what, x, w)
    if ci != c:
        raise ShapeError(f"conv2d: the input has {c} channels but the filter expects {ci} "
                         f"(filter [kh, kw, c_in, c_out] = {list(w.shape)})")
    oh, ow = conv_out_hw(h, wd, kh, kw, stride, pad, what)
    return (TensorType(x.dtype, (n, oh, ow, co)),)


def conv2d_input_grad(g, w, *, stride, pad, in_hw):
    what = "conv2d_input_grad"
    n, oh, ow, co = _image(g, what, "the output cotangent")
    kh, kw, ci, co2 = _filter(w, what)
    _same(what, g, w)
    h, wd = _pair(in_hw, what, "the input size", 1)
    if co2 != co or conv_out_hw(h, wd, kh, kw, stride, pad, what) != (oh, ow):
        raise ShapeError(f"{what}: cotangent {g} does not fit a convolution of a {h}x{wd} input by {w}")
    return (TensorType(g.dtype, (n, h, wd, ci)),)


def conv2d_filter_grad(x, g, *, stride, pad, kernel):
    what = "conv2d_filter_grad"
    n, h, wd, ci = _image(x, what)
    n2, oh, ow, co = _image(g, what, "the output cotangent")
    _same(what, x, g)
    kh, kw = _pair(kernel, what, "the kernel size", 1)
    if n2 != n or conv_out_hw(h, wd, kh, kw, stride, pad, what) != (oh, ow):
        raise ShapeError(f"{what}: cotangent {g} does not fit a {kh}x{kw} convolution of {x}")
    return (TensorType(x.dtype, (kh, kw, ci, co)),)


def pool_out(x, window, stride, what):
    n, h, w, c = _image(x, what)
    wh, ww = _pair(window, what, "the window", 1)
    sh, sw = _pair(stride, what, "the strides", 1)
    return n, out_size(h, 0, 0, wh, sh, what, "height"), out_size(w, 0, 0, ww, sw, what, "width"), c


def window_argmax(x, *, window, stride):
    n, oh, ow, c = pool_out(x, window, stride, "max_pool2d")
    return (TensorType("i64", (n, oh, ow, c)),)


def _index(idx, what):
    if idx.dtype != "i64" or idx.rank != 4:
        raise ShapeError(f"{what}: the window index must be a 4-D i64 tensor, got {idx}")


def window_gather(x, idx):
    what = "window_gather"
    n, _, _, c = _image(x, what)
    _index(idx, what)
    if idx.shape[0] != n or idx.shape[3] != c:
        raise ShapeError(f"{what}: index {idx} does not match the batch and channels of {x}")
    return (TensorType(x.dtype, idx.shape),)


def window_scatter(g, idx, *, in_hw):
    what = "window_scatter"
    n, _, _, c = _image(g, what, "the cotangent")
    _index(idx, what)
    if idx.shape != g.shape:
        raise ShapeError(f"{what}: index {idx} and cotangent {g} differ in shape")
    h, w = _pair(in_hw, what, "the input size", 1)
    return (TensorType(g.dtype, (n, h, w, c)),)


def avg_pool2d(x, *, window, stride):
    return (TensorType(x.dtype, pool_out(x, window, stride, "avg_pool2d")),)


def avg_pool2d_transpose(g, *, window, stride, in_hw):
    what = "avg_pool2d_transpose"
    n, oh, ow, c = _image(g, what, "the cotangent")
    h, w = _pair(in_hw, what, "the input size", 1)
    if pool_out(TensorType(g.dtype, (n, h, w, c)), window, stride, what)[1:3] != (oh, ow):
        raise ShapeError(f"{what}: cotangent {g} does not fit pooling a {h}x{w} input")
    return (TensorType(g.dtype, (n, h, w, c)),)
