"""Reading PNG files as greyscale with the standard library (zlib) and NumPy.

Omniglot ships 1-bit greyscale PNGs; this reads every non-interlaced PNG (greyscale
at 1, 2, 4, 8 or 16 bits, palette, RGB, with or without alpha), so that loading
Omniglot needs no image library. Colour becomes luminance (ITU-R 601 weights) and
transparency is composited on white, the colour of Omniglot's paper. The five
scanline filters of the PNG specification are undone: a file of None and Up rows
only (what Omniglot's files hold) all at once, others row by row, None, Sub and Up
with NumPy, Average and Paeth byte by byte (they depend on the byte just decoded).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from metacc.errors import MetaccError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}         # colour type -> samples per pixel
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
LUMA = np.array([0.299, 0.587, 0.114])


def _bad(path, why: str) -> MetaccError:
    return MetaccError(f"{path}: not a PNG this loader can read: {why}",
                       hint="re-extract the file from the original archive")


def _chunks(path, data: bytes):
    at = len(SIGNATURE)
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        crc = data[at + 8 + length:at + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise _bad(path, f"chunk {kind!r} is truncated or corrupt")
        yield kind, body
        if kind == b"IEND":
            return
        at += 12 + length
    raise _bad(path, "the file ends before its IEND chunk")


def _unfilter(path, raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    rows = np.frombuffer(raw, np.uint8)
    if rows.size != height * (stride + 1):
        raise _bad(path, f"{rows.size} bytes of pixel data, expected {height * (stride + 1)}")
    rows = rows.reshape(height, stride + 1)
    kinds = rows[:, 0]
    if np.all((kinds == 0) | (kinds == 2)):
        return _unfilter_up(rows[:, 1:], kinds == 0)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1 and stride % bpp == 0:        # Sub: a running sum per byte of the pixel, mod 256
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            cur = line + prev
        elif kind in (1, 3, 4):
            cur = _bytewise(kind, line, prev, bpp)
        else:
            raise _bad(path, f"unknown scanline filter {kind} in row {y}")
        out[y] = prev = cur
    return out


def _unfilter_up(lines: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Rows filtered with None or Up, all at once (the common case, and what Omniglot's files use):
    an Up row adds the row above, so a row is the sum mod 256 of the rows since the last None row."""
    total = np.cumsum(lines, axis=0, dtype=np.uint8)
    last = np.maximum.accumulate(np.where(reset, np.arange(len(lines)), 0))      # the last None row
    before = np.vstack([np.zeros((1, lines.shape[1]), np.uint8), total])[np.where(reset[last], last, 0)]
    return total - before


def _bytewise(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    cur = bytearray(len(line))
    up = prev.tolist()
    for i, v in enumerate(line.tolist()):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 1:
            pred = a
        elif kind == 3:
            pred = (a + b) // 2
        else:                                         # Paeth: the neighbour closest to a + b - c
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (v + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def _samples(flat: np.ndarray, height: int, width: int, channels: int, depth: int) -> np.ndarray:
    """Unfiltered bytes -> [height, width, channels] integer samples."""
    if depth == 16:
        return flat.view(">u2").reshape(height, width, channels)
    if depth == 8:
        return flat.reshape(height, width, channels)
    bits = np.unpackbits(flat, axis=1)               # MSB first, the PNG bit order
    per = bits.reshape(height, -1, depth)            # rows are padded to whole bytes
    values = (per * (1 << np.arange(depth - 1, -1, -1))).sum(axis=2)
    return values[:, :width, None]


def read_grey(path: str | Path) -> np.ndarray:
    """The image at `path` as float64 [height, width] in [0, 1] (0 black, 1 white)."""
    data = Path(path).read_bytes()
    if not data.startswith(SIGNATURE):
        raise _bad(path, "it does not start with the PNG signature")
    header, palette, idat = None, None, []
    for kind, body in _chunks(path, data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise _bad(path, "no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if colour not in CHANNELS or interlace:
        raise _bad(path, f"colour type {colour}, interlace {interlace} (only non-interlaced PNGs are read)")
    if depth not in DEPTHS[colour]:
        raise _bad(path, f"bit depth {depth} with colour type {colour} (the PNG specification allows "
                         f"{', '.join(map(str, DEPTHS[colour]))})")
    channels = CHANNELS[colour]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise _bad(path, f"the pixel data does not decompress ({err})") from None
    stride = (width * channels * depth + 7) // 8
    flat = _unfilter(path, raw, height, stride, max(1, channels * depth // 8))
    px = _samples(flat, height, width, channels, depth).astype(np.float64)
    if colour == 3:
        if palette is None:
            raise _bad(path, "a palette image without a PLTE chunk")
        index = px[..., 0].astype(np.int64)
        if index.max() >= len(palette):
            raise _bad(path, f"pixel colour {index.max()} beyond its palette of {len(palette)}")
        rgb = palette[index] / 255.0
        return rgb @ LUMA
    px /= (1 << depth) - 1
    grey = px[..., 0] if channels <= 2 else px[..., :3] @ LUMA
    if channels in (2, 4):                            # over white paper
        alpha = px[..., -1]
        grey = grey * alpha + (1.0 - alpha)
    return grey
