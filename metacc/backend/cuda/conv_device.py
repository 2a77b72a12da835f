"""Device versions of the convolution and pooling helpers (metacc.backend.conv_helpers).

The same names and arguments as the CPU helpers, so that the task body the CPU back end
lowers calls them unchanged: buffers are (array, offset) pairs, images NHWC, filters
[kh, kw, c_in, c_out]. The CPU helpers go through im2col and a tiled gemm; here a task is
one thread (metacc.backend.cuda.source), so each is a direct loop nest over the output and
the im2col / transposed-filter / partial-sum scratch they are handed is not used; the
convolution and both of its adjoints are one pass over the filter taps (`_taps`) that
writes a different one of its three buffers. Sums accumulate in the written buffer
itself, in its dtype (float32 stays float32).
"""
from __future__ import annotations

from numba import cuda


# which of the three buffers a pass over the filter taps writes (the other two are read)
FORWARD, INPUT_GRAD, FILTER_GRAD = 0, 1, 2


@cuda.jit(device=True)
def _taps(mode, img, io, flt, fo, grid, go, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow):
    """Every (output position, filter tap, c_in, c_out) pairing of a convolution, skipping the
    padding, with the image [n, h, wd, ci], the filter [kh, kw, ci, co] and the output grid
    [n, oh, ow, co]: mode FORWARD writes grid += img * flt (conv2d), INPUT_GRAD img += grid * flt
    (its adjoint in the image), FILTER_GRAD flt += img * grid (its adjoint in the filter).
    The written buffer is zeroed first."""
    if mode == FORWARD:
        for k in range(n * oh * ow * co):
            grid[go + k] = 0
    elif mode == INPUT_GRAD:
        for k in range(n * h * wd * ci):
            img[io + k] = 0
    else:
        for k in range(kh * kw * ci * co):
            flt[fo + k] = 0
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                at = go + ((b * oh + oy) * ow + ox) * co
                for i in range(kh):
                    iy = oy * sh - pt + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = ox * sw - pl + j
                        if ix < 0 or ix >= wd:
                            continue
                        src = io + ((b * h + iy) * wd + ix) * ci
                        tap = fo + (i * kw + j) * ci * co
                        for c in range(ci):
                            for d in range(co):
                                if mode == FORWARD:
                                    grid[at + d] += img[src + c] * flt[tap + c * co + d]
                                elif mode == INPUT_GRAD:
                                    img[src + c] += grid[at + d] * flt[tap + c * co + d]
                                else:
                                    flt[tap + c * co + d] += img[src + c] * grid[at + d]


@cuda.jit(device=True)
def conv2d_nhwc(x, xo, w, wo, y, yo, col, cl, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow, chunk):
    """y[b, oy, ox, d] = sum over (i, j, c) of x_padded[b, oy*sh - pt + i, ox*sw - pl + j, c] * w[i, j, c, d]."""
    _taps(FORWARD, x, xo, w, wo, y, yo, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow)


@cuda.jit(device=True)
def conv2d_input_grad_nhwc(g, go, w, wo, xb, xo, col, cl, wt, wl, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl,
                           oh, ow, chunk):
    """xb: the adjoint of conv2d in its input."""
    _taps(INPUT_GRAD, xb, xo, w, wo, g, go, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow)


@cuda.jit(device=True)
def conv2d_filter_grad_nhwc(x, xo, g, go, wb, wbo, col, cl, part, pl_, n, h, wd, ci, kh, kw, co, sh, sw,
                            pt, pl, oh, ow, chunk):
    """wb: the adjoint of conv2d in its filter."""
    _taps(FILTER_GRAD, x, xo, wb, wbo, g, go, n, h, wd, ci, kh, kw, co, sh, sw, pt, pl, oh, ow)


@cuda.jit(device=True)
def window_argmax_nhwc(x, xo, idx, io, best, bo, n, h, wd, c, wh, ww, sh, sw, oh, ow):
    """idx = position iy * wd + ix of each window's maximum; the first in row-major window order
    wins a tie, as on the CPU. best[bo:bo + c] holds the channels' running maxima."""
    for b in range(n):
        base = xo + b * h * wd * c
        for oy in range(oh):
            for ox in range(ow):
                out = io + ((b * oh + oy) * ow + ox) * c
                first = oy * sh * wd + ox * sw
                for ch in range(c):
                    best[bo + ch] = x[base + first * c + ch]
                    idx[out + ch] = first
                for di in range(wh):
                    for dj in range(ww):
                        if di == 0 and dj == 0:
                            continue
                        pos = first + di * wd + dj
                        for ch in range(c):
                            v = x[base + pos * c + ch]
                            if v > best[bo + ch]:
                                best[bo + ch] = v
                                idx[out + ch] = pos


@cuda.jit(device=True)
def window_gather_nhwc(x, xo, idx, io, y, yo, n, plane, c, m):
    """y[b, k, ch] = x[b, idx[b, k, ch], ch] over m output positions per image."""
    for b in range(n):
        for k in range(m):
            r = (b * m + k) * c
            for ch in range(c):
                y[yo + r + ch] = x[xo + (b * plane + idx[io + r + ch]) * c + ch]


@cuda.jit(device=True)
def window_scatter_nhwc(g, go, idx, io, xb, xo, n, plane, c, m):
    """xb = zeros, then xb[b, idx[b, k, ch], ch] += g[b, k, ch]."""
    for k in range(n * plane * c):
        xb[xo + k] = 0
    for b in range(n):
        for k in range(m):
            r = (b * m + k) * c
            for ch in range(c):
                xb[xo + (b * plane + idx[io + r + ch]) * c + ch] += g[go + r + ch]


@cuda.jit(device=True)
def avg_pool_nhwc(x, xo, y, yo, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                out = yo + ((b * oh + oy) * ow + ox) * c
                for ch in range(c):
                    y[out + ch] = 0
                for di in range(wh):
                    for dj in range(ww):
                        src = xo + ((b * h + oy * sh + di) * wd + ox * sw + dj) * c
                        for ch in range(c):
                            y[out + ch] += x[src + ch]
                for ch in range(c):
                    y[out + ch] *= scale


@cuda.jit(device=True)
def avg_pool_t_nhwc(g, go, xb, xo, n, h, wd, c, wh, ww, sh, sw, oh, ow, scale):
    for k in range(n * h * wd * c):
        xb[xo + k] = 0
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                src = go + ((b * oh + oy) * ow + ox) * c
                for di in range(wh):
                    for dj in range(ww):
                        dst = xo + ((b * h + oy * sh + di) * wd + ox * sw + dj) * c
                        for ch in range(c):
                            xb[dst + ch] += g[src + ch] * scale
