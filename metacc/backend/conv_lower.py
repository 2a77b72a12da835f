"""Numba lowering of the convolution and pooling family: one helper call per equation.

Each equation computes its whole output (every image of the batch) through a
helper of metacc.backend.conv_helpers, reading its operands in place. The
convolutions need scratch (one image's im2col, a transposed filter, a partial
filter sum): one workspace buffer per dtype shared by every convolution of the
kernel, as large as the largest needs (they never run at the same time), so a
call allocates nothing.

A call is written one argument group per line, so that generated lines stay short:

    conv2d_nhwc(x, x_at, w, 0, y, y_at, ws_f32, conv_scratch,
                n, size28, size28, size1, size3, size3, size64,    # n, h, w, c_in, kh, kw, c_out
                1, 1, 1, 1, size28, size28, 1)                      # strides, pad top/left, out h/w, images
"""
from __future__ import annotations

from metacc.backend.literals import lit
from metacc.ir.core import Eqn
from metacc.ir.types import TensorType

CONV_OWNING = frozenset({"conv2d", "conv2d_input_grad", "conv2d_filter_grad", "window_argmax",
                         "window_gather", "window_scatter", "avg_pool2d", "avg_pool2d_transpose"})


CHUNK_ROWS = 512      # rows of one im2col product: enough for the gemm's tiles, small enough for L2


def chunk_images(oh: int, ow: int) -> int:
    """Images per im2col product (the helpers take fewer at the end of the batch)."""
    return max(1, CHUNK_ROWS // (oh * ow))


def _kk(w_shape) -> int:
    kh, kw, ci, _ = w_shape
    return kh * kw * ci


def scratch_size(e: Eqn) -> int:
    """Elements of workspace scratch an equation needs (0: none)."""
    if e.prim == "conv2d":
        x, w = e.ins
        _, oh, ow, _ = e.outs[0].type.shape
        return col_size(oh, ow, w.type.shape)
    if e.prim == "conv2d_input_grad":
        g, w = e.ins
        return col_size(g.type.shape[1], g.type.shape[2], w.type.shape) + _kk(w.type.shape) * w.type.shape[3]
    if e.prim == "conv2d_filter_grad":
        _, g = e.ins
        wb = e.outs[0].type.shape
        return col_size(g.type.shape[1], g.type.shape[2], wb) + _kk(wb) * wb[3]
    if e.prim == "window_argmax":
        return e.ins[0].type.shape[3]          # the running maximum of each channel
    return 0


def col_size(oh: int, ow: int, w_shape) -> int:
    return chunk_images(oh, ow) * oh * ow * _kk(w_shape)


def scratch_type(dtype: str, size: int) -> TensorType:
    return TensorType(dtype, (size,))


class ConvLowering:
    """KernelWriter's emit_* methods for the family (it supplies loc, w, helpers, opaque_dim)."""

    def _call(self, helper: str, e: Eqn, groups: list[list[str]]) -> None:
        self.helpers.add(helper)
        dtype = next(v.type.dtype for v in (*e.outs, *e.ins) if v.type.is_float)
        self.links.add(f"{helper}_{dtype}")       # called by address (conv_extern.py)
        head = f"{helper}("
        pad = " " * len(head)
        for k, g in enumerate(groups):
            end = ")" if k == len(groups) - 1 else ","
            self.w.line((head if k == 0 else pad) + ", ".join(g) + end)

    def _at(self, a) -> list[str]:
        base, off = self.loc[a]
        return [base, off]

    def _sizes(self, *ds) -> list[str]:
        return [self.opaque_dim(d) for d in ds]

    def _scratch(self, e: Eqn, plan, extra: int = 0) -> list[str]:
        name = plan.scratch[e]
        off = name if not extra else f"{name} + {extra}"
        return [f"ws_{e.ins[0].type.dtype}", off]

    def _conv_geometry(self, e: Eqn, x_shape, w_shape, y_shape) -> list[list[str]]:
        n, h, wd, ci = x_shape
        kh, kw, _, co = w_shape
        _, oh, ow, _ = y_shape
        sh, sw = e.params["stride"]
        pt, _, pl, _ = e.params["pad"]
        return [self._sizes(n, h, wd, ci, kh, kw, co),
                [str(sh), str(sw), str(pt), str(pl)] + self._sizes(oh, ow) + [str(chunk_images(oh, ow))]]

    def emit_conv2d(self, e: Eqn, plan) -> None:
        x, w = e.ins
        y = e.outs[0]
        self._call("conv2d_nhwc", e, [self._at(x) + self._at(w) + self._at(y) + self._scratch(e, plan)]
                   + self._conv_geometry(e, x.type.shape, w.type.shape, y.type.shape))

    def emit_conv2d_input_grad(self, e: Eqn, plan) -> None:
        g, w = e.ins
        self._emit_conv_adjoint("conv2d_input_grad_nhwc", e, plan, image=e.outs[0], filt=w, g=g)

    def emit_conv2d_filter_grad(self, e: Eqn, plan) -> None:
        x, g = e.ins
        self._emit_conv_adjoint("conv2d_filter_grad_nhwc", e, plan, image=x, filt=e.outs[0], g=g)

    def _emit_conv_adjoint(self, helper: str, e: Eqn, plan, image, filt, g) -> None:
        """Both adjoints take (in0, in1, out) and two scratch areas: the shared one and an im2col
        matrix of the cotangent's output positions."""
        col = col_size(g.type.shape[1], g.type.shape[2], filt.type.shape)
        a, b = e.ins
        self._call(helper, e,
                   [self._at(a) + self._at(b) + self._at(e.outs[0]),
                    self._scratch(e, plan) + self._scratch(e, plan, col)]
                   + self._conv_geometry(e, image.type.shape, filt.type.shape, g.type.shape))

    def _pool_geometry(self, e: Eqn, x_shape, y_shape) -> list[list[str]]:
        n, h, wd, c = x_shape
        _, oh, ow, _ = y_shape
        wh, ww = e.params["window"]
        sh, sw = e.params["stride"]
        return [self._sizes(n, h, wd, c), [str(wh), str(ww), str(sh), str(sw)] + self._sizes(oh, ow)]

    def emit_window_argmax(self, e: Eqn, plan) -> None:
        (x,), idx = e.ins, e.outs[0]
        best = [f"ws_{x.type.dtype}", plan.scratch[e]]
        self._call("window_argmax_nhwc", e, [self._at(x) + self._at(idx) + best]
                   + self._pool_geometry(e, x.type.shape, idx.type.shape))

    def _index_sizes(self, image_shape, idx_shape) -> list[str]:
        n, h, wd, c = image_shape
        _, oh, ow, _ = idx_shape
        return self._sizes(n, h * wd, c, oh * ow)

    def emit_window_gather(self, e: Eqn, plan) -> None:
        x, idx = e.ins
        y = e.outs[0]
        self._call("window_gather_nhwc", e, [self._at(x) + self._at(idx) + self._at(y),
                                          self._index_sizes(x.type.shape, idx.type.shape)])

    def emit_window_scatter(self, e: Eqn, plan) -> None:
        g, idx = e.ins
        xb = e.outs[0]
        self._call("window_scatter_nhwc", e, [self._at(g) + self._at(idx) + self._at(xb),
                                           self._index_sizes(xb.type.shape, idx.type.shape)])

    def _scale(self, e: Eqn) -> str:
        wh, ww = e.params["window"]
        return lit(1.0 / (wh * ww), e.outs[0].type.dtype)

    def emit_avg_pool2d(self, e: Eqn, plan) -> None:
        (x,), y = e.ins, e.outs[0]
        self._call("avg_pool_nhwc", e, [self._at(x) + self._at(y)]
                   + self._pool_geometry(e, x.type.shape, y.type.shape) + [[self._scale(e)]])

    def emit_avg_pool2d_transpose(self, e: Eqn, plan) -> None:
        (g,), xb = e.ins, e.outs[0]
        self._call("avg_pool_t_nhwc", e, [self._at(g) + self._at(xb)]
                   + self._pool_geometry(e, xb.type.shape, g.type.shape) + [[self._scale(e)]])
