"""Builtins for images: conv2d, max_pool2d, avg_pool2d, global_mean_pool.

Layout NHWC (x[n, h, w, c]) with filters w[kh, kw, c_in, c_out], JAX/TF's
default. Strides, windows and padding are compile-time: stride `2` or `[2, 1]`;
padding the bare name `same` or `valid`, a whole number for every side, or
`[[top, bottom], [left, right]]`. `same` pads as TensorFlow does: the output is
ceil(h / stride) long and an odd total puts the extra row at the bottom.

max_pool2d is the gather of x at its windows' argmax (window_argmax, an integer
value the derivative routes through; the first maximum in row-major window
order wins a tie), so its derivative, and that derivative's derivative, are a
scatter/gather pair. Pools take no padding.
"""
from __future__ import annotations

from metacc.errors import MetaccError, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.builtins import builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, static_int, static_ints
from metacc.frontend.lib_math import emit1
from metacc.frontend.values import Record, Tensor, Tree
from metacc.ir.core import Lit
from metacc.ir.types import scalar

PADDING_NAMES = ("same", "valid")


def _image(ctx: Ctx, node, x, what: str) -> Tensor:
    if isinstance(x, (Tree, Record)):
        reject(x, node, what, "a tensor [n, h, w, c]")
    x = as_tensor(ctx, x, None, node.span, what)
    if x.type.rank != 4:
        raise MetaccError(f"{what} must be a 4-D image batch [n, h, w, c] (NHWC), not {x.type}", node.span,
                          hint="reshape a single image with reshape(x, [1, h, w, c])")
    for d, name in zip(x.type.shape[1:], ("height", "width", "channel count")):
        if not isinstance(d, int):
            raise MetaccError(f"{what}: its {name} is the symbol {d}; only the batch axis may be symbolic",
                              node.span, hint="declare the image size as a number, e.g. x: f32[n, 28, 28, 1]")
    return x


def _pair(ctx: Ctx, node, what: str) -> tuple[int, int]:
    """`2` or `[2, 1]`: one whole number >= 1 per spatial axis."""
    vals = static_ints(ctx, node, what)
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or any(v < 1 for v in vals):
        raise MetaccError(f"{what} must be a whole number >= 1 or a pair [rows, columns] of them, "
                          f"got {list(vals)}", node.span)
    return vals


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _padding(ctx: Ctx, node, x: Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple:
    what = "`padding` of conv2d"
    if node is None or (isinstance(node, A.Name) and node.id == "same"):
        (t, b), (l, r) = (_same_pad(x.type.shape[1], kernel[0], stride[0]),
                          _same_pad(x.type.shape[2], kernel[1], stride[1]))
        return (t, b, l, r)
    if isinstance(node, A.Name) and node.id == "valid":
        return (0, 0, 0, 0)
    if isinstance(node, A.Name):
        raise MetaccError(f"{what}: unknown padding `{node.id}`", node.span,
                          expected="same, valid, a whole number, or [[top, bottom], [left, right]]",
                          hint=did_you_mean(node.id, PADDING_NAMES))
    if isinstance(node, A.ListExpr):
        if len(node.items) != 2 or not all(isinstance(i, A.ListExpr) and len(i.items) == 2 for i in node.items):
            raise MetaccError(f"{what}: an explicit padding is [[top, bottom], [left, right]]", node.span)
        pads = tuple(static_int(ctx, v, what) for pair in node.items for v in pair.items)
    else:
        pads = (static_int(ctx, node, what),) * 4
    if any(p < 0 for p in pads):
        raise MetaccError(f"{what} must be >= 0, got {list(pads)}", node.span)
    return pads


@builtin("conv2d", "x, w, stride?:node, padding?:node",
         "2-D convolution: x [n, h, w, c_in], w [kh, kw, c_in, c_out]; stride 1 and padding same by default")
def _conv2d(ctx: Ctx, node, x, w, stride=None, padding=None):
    x = _image(ctx, node, x, "the input of conv2d")
    if isinstance(w, (Tree, Record)):
        reject(w, node, "the filter of conv2d", "a tensor [kh, kw, c_in, c_out]")
    w = as_tensor(ctx, w, x.type.dtype, node.span, "the filter of conv2d")
    st = (1, 1) if stride is None else _pair(ctx, stride, "`stride` of conv2d")
    kernel = tuple(w.type.shape[:2]) if w.type.rank == 4 and all(isinstance(d, int) for d in w.type.shape) \
        else (1, 1)
    pad = _padding(ctx, padding, x, kernel, st)
    return emit1(ctx, "conv2d", [x, w], node.span, stride=st, pad=pad)


def _pool_args(ctx: Ctx, node, x, window, stride, name: str):
    x = _image(ctx, node, x, f"the input of {name}")
    win = _pair(ctx, window, f"`window` of {name}")
    st = win if stride is None else _pair(ctx, stride, f"`stride` of {name}")
    return x, win, st


@builtin("max_pool2d", "x, window:node, stride?:node",
         "maximum over each window (stride defaults to the window); no padding")
def _max_pool2d(ctx: Ctx, node, x, window, stride=None):
    x, win, st = _pool_args(ctx, node, x, window, stride, "max_pool2d")
    idx = ctx.emit("window_argmax", [x], node.span, window=win, stride=st, name="pool_argmax")
    return emit1(ctx, "window_gather", [x, idx], node.span)


@builtin("avg_pool2d", "x, window:node, stride?:node",
         "mean over each window (stride defaults to the window); no padding")
def _avg_pool2d(ctx: Ctx, node, x, window, stride=None):
    x, win, st = _pool_args(ctx, node, x, window, stride, "avg_pool2d")
    return emit1(ctx, "avg_pool2d", [x], node.span, window=win, stride=st)


@builtin("global_mean_pool", "x", "mean over the spatial axes: [n, h, w, c] -> [n, c]")
def _global_mean_pool(ctx: Ctx, node, x):
    x = _image(ctx, node, x, "the input of global_mean_pool")
    _, h, w, _ = x.type.shape
    total = ctx.emit("reduce_sum", [x], node.span, axes=(1, 2))
    if h * w == 1:
        return ctx.tensor(total, node.span)
    return emit1(ctx, "mul", [total, Lit(1.0 / (h * w), scalar(x.type.dtype))], node.span)
