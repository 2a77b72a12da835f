"""conv2d forward + backward (both adjoints) at Conv4 sizes against the machine's GEMM rate.

    python benchmarks/conv_step.py [--reps 5] [--dtype f32]

One kernel per layer of the Omniglot Conv4 (Finn et al. 2017): a 5-way 1-shot task with
15 query images per class is 80 images; 3x3 convolutions with 64 filters, 'same' padding,
on 28x28x1, 14x14x64, 7x7x64 and 3x3x64 inputs. Each kernel computes y = conv2d(x, w),
x_bar = conv2d_input_grad(g, w) and w_bar = conv2d_filter_grad(x, g): the three
convolutions of one layer in a training step. Its multiply-adds are 3 x n*oh*ow*K*c_out
(K = 3*3*c_in), counted as 2 flops each. The GEMM rate is NumPy's float32 matmul of the same
[n*oh*ow, K] @ [K, c_out] products, and of 1024^3, timed in the same run, on one thread
(the kernels run one task per thread) and on all threads. Best of --reps repetitions.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from metacc.backend import load, lower
from metacc.ir.builder import Builder
from metacc.ir.types import TensorType

LAYERS = [(28, 1), (14, 64), (7, 64), (3, 64)]     # (h = w, c_in) of each block's conv; c_out 64
N, CO = 80, 64


def layer_fn(dt, h, ci):
    b = Builder()
    x = b.input("x", TensorType(dt, ("n", h, h, ci)))
    w = b.input("w", TensorType(dt, (3, 3, ci, CO)))
    g = b.input("g", TensorType(dt, ("n", h, h, CO)))
    prm = dict(stride=(1, 1), pad=(1, 1, 1, 1))
    return b.build(f"conv_{h}x{h}x{ci}", [b.conv2d(x, w, **prm), b.conv2d_input_grad(g, w, in_hw=(h, h), **prm),
                                          b.conv2d_filter_grad(x, g, kernel=(3, 3), **prm)])


def best(f, reps):
    f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_rate(m, k, n, dtype, reps):
    a = np.random.default_rng(0).normal(size=(m, k)).astype(dtype)
    bm = np.random.default_rng(1).normal(size=(k, n)).astype(dtype)
    return 2 * m * k * n / best(lambda: a @ bm, reps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtype", default="f32")
    args = ap.parse_args(argv)
    npdt = np.float32 if args.dtype == "f32" else np.float64
    rng = np.random.default_rng(0)
    cache = Path(os.environ.get("METACC_CACHE_DIR", tempfile.mkdtemp())) / "bench-conv"
    print(f"conv2d forward + backward, {N} images, {args.dtype}, best of {args.reps} repetitions")
    total_t = total_f = 0.0
    for h, ci in LAYERS:
        fn = layer_fn(args.dtype, h, ci)
        t0 = time.perf_counter()
        src = lower(fn).source
        mod = load(src, cache / fn.name)
        x = rng.normal(size=(N, h, h, ci)).astype(npdt)
        w = rng.normal(size=(3, 3, ci, CO)).astype(npdt)
        g = rng.normal(size=(N, h, h, CO)).astype(npdt)
        mod.ENTRY_CALL(x, w, g)
        build = time.perf_counter() - t0
        t = best(lambda: mod.ENTRY_CALL(x, w, g), args.reps)
        flops = 3 * 2 * N * h * h * 9 * ci * CO
        ref = gemm_rate(N * h * h, 9 * ci, CO, npdt, args.reps)
        total_t += t
        total_f += flops
        print(f"  {h:2d}x{h:<2d}x{ci:<2d}: {t * 1e3:7.2f} ms  {flops / t / 1e9:6.1f} GFLOP/s"
              f"   (NumPy same-shape GEMM {ref / 1e9:6.1f} GFLOP/s; build/load {build:.1f} s)")
    big = gemm_rate(1024, 1024, 1024, npdt, args.reps)
    print(f"  all four layers: {total_t * 1e3:.1f} ms, {total_f / 1e9:.2f} GFLOP, "
          f"{total_f / total_t / 1e9:.1f} GFLOP/s")
    print(f"  NumPy {args.dtype} matmul 1024^3: {big / 1e9:.1f} GFLOP/s "
          f"(threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}); "
          f"conv at {100 * total_f / total_t / big:.0f}% of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
