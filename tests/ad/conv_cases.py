"""Rule-test cases of the convolution and pooling family (added to tests.ad.cases.CASES).

Odd sizes, unequal strides and asymmetric padding, so that a transposed index
or a swapped axis shows. Max-pool inputs have distinct values spaced far above
the finite-difference step, so no window's argmax moves under the probe.
"""
from __future__ import annotations

import numpy as np

from tests.ad.cases import Case, _single, normal

CONV = dict(stride=(2, 1), pad=(1, 0, 0, 1))     # x [2, 5, 4, 3], w [3, 2, 3, 2] -> y [2, 2, 4, 2]
POOL = dict(window=(2, 3), stride=(2, 1))        # x [2, 5, 6, 2] -> [2, 2, 4, 2]


def spaced(shape):
    """A random permutation of 0.05 * (0, 1, 2, ...): no ties, no near ties."""
    def gen(rng):
        n = int(np.prod(shape))
        return (rng.permutation(n).reshape(shape) - n / 2) * 0.05
    return gen


def _gen(shape):
    return lambda r: normal(r, shape)


def conv_cases() -> list[Case]:
    return [
        _single("conv2d", [(2, 5, 4, 3), (3, 2, 3, 2)], lambda b, x, w: b.sin(b.conv2d(x, w, **CONV))),
        _single("conv2d_input_grad", [(2, 2, 4, 2), (3, 2, 3, 2)],
                lambda b, g, w: b.sin(b.conv2d_input_grad(g, w, in_hw=(5, 4), **CONV))),
        _single("conv2d_filter_grad", [(2, 5, 4, 3), (2, 2, 4, 2)],
                lambda b, x, g: b.sin(b.conv2d_filter_grad(x, g, kernel=(3, 2), **CONV))),
        _single("max_pool2d", [(2, 5, 6, 2)],
                lambda b, x: b.sin(b.window_gather(x, b.window_argmax(x, **POOL))), gens=[spaced((2, 5, 6, 2))]),
        _single("window_scatter", [(2, 2, 4, 2), (2, 5, 6, 2)],
                lambda b, g, z: b.sin(b.window_scatter(g, b.window_argmax(z, **POOL), in_hw=(5, 6))),
                gens=[_gen((2, 2, 4, 2)), spaced((2, 5, 6, 2))], n_diff=1),
        _single("avg_pool2d", [(2, 5, 6, 2)], lambda b, x: b.sin(b.avg_pool2d(x, **POOL))),
        _single("avg_pool2d_transpose", [(2, 2, 4, 2)],
                lambda b, g: b.sin(b.avg_pool2d_transpose(g, in_hw=(5, 6), **POOL))),
    ]
