"""Reference implementations of the convolution and pooling family (NumPy).

The oracle for the compiled kernels, so written the obvious way and
independently of the backend: a loop over the kernel (or window) offsets, each
one an einsum over strided views of the zero-padded input. Params as in
metacc.ir.primitives.conv_types.
"""
from __future__ import annotations

import numpy as np


def _padded(x, pad):
    t, b, l, r = pad
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def _view(xp, i, j, oh, ow, stride):
    """xp[:, oh*sh + i, ow*sw + j, :] for every output position."""
    sh, sw = stride
    return xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def conv2d(x, w, *, stride, pad, **_):
    kh, kw, _, co = w.shape
    xp = _padded(x, pad)
    oh = (xp.shape[1] - kh) // stride[0] + 1
    ow = (xp.shape[2] - kw) // stride[1] + 1
    y = np.zeros((x.shape[0], oh, ow, co), dtype=np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nhwc,cd->nhwd", _view(xp, i, j, oh, ow, stride), w[i, j])
    return y


def conv2d_input_grad(g, w, *, stride, pad, in_hw, **_):
    kh, kw, ci, _ = w.shape
    t, b, l, r = pad
    n, oh, ow, _ = g.shape
    xp = np.zeros((n, in_hw[0] + t + b, in_hw[1] + l + r, ci), dtype=np.result_type(g, w))
    for i in range(kh):
        for j in range(kw):
            _view(xp, i, j, oh, ow, stride)[...] += np.einsum("nhwd,cd->nhwc", g, w[i, j])
    return xp[:, t:t + in_hw[0], l:l + in_hw[1], :].copy()


def conv2d_filter_grad(x, g, *, stride, pad, kernel, **_):
    kh, kw = kernel
    xp = _padded(x, pad)
    _, oh, ow, co = g.shape
    out = np.zeros((kh, kw, x.shape[3], co), dtype=np.result_type(x, g))
    for i in range(kh):
        for j in range(kw):
            out[i, j] = np.einsum("nhwc,nhwd->cd", _view(xp, i, j, oh, ow, stride), g)
    return out


def _windows(x, window, stride):
    """(offsets (di, dj) in row-major window order, oh, ow)."""
    oh = (x.shape[1] - window[0]) // stride[0] + 1
    ow = (x.shape[2] - window[1]) // stride[1] + 1
    return [(di, dj) for di in range(window[0]) for dj in range(window[1])], oh, ow


def window_argmax(x, *, window, stride, **_):
    offsets, oh, ow = _windows(x, window, stride)
    width = x.shape[2]
    rows = (np.arange(oh) * stride[0])[None, :, None, None]
    cols = (np.arange(ow) * stride[1])[None, None, :, None]
    # the running best starts at each window's first element; a strictly greater value
    # replaces it, so the first maximum in row-major window order wins a tie
    best = _view(x, 0, 0, oh, ow, stride)
    idx = np.broadcast_to(rows * width + cols, best.shape).astype(np.int64)
    for di, dj in offsets[1:]:
        v = _view(x, di, dj, oh, ow, stride)
        better = v > best
        best = np.where(better, v, best)
        idx = np.where(better, (rows + di) * width + cols + dj, idx)
    return idx


def window_gather(x, idx, **_):
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    return np.take_along_axis(flat, idx.reshape(n, -1, c), axis=1).reshape(idx.shape)


def window_scatter(g, idx, *, in_hw, **_):
    n, _, _, c = g.shape
    out = np.zeros((n, in_hw[0] * in_hw[1], c), dtype=g.dtype)
    ni = np.arange(n)[:, None, None]
    ci = np.arange(c)[None, None, :]
    np.add.at(out, (ni, idx.reshape(n, -1, c), ci), g.reshape(n, -1, c))
    return out.reshape(n, in_hw[0], in_hw[1], c)


def avg_pool2d(x, *, window, stride, **_):
    offsets, oh, ow = _windows(x, window, stride)
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for di, dj in offsets:
        y += _view(x, di, dj, oh, ow, stride)
    return y / len(offsets)


def avg_pool2d_transpose(g, *, window, stride, in_hw, **_):
    n, oh, ow, c = g.shape
    out = np.zeros((n, in_hw[0], in_hw[1], c), dtype=g.dtype)
    share = g / (window[0] * window[1])
    for di in range(window[0]):
        for dj in range(window[1]):
            _view(out, di, dj, oh, ow, stride)[...] += share
    return out
