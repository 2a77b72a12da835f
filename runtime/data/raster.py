"""Drawing line segments into greyscale images with NumPy: anti-aliased strokes of a given width.

A pixel's ink from one segment is clip(width / 2 + 0.5 - distance, 0, 1), the
distance from the pixel's centre to the segment: full ink inside the stroke, a
one-pixel ramp at its edge (anti-aliasing), none beyond. An image's ink is the
maximum over its segments, so crossing strokes do not add up past 1.

Only the pixels a segment can reach are computed: segments are cut into pieces
at most PIECE pixels long, and each piece is evaluated on the square window of
pixels around its midpoint that holds every pixel it can ink, then scattered into
its image with np.maximum.at. At 28x28 that is about 100 pixels per piece instead
of 784, with no Python loop per image or per segment.
"""
from __future__ import annotations

import math

import numpy as np

PIECE = 4.0              # pixels: the longest piece a segment is cut into
CHUNK = 1 << 22          # (piece, pixel) pairs per chunk: about 16 MB for each float32 temporary


def _pieces(starts, ends, widths, owner):
    """Segments cut into pieces of at most PIECE pixels (a zero-length segment stays one piece)."""
    length = np.hypot(*(ends - starts).T)
    n = np.maximum(1, np.ceil(length / PIECE)).astype(np.int64)
    seg = np.repeat(np.arange(len(starts)), n)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)        # piece index within its segment
    f0, f1 = (k / n[seg])[:, None], ((k + 1) / n[seg])[:, None]
    d = ends[seg] - starts[seg]
    return starts[seg] + f0 * d, starts[seg] + f1 * d, widths[seg], owner[seg]


def draw_segments(starts: np.ndarray, ends: np.ndarray, widths: np.ndarray, owner: np.ndarray,
                  n_images: int, size: int) -> np.ndarray:
    """[n_images, size, size] float32 ink from segments starts[m] -> ends[m] ((x, y) in pixels,
    y down, (0, 0) the top-left corner), widths[m] in pixels, drawn into image owner[m]
    (a single point is a segment from it to itself: a round dot)."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    widths, owner = np.asarray(widths, np.float64), np.asarray(owner, np.int64)
    out = np.zeros(n_images * size * size, np.float32)
    if not len(starts):
        return out.reshape(n_images, size, size)
    a, b, w, img = _pieces(starts, ends, widths, owner)
    # a pixel centre within reach = PIECE / 2 + width / 2 + 0.5 of the midpoint on each axis; the
    # window starts at floor(mid - side / 2), so side >= 2 * reach + 3 holds all of them
    side = math.ceil(PIECE + float(w.max()) + 1.0 + 3.0)
    dy, dx = np.divmod(np.arange(side * side), side)
    gx, gy = (dx + 0.5).astype(np.float32), (dy + 0.5).astype(np.float32)     # pixel centres in a window
    origin = np.floor((a + b) / 2 - side / 2).astype(np.int64)              # [m, 2] (x, y)
    # the piece in window coordinates, so that the big arrays are built from small ones only
    a_in = (a - origin).astype(np.float32)
    e = (b - a).astype(np.float32)
    reach = (w * 0.5 + 0.5).astype(np.float32)
    per_chunk = max(1, CHUNK // (side * side))
    for lo in range(0, len(a), per_chunk):
        hi = min(lo + per_chunk, len(a))
        ux, uy = gx - a_in[lo:hi, :1], gy - a_in[lo:hi, 1:]                 # [m, side * side]
        ex, ey = e[lo:hi, :1], e[lo:hi, 1:]
        t = (ux * ex + uy * ey) / np.maximum(ex * ex + ey * ey, np.float32(1e-12))
        np.clip(t, 0.0, 1.0, out=t)
        ux -= t * ex
        uy -= t * ey
        ink = reach[lo:hi, None] - np.hypot(ux, uy)
        col = origin[lo:hi, :1] + dx
        row = origin[lo:hi, 1:] + dy
        inside = (ink > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
        where = (img[lo:hi, None] * size + row) * size + col
        np.maximum.at(out, where[inside], np.minimum(ink[inside], 1.0))
    return out.reshape(n_images, size, size)
