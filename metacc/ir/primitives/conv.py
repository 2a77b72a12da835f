"""The convolution and pooling family, each primitive declared once.

Layout NHWC, filters [kh, kw, c_in, c_out]. The type rules are in conv_types.py, the
NumPy reference implementations in conv_ref.py; the derivative rules are here, and
every one emits members of the same family, so derivatives of derivatives need
nothing more (grad of grad, HVPs, second-order MAML through a conv net):

  conv2d(x, w)              bilinear; x_bar = conv2d_input_grad(g, w), w_bar = conv2d_filter_grad(x, g)
  conv2d_input_grad(g, w)   bilinear; its adjoint in g is conv2d, in w conv2d_filter_grad
  conv2d_filter_grad(x, g)  bilinear; its adjoint in x is conv2d_input_grad, in g conv2d
  window_gather(x, idx)     linear in x; adjoint window_scatter (the index carries no derivative)
  window_scatter(g, idx)    linear in g; adjoint window_gather
  avg_pool2d <-> avg_pool2d_transpose, linear, each the other's adjoint
  window_argmax             integer, no derivative (max-pool's derivative routes through it)

A bilinear op's JVP is op(dot_a, b) + op(a, dot_b). Every member is lowered by a
KernelWriter method (metacc/backend/conv_lower.py) calling a compiled helper.
"""
from __future__ import annotations

from metacc.ir.primitives import conv_ref as ref
from metacc.ir.primitives import conv_types as rules
from metacc.ir.primitives.declare import HOOK, declare
from metacc.ir.primitives.rulekit import add_any, differentiable

CONV_PARAMS = ("stride", "pad")
POOL_PARAMS = ("window", "stride")


def _hw(t):
    return tuple(t.shape[1:3])


def _kernel(w):
    return tuple(w.type.shape[:2])


def _bilinear_jvp(prim):
    def rule(b, ins, outs, tans, **params):
        (x, y), (tx, ty) = ins, tans
        left = None if tx is None else b.emit(prim, tx, y, **params)[0]
        right = None if ty is None else b.emit(prim, x, ty, **params)[0]
        return [add_any(b, left, right)]
    return rule


def _linear_jvp(prim):
    def rule(b, ins, outs, tans, **params):
        t = tans[0]
        if t is None:
            return [None]
        return [b.emit(prim, t, *ins[1:], **params)[0]]
    return rule


def _conv2d_vjp(b, ins, outs, gs, stride, pad, **_):
    x, w = ins
    (g,) = gs
    return [b.conv2d_input_grad(g, w, stride=stride, pad=pad, in_hw=_hw(x.type)) if differentiable(x) else None,
            b.conv2d_filter_grad(x, g, stride=stride, pad=pad, kernel=_kernel(w)) if differentiable(w) else None]


def _input_grad_vjp(b, ins, outs, gs, stride, pad, in_hw, **_):
    g, w = ins
    (xb,) = gs
    return [b.conv2d(xb, w, stride=stride, pad=pad) if differentiable(g) else None,
            b.conv2d_filter_grad(xb, g, stride=stride, pad=pad, kernel=_kernel(w)) if differentiable(w) else None]


def _filter_grad_vjp(b, ins, outs, gs, stride, pad, kernel, **_):
    x, g = ins
    (wb,) = gs
    return [b.conv2d_input_grad(g, wb, stride=stride, pad=pad, in_hw=_hw(x.type)) if differentiable(x) else None,
            b.conv2d(x, wb, stride=stride, pad=pad) if differentiable(g) else None]


def _gather_vjp(b, ins, outs, gs, **_):
    x, idx = ins
    return [b.window_scatter(gs[0], idx, in_hw=_hw(x.type)) if differentiable(x) else None, None]


def _scatter_vjp(b, ins, outs, gs, **_):
    g, idx = ins
    return [b.window_gather(gs[0], idx) if differentiable(g) else None, None]


def _avg_vjp(b, ins, outs, gs, window, stride, **_):
    return [b.avg_pool2d_transpose(gs[0], window=window, stride=stride, in_hw=_hw(ins[0].type))]


def _avg_t_vjp(b, ins, outs, gs, window, stride, **_):
    return [b.avg_pool2d(gs[0], window=window, stride=stride)]



declare("conv2d", "conv", 2, "2-D convolution, NHWC input, [kh, kw, c_in, c_out] filter", params=CONV_PARAMS,
        impl=ref.conv2d, jvp=_bilinear_jvp("conv2d"), vjp=_conv2d_vjp, lowering=HOOK,
        surface=("conv2d",))(rules.conv2d)
declare("conv2d_input_grad", "conv", 2, "transposed convolution: the adjoint of conv2d in its input",
        params=CONV_PARAMS + ("in_hw",), impl=ref.conv2d_input_grad, jvp=_bilinear_jvp("conv2d_input_grad"),
        vjp=_input_grad_vjp, lowering=HOOK)(rules.conv2d_input_grad)
declare("conv2d_filter_grad", "conv", 2, "the adjoint of conv2d in its filter", params=CONV_PARAMS + ("kernel",),
        impl=ref.conv2d_filter_grad, jvp=_bilinear_jvp("conv2d_filter_grad"), vjp=_filter_grad_vjp,
        lowering=HOOK)(rules.conv2d_filter_grad)
declare("window_argmax", "conv", 1, "i64 position (h * W + w) of each pooling window's first maximum",
        params=POOL_PARAMS, impl=ref.window_argmax, nondiff=True, lowering=HOOK)(rules.window_argmax)
declare("window_gather", "conv", 2, "x at the positions of a window index (max_pool2d's value)",
        impl=ref.window_gather, jvp=_linear_jvp("window_gather"), vjp=_gather_vjp, lowering=HOOK,
        surface=("max_pool2d",))(rules.window_gather)
declare("window_scatter", "conv", 2, "zeros with g added at the positions of a window index (adjoint of the gather)",
        params=("in_hw",), impl=ref.window_scatter, jvp=_linear_jvp("window_scatter"), vjp=_scatter_vjp,
        lowering=HOOK)(rules.window_scatter)
declare("avg_pool2d", "conv", 1, "mean over each pooling window", params=POOL_PARAMS, impl=ref.avg_pool2d,
        jvp=_linear_jvp("avg_pool2d"), vjp=_avg_vjp, lowering=HOOK, surface=("avg_pool2d",))(rules.avg_pool2d)
declare("avg_pool2d_transpose", "conv", 1, "the adjoint of avg_pool2d", params=POOL_PARAMS + ("in_hw",),
        impl=ref.avg_pool2d_transpose, jvp=_linear_jvp("avg_pool2d_transpose"), vjp=_avg_t_vjp,
        lowering=HOOK)(rules.avg_pool2d_transpose)
