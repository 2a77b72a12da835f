"""Compiled helpers for the convolution and pooling family (metacc.ir.conv_types).

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
def window_argmax_nhwc(x, xo, idx, io, n, h, wd, c, wh, ww, sh, sw, oh, ow):
    """idx = position iy * wd + ix of each window's maximum; the first one in row-major window
    order wins a tie (a strict > against the running best, which starts at the window's first)."""
    for b in range(n):
        base = xo + b * h * wd * c
        for oy in range(oh):
            for ox in range(ow):
                out = io + ((b * oh + oy) * ow + ox) * c
                for ch in range(c):
                    y0, x0 = oy * sh, ox * sw
                    best = ld(x, base + (y0 * wd + x0) * c + ch)
                    bi = y0 * wd + x0
                    for di in range(wh):
                        for dj in range(ww):
                            pos = (y0 + di) * wd + x0 + dj
                            v = ld(x, base + pos * c + ch)
                            if v > best:
                                best = v
                                bi = pos
                    st(idx, out + ch, bi)


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
