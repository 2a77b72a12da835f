"""Device functions that generated CUDA modules call, under the names the CPU back
end's task kernel uses (ld, st, copy_n, fill_n, mm_nn, ...), so that the one
task body lowered by metacc.backend.lower runs on the device unchanged.

Every buffer is an (array, offset) pair into a flat array, as on the CPU. The
matmuls here are plain loops, one thread computing the whole product: a task
is one thread (metacc.backend.cuda.source), and a dot product accumulates in
the order i, j, q like the CPU's reference loops, so f64 results agree with the
reference interpreter to rounding.

Also the launch-side kernels: the fixed-order reduction over tasks.

numba.cuda is imported here at module level: only generated CUDA modules and
the CUDA launcher import this module (numba-cuda is the optional extra `cuda`).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

# the convolution family's device helpers, importable from here as every other helper is
from metacc.backend.cuda.conv_device import (avg_pool_nhwc, avg_pool_t_nhwc, conv2d_filter_grad_nhwc,  # noqa: F401
                                             conv2d_input_grad_nhwc, conv2d_nhwc, window_argmax_nhwc,
                                             window_gather_nhwc, window_scatter_nhwc)
from metacc.backend.cuda.rng_device import fold, normal_f32, normal_f64, uniform_f32, uniform_f64  # noqa: F401

# what generated code may import from here is listed in metacc.backend.cuda.source
# (DEVICE_NAMES): anything else a kernel needs is refused before any source is written


@cuda.jit(device=True)
def ld(a, i):
    return a[i]


@cuda.jit(device=True)
def st(a, i, v):
    a[i] = v


@cuda.jit(device=True)
def copy_n(dst, d, src, s, n):
    for i in range(n):
        dst[d + i] = src[s + i]


@cuda.jit(device=True)
def fill_n(dst, d, n, value):
    for i in range(n):
        dst[d + i] = value


@cuda.jit(device=True)
def _mm(a, ao, sai, saq, b, bo, sbq, sbj, out, oo, m, kk, n):
    """out[m, n] = A @ B with A[i, q] at a[ao + i*sai + q*saq], B[q, j] at b[bo + q*sbq + j*sbj]."""
    for i in range(m):
        for j in range(n):
            if kk == 0:
                out[oo + i * n + j] = 0
                continue
            # the first product starts the sum: a literal 0 would make Numba sum float32 in float64
            s = a[ao + i * sai] * b[bo + j * sbj]
            for q in range(1, kk):
                s += a[ao + i * sai + q * saq] * b[bo + q * sbq + j * sbj]
            out[oo + i * n + j] = s


@cuda.jit(device=True)
def mm_nn(a, ao, b, bo, out, oo, m, kk, n):
    _mm(a, ao, kk, 1, b, bo, n, 1, out, oo, m, kk, n)


@cuda.jit(device=True)
def mm_tn(x, xo, b, bo, out, oo, m, kk, n):
    _mm(x, xo, 1, m, b, bo, n, 1, out, oo, m, kk, n)


@cuda.jit(device=True)
def mm_nt(a, ao, w, wo, out, oo, m, kk, n):
    _mm(a, ao, kk, 1, w, wo, 1, kk, out, oo, m, kk, n)


@cuda.jit(device=True)
def mm_tt(x, xo, w, wo, out, oo, m, kk, n):
    _mm(x, xo, 1, m, w, wo, 1, kk, out, oo, m, kk, n)


# the scalar functions of metacc.backend.helpers, written for the device: the same
# stable forms, one per dtype so that float32 stays float32
@cuda.jit(device=True)
def sigmoid_f64(x):
    e = np.exp(-np.abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@cuda.jit(device=True)
def sigmoid_f32(x):
    e = np.exp(-np.abs(x))
    one = np.float32(1.0)
    return one / (one + e) if x >= np.float32(0.0) else e / (one + e)


@cuda.jit(device=True)
def softplus_f64(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


@cuda.jit(device=True)
def softplus_f32(x):
    return np.maximum(x, np.float32(0.0)) + np.log1p(np.exp(-np.abs(x)))


# ---- launch side ----

THREADS = 32        # tasks per block: a task is one thread


def blocks(n: int) -> int:
    return max(1, (n + THREADS - 1) // THREADS)


@cuda.jit
def sum_rows(rows, n_tasks, width, div, out):
    """out[j] = (rows[0, j] + rows[1, j] + ... in task order) / div: one thread per
    element, the tasks added in a fixed order, so the result is the same run to run
    (and the CPU back end's order: NumPy's row-by-row sum over axis 0)."""
    j = cuda.grid(1)
    if j < width:
        s = rows[j]
        for t in range(1, n_tasks):
            s += rows[t * width + j]
        out[j] = s / div
