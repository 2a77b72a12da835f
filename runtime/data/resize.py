"""Area (box) resampling: each output pixel is the mean of the input area it covers.

Written as two matrices, out = R_h @ image @ R_w^T, where R[i, j] is the fraction
of output pixel i's interval that input pixel j covers (105 -> 28 is 3.75 input
pixels per output pixel, so most output pixels straddle pixel boundaries). Rows
of R sum to 1, so a constant image stays constant and ink is conserved on average.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in]: the overlap of [i, i+1) * n_in / n_out with each input pixel [j, j+1)."""
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    hi = lo + scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / scale


def resize_area(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """images [..., h, w] -> [..., height, width] by area averaging (float64)."""
    x = np.asarray(images, np.float64)
    h, w = x.shape[-2:]
    lead = x.shape[:-2]
    # two plain matrix products over the whole stack (a stacked matmul would make one call per image)
    x = x.reshape(-1, w) @ area_matrix(w, width).T                                  # [..., h, width]
    x = x.reshape(-1, h, width).transpose(1, 0, 2).reshape(h, -1)
    x = (area_matrix(h, height) @ x).reshape(height, -1, width).transpose(1, 0, 2)   # [n, height, width]
    return x.reshape(*lead, height, width)
