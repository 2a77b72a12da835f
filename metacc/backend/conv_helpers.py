"""Compiled helpers for the convolution and pooling family (metacc.ir.primitives.conv_types).

Arrays are 1-D and addressed as (array, offset), row-major, as everywhere in
the backend. Images are NHWC, filters [kh, kw, c_in, c_out], which row-major is
already the [kh * kw * c_in, c_out] matrix that an im2col product needs. Each
image goes through the register-tiled gemm of metacc.backend.helpers:

  conv2d            col[oh * ow, K] (im2col of one image) @ w[K, c_out]        K = kh * kw * c_in
  conv2d_input_grad g[oh * ow, c_out] @ wt[c_out, K], then col2im adds each row back
  conv2d_filter_grad col^T[K, oh * ow] @ g[oh * ow, c_out], summed over the images

The col / transposed-filter / partial-sum buffers are the caller's (workspace
slots of the buffer plan): no allocation per call. One image's col at a time
and `chunk` images per product (as many as make about CHUNK_ROWS rows: a 7x7 image
alone gives the gemm 49 rows, too few to keep its register tiles busy) keep that
workspace to chunk * oh * ow * K elements (Conv4: at most 512 x 576).
"""
from __future__ import annotations

from numba import njit

from metacc.backend.helpers import OPTS, gemm, ld, st


@njit(**OPTS)
def im2col(x, xo, col, cl, h, wd, ci, kh, kw, sh, sw, pt, pl, oh, ow):
    """col[(oy * ow + ox), (i * kw + j) * ci + c] = x_padded[oy * sh + i, ox * sw + j, c], one image."""
    kk = kh * kw * ci
    for oy in range(oh):
        for ox in range(ow):
            row = cl + (oy * ow + ox) * kk
            for i in range(kh):
                iy = oy * sh - pt + i
                for j in range(kw):
                    ix = ox * sw - pl + j
                    dst = row + (i * kw + j) * ci
                    if 0 <= iy < h and 0 <= ix < wd:
                        src = xo + (iy * wd + ix) * ci
                        for c in range(ci):
                            st(col, dst + c, ld(x, src + c))
                    else:
                        for c in range(ci):
                            st(col, dst + c, 0)


@njit(**OPTS)
def col2im(col, cl, x, xo, h, wd, ci, kh, kw, sh, sw, pt, pl, oh, ow):
    """The adjoint of im2col: x (zeroed by the caller) += each col entry at its image position."""
    kk = kh * kw * ci
    for oy in range(oh):
        for ox in range(ow):
            row = cl + (oy * ow + ox) * kk
            for i in range(kh):
                iy = oy * sh - pt + i
                if iy < 0 or iy >= h:
                    continue
                for j in range(kw):
                    ix = ox * sw - pl + j
                    if ix < 0 or ix >= wd:
                        continue
                    src = row + (i * kw + j) * ci
                    dst = xo + (iy * wd + ix) * ci
                    for c in range(ci):
                        st(x, dst + c, ld(x, dst + c) + ld(col, src + c))


@njit(**OPTS)
def conv2d_nhwc(x, xo, w, wo, y, yo, col, cl, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk):
    kk = kh * kw * ci
    p = oh * ow
    for b0 in range(0, n, chunk):
        nb = min(chunk, n - b0)
        for b in range(nb):
            im2col(x, xo + (b0 + b) * h * wd * ci, col, cl + b * p * kk, h, wd, ci, kh, kw, sh, sw, pt, pl, oh, ow)
        gemm(col, cl, kk, 1, w, wo, co, y, yo + b0 * p * co, co, nb * p, kk, co)


@njit(**OPTS)
def conv2d_input_grad_nhwc(g, go, w, wo, xb, xo, col, cl, wt, wl, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl,
                           oh, ow, chunk):
    kk = kh * kw * ci
    p = oh * ow
    for q in range(kk):                 # wt[c_out, K]: gemm wants its right operand's rows contiguous
        for d in range(co):
            st(wt, wl + d * kk + q, ld(w, wo + q * co + d))
    for i in range(n * h * wd * ci):
        st(xb, xo + i, 0)
    for b0 in range(0, n, chunk):
        nb = min(chunk, n - b0)
        gemm(g, go + b0 * p * co, co, 1, wt, wl, kk, col, cl, kk, nb * p, co, kk)
        for b in range(nb):
            col2im(col, cl + b * p * kk, xb, xo + (b0 + b) * h * wd * ci, h, wd, ci, kh, kw, sh, sw, pt, pl, oh, ow)


@njit(**OPTS)
def conv2d_filter_grad_nhwc(x, xo, g, go, wb, wbo, col, cl, part, pl_, n, h, wd, ci, kh, kw, co, sh, sw,
                            pt, pl, oh, ow, chunk):
    kk = kh * kw * ci
    p = oh * ow
    for i in range(kk * co):
        st(wb, wbo + i, 0)
    for b0 in range(0, n, chunk):
        nb = min(chunk, n - b0)
        for b in range(nb):
            im2col(x, xo + (b0 + b) * h * wd * ci, col, cl + b * p * kk, h, wd, ci, kh, kw, sh, sw, pt, pl, oh, ow)
        gemm(col, cl, 1, kk, g, go + b0 * p * co, co, part, pl_, co, kk, nb * p, co)
        for i in range(kk * co):
            st(wb, wbo + i, ld(wb, wbo + i) + ld(part, pl_ + i))


@njit(**OPTS)
def window_argmax_nhwc(x, xo, idx, io, best, bo, n, h, wd, c, wh, ww, sh, sw, oh, ow):
    """idx = position iy * wd + ix of each window's maximum; the first one in row-major window
    order wins a tie (a strict > against the running best, which starts at the window's first).
    The channels are the inner loop, so that it vectorises; best[bo:bo + c] holds their maxima."""
    for b in range(n):
        base = xo + b * h * wd * c
        for oy in range(oh):
            for ox in range(ow):
                out = io + ((b * oh + oy) * ow + ox) * c
                first = oy * sh * wd + ox * sw
                for ch in range(c):
                    st(best, bo + ch, ld(x, base + first * c + ch))
                    st(idx, out + ch, first)
                for di in range(wh):
                    for dj in range(ww):
                        pos = first + di * wd + dj
                        if di == 0 and dj == 0:
                            continue
                        src = base + pos * c
                        for ch in range(c):
                            v = ld(x, src + ch)
                            if v > ld(best, bo + ch):
                                st(best, bo + ch, v)
                                st(idx, out + ch, pos)


@njit(**OPTS)
def window_gather_nhwc(x, xo, idx, io, y, yo, n, plane, c, m):
    """y[b, k, ch] = x[b, idx[b, k, ch], ch] over m output positions per image."""
    for b in range(n):
        for k in range(m):
            r = (b * m + k) * c
            for ch in range(c):
                st(y, yo + r + ch, ld(x, xo + (b * plane + ld(idx, io + r + ch)) * c + ch))


@njit(**OPTS)
def window_scatter_nhwc(g, go, idx, io, xb, xo, n, plane, c, m):
    """xb = zeros, then xb[b, idx[b, k, ch], ch] += g[b, k, ch]."""
    for i in range(n * plane * c):
        st(xb, xo + i, 0)
    for b in range(n):
        for k in range(m):
            r = (b * m + k) * c
            for ch in range(c):
                at = xo + (b * plane + ld(idx, io + r + ch)) * c + ch
                st(xb, at, ld(xb, at) + ld(g, go + r + ch))


@njit(**OPTS)
def avg_pool_nhwc(x, xo, y, yo, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                out = yo + ((b * oh + oy) * ow + ox) * c
                for ch in range(c):
                    st(y, out + ch, 0)
                for di in range(wh):
                    for dj in range(ww):
                        src = xo + ((b * h + oy * sh + di) * wd + ox * sw + dj) * c
                        for ch in range(c):
                            st(y, out + ch, ld(y, out + ch) + ld(x, src + ch))
                for ch in range(c):
                    st(y, out + ch, ld(y, out + ch) * scale)


@njit(**OPTS)
def avg_pool_t_nhwc(g, go, xb, xo, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    for i in range(n * h * wd * c):
        st(xb, xo + i, 0)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                src = go + ((b * oh + oy) * ow + ox) * c
                for di in range(wh):
                    for dj in range(ww):
                        dst = xo + ((b * h + oy * sh + di) * wd + ox * sw + dj) * c
                        for ch in range(c):
                            st(xb, dst + ch, ld(xb, dst + ch) + ld(g, src + ch) * scale)


NAMES = ("im2col", "col2im", "conv2d_nhwc", "conv2d_input_grad_nhwc", "conv2d_filter_grad_nhwc",
         "window_argmax_nhwc", "window_gather_nhwc", "window_scatter_nhwc", "avg_pool_nhwc", "avg_pool_t_nhwc")


# ---- C entry points: kernels call these by address (metacc.backend.conv_extern) ----
#
# As for the matmuls (helpers.py's *_at wrappers): linked into every kernel, the
# helpers above (each with its own copy of the gemm) made a Conv4 MAML kernel take
# minutes in LLVM. Each wrapper takes data pointers already moved to the first
# element, and views them as arrays of their exact size.

from numba import carray  # noqa: E402


def conv2d_at(x, w, y, col, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk):
    kk = kh * kw * ci
    conv2d_nhwc(carray(x, n * h * wd * ci), 0, carray(w, kk * co), 0, carray(y, n * oh * ow * co), 0,
                carray(col, chunk * oh * ow * kk), 0, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk)


def conv2d_input_grad_at(g, w, xb, col, wt, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk):
    kk = kh * kw * ci
    conv2d_input_grad_nhwc(carray(g, n * oh * ow * co), 0, carray(w, kk * co), 0, carray(xb, n * h * wd * ci), 0,
                           carray(col, chunk * oh * ow * kk), 0, carray(wt, kk * co), 0,
                           n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk)


def conv2d_filter_grad_at(x, g, wb, col, part, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk):
    kk = kh * kw * ci
    conv2d_filter_grad_nhwc(carray(x, n * h * wd * ci), 0, carray(g, n * oh * ow * co), 0, carray(wb, kk * co), 0,
                            carray(col, chunk * oh * ow * kk), 0, carray(part, kk * co), 0,
                            n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk)


def window_argmax_at(x, idx, best, n, h, wd, c, wh, ww, sh, sw, oh, ow):
    window_argmax_nhwc(carray(x, n * h * wd * c), 0, carray(idx, n * oh * ow * c), 0, carray(best, c), 0,
                       n, h, wd, c, wh, ww, sh, sw, oh, ow)


def window_gather_at(x, idx, y, n, plane, c, m):
    window_gather_nhwc(carray(x, n * plane * c), 0, carray(idx, n * m * c), 0, carray(y, n * m * c), 0,
                       n, plane, c, m)


def window_scatter_at(g, idx, xb, n, plane, c, m):
    window_scatter_nhwc(carray(g, n * m * c), 0, carray(idx, n * m * c), 0, carray(xb, n * plane * c), 0,
                        n, plane, c, m)


def avg_pool_at(x, y, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    avg_pool_nhwc(carray(x, n * h * wd * c), 0, carray(y, n * oh * ow * c), 0,
                  n, h, wd, c, wh, ww, sh, sw, oh, ow, scale)


def avg_pool_t_at(g, xb, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    avg_pool_t_nhwc(carray(g, n * oh * ow * c), 0, carray(xb, n * h * wd * c), 0,
                    n, h, wd, c, wh, ww, sh, sw, oh, ow, scale)


# helper -> (its C wrapper, the argument layout the kernel passes: b a float buffer
# (array, offset), x an i64 buffer, i an integer, f a float of the buffers' dtype)
ENTRY_POINTS = {
    "conv2d_nhwc": (conv2d_at, "bbbb" + "i" * 14),
    "conv2d_input_grad_nhwc": (conv2d_input_grad_at, "bbbbb" + "i" * 14),
    "conv2d_filter_grad_nhwc": (conv2d_filter_grad_at, "bbbbb" + "i" * 14),
    "window_argmax_nhwc": (window_argmax_at, "bxb" + "i" * 10),
    "window_gather_nhwc": (window_gather_at, "bxb" + "i" * 4),
    "window_scatter_nhwc": (window_scatter_at, "bxb" + "i" * 4),
    "avg_pool_nhwc": (avg_pool_at, "bb" + "i" * 10 + "f"),
    "avg_pool_t_nhwc": (avg_pool_t_at, "bb" + "i" * 10 + "f"),
}
