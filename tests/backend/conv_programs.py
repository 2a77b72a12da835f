"""IR programs of the convolution and pooling family for the backend tests.

Several strides, paddings and odd sizes in one function per configuration, so
that each costs one Numba compile per dtype; inputs named `spaced` get distinct
values (args_for in test_prims gives them no ties) for the max-pool argmax.
"""
from __future__ import annotations

from metacc.ir.builder import Builder
from metacc.ir.types import TensorType

# (image [h, w, c_in], filter [kh, kw, c_in, c_out], stride, pad (top, bottom, left, right))
CONV_CONFIGS = [
    ((5, 4, 3), (3, 2, 3, 2), (2, 1), (1, 0, 0, 1)),
    ((7, 7, 2), (3, 3, 2, 5), (1, 1), (1, 1, 1, 1)),       # 'same' 3x3
    ((6, 5, 1), (2, 3, 1, 3), (3, 2), (0, 0, 0, 0)),       # 'valid', strides past the edge
    ((4, 4, 9), (1, 1, 9, 17), (1, 1), (0, 0, 0, 0)),      # 1x1, more than two registers of c_out
    ((10, 20, 2), (3, 3, 2, 3), (1, 1), (1, 1, 1, 1)),     # 200 rows an image: 2 images a product, n=3 leaves 1
]
# (image [h, w, c], window, stride)
POOL_CONFIGS = [((5, 6, 2), (2, 3), (2, 1)), ((7, 7, 3), (2, 2), (2, 2)), ((4, 5, 9), (3, 3), (1, 1))]


def T(dt, *shape):
    return TensorType(dt, tuple(shape))


def conv_fn(dt, config=0):
    """conv2d and both adjoints for one configuration, then every pool (batch n symbolic)."""
    (h, w, ci), fshape, stride, pad = CONV_CONFIGS[config]
    b = Builder()
    x = b.input("x", T(dt, "n", h, w, ci))
    f = b.input("f", T(dt, *fshape))
    y = b.conv2d(x, f, stride=stride, pad=pad)
    g = b.input("g", T(dt, *y.type.shape))
    outs = [y, b.conv2d_input_grad(g, f, stride=stride, pad=pad, in_hw=(h, w)),
            b.conv2d_filter_grad(x, g, stride=stride, pad=pad, kernel=fshape[:2])]
    if config == 0:
        for k, (shape, window, pstride) in enumerate(POOL_CONFIGS):
            z = b.input("spaced", T(dt, "n", *shape))
            idx = b.window_argmax(z, window=window, stride=pstride)
            pooled = b.window_gather(z, idx)
            outs += [idx, pooled, b.window_scatter(b.sin(pooled), idx, in_hw=shape[:2])]
            avg = b.avg_pool2d(z, window=window, stride=pstride)
            outs += [avg, b.avg_pool2d_transpose(b.cos(avg), window=window, stride=pstride, in_hw=shape[:2])]
    return b.build(f"conv{config}", outs)
