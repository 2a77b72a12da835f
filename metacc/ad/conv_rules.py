"""JVP and VJP rules of the convolution and pooling family (metacc.ir.conv_types).

Every rule emits members of the same family, so derivatives of derivatives
need nothing more (grad of grad, HVPs, second-order MAML through a conv net):

  conv2d(x, w)              bilinear; x_bar = conv2d_input_grad(g, w), w_bar = conv2d_filter_grad(x, g)
  conv2d_input_grad(g, w)   bilinear; its adjoint in g is conv2d, in w conv2d_filter_grad
  conv2d_filter_grad(x, g)  bilinear; its adjoint in x is conv2d_input_grad, in g conv2d
  window_gather(x, idx)     linear in x; adjoint window_scatter (the index carries no derivative)
  window_scatter(g, idx)    linear in g; adjoint window_gather
  avg_pool2d <-> avg_pool2d_transpose, linear, each the other's adjoint
  window_argmax             integer: no derivative (max-pool's derivative routes through it)

A bilinear op's JVP is op(dot_a, b) + op(a, dot_b).
"""
from __future__ import annotations

from metacc.ad.util import add_any, differentiable


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


CONV_JVP = {
    "conv2d": _bilinear_jvp("conv2d"),
    "conv2d_input_grad": _bilinear_jvp("conv2d_input_grad"),
    "conv2d_filter_grad": _bilinear_jvp("conv2d_filter_grad"),
    "window_gather": _linear_jvp("window_gather"),
    "window_scatter": _linear_jvp("window_scatter"),
    "avg_pool2d": _linear_jvp("avg_pool2d"),
    "avg_pool2d_transpose": _linear_jvp("avg_pool2d_transpose"),
    "window_argmax": lambda b, ins, outs, tans, **_: [None],
}

CONV_VJP = {
    "conv2d": _conv2d_vjp,
    "conv2d_input_grad": _input_grad_vjp,
    "conv2d_filter_grad": _filter_grad_vjp,
    "window_gather": _gather_vjp,
    "window_scatter": _scatter_vjp,
    "avg_pool2d": _avg_vjp,
    "avg_pool2d_transpose": _avg_t_vjp,
    "window_argmax": lambda b, ins, outs, gs, **_: [None],
}
