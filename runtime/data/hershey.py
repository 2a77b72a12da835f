"""An Omniglot-like stand-in: characters of the Hershey stroke fonts, each drawn 20 ways.

NOT Omniglot. Omniglot (Lake et al. 2015) is 1,623 handwritten characters of 50
alphabets, each drawn once by 20 people. This set renders the glyphs of the 32
built-in fonts of the PyPI package Hershey-Fonts (MIT licence) as classes, and
makes 20 instances of each by seeded distortion, standing in for the 20 drawers:

- classes: every glyph with some extent (not a dot or a comma: those become blobs
  once scaled to fill the box), fonts as the groups ("alphabets"). The fonts repeat
  one another (light and medium weights of one face share letters; 'w' and 'W' are
  one shape once scaled), so glyphs whose plain rendering is nearly the same as an
  earlier glyph's (cosine similarity above DUPLICATE) are dropped: two classes no
  learner could tell apart would cap every accuracy below 100%.
- an instance: the glyph scaled to fill about 13 to 20 pixels of 28, then a random
  rotation, shear, per-axis scale and shift, a smooth random warp of its strokes
  plus a small wobble of every vertex (a drawer's hand), a random stroke width,
  and pixel noise. Ink 1 on 0, float32, 28x28x1 like Finn et al.'s Omniglot.

It differs from Omniglot: typeset rather than handwritten strokes (straighter lines,
uniform pen), distortions of one drawing rather than 20 independent drawings (the
instances of a class vary less than Omniglot's, so few-shot accuracy is expected to
be higher on it), fonts rather than alphabets (a font is a style of one alphabet),
and a different number of classes (CLASSES_NOTE). Deterministic from the seed: the
instances of class c come from np.random.default_rng([seed, c]) alone, so any subset
of classes renders exactly as it does in the whole set.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime.data import store
from metacc.runtime.data.extras import missing
from metacc.runtime.data.imageset import ImageSet
from metacc.runtime.data.raster import draw_segments

STANDIN_NAME = "hershey-omniglot-standin"
MIN_EXTENT = 6          # font units (a capital is about 21): smaller glyphs are dots, commas, quotes
DUPLICATE = 0.9         # cosine similarity of plain renderings above which a glyph repeats an earlier one
FORMAT = 1              # of the rendering: bump when anything below changes what is drawn


@dataclass(frozen=True)
class Glyph:
    font: str
    code: int                    # the character code the font file gives it
    points: np.ndarray           # [p, 2] vertices (x, y down), centred, largest extent 1
    segments: np.ndarray         # [s, 2] pairs of vertex indices (a lone vertex pairs with itself)


def _hershey():
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:
        raise missing("Hershey-Fonts", f"the {STANDIN_NAME} data set") from None
    return HersheyFonts


def _glyph(font: str, code: int, strokes) -> Glyph | None:
    pts = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not pts:
        return None
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    extent = float((hi - lo).max())
    if extent < MIN_EXTENT:
        return None
    pairs, base = [], 0
    for s in pts:
        idx = np.arange(base, base + len(s))
        pairs.append(np.stack([idx[:-1], idx[1:]], 1) if len(s) > 1 else np.stack([idx, idx], 1))
        base += len(s)
    return Glyph(font, code, (allp - (lo + hi) / 2) / extent, np.concatenate(pairs))


def _font_files(fonts) -> dict[str, list[bytes]] | None:
    """Each built-in font's lines, from one decompression of the package's archive. Its public
    load_default_font decompresses the whole bz2 archive once per font (2 of the 4 s of a cold
    load here); the archive is reached through a private name, so None (and the public path)
    when a future version renames it."""
    get = getattr(fonts(), "_HersheyFonts__get_compressed_font_bytes", None)
    if get is None:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(get()), mode="r") as archive:
            return {m.name: archive.extractfile(m).read().splitlines() for m in archive.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, AttributeError):
        return None


@lru_cache(maxsize=1)
def _all_glyphs() -> tuple[Glyph, ...]:
    """Every glyph of every built-in font with some extent, exact repeats dropped (fonts in package order)."""
    fonts = _hershey()
    names = fonts().default_font_names
    files = _font_files(fonts)
    seen, out = set(), []
    for font in names:
        f = fonts()
        if files is not None and font in files:
            f.read_from_string_lines(files[font])
        else:
            f.load_default_font(font)
        for char, g in f.all_glyphs.items():
            strokes = tuple(tuple(map(tuple, s)) for s in g.strokes)
            if strokes in seen:
                continue
            seen.add(strokes)
            glyph = _glyph(font, ord(char), g.strokes)
            if glyph is not None:
                out.append(glyph)
    return tuple(out)


def _draw(glyphs, transforms: list[np.ndarray], widths: list[np.ndarray], size: int) -> np.ndarray:
    """Images of glyphs[i] under each of its transforms[i] ([k, p, 2] pixel vertices)."""
    starts, ends, ws, owner, n = [], [], [], [], 0
    for g, pts, w in zip(glyphs, transforms, widths):
        k = len(pts)
        starts.append(pts[:, g.segments[:, 0]].reshape(-1, 2))
        ends.append(pts[:, g.segments[:, 1]].reshape(-1, 2))
        ws.append(np.repeat(w, len(g.segments)))
        owner.append(np.repeat(np.arange(n, n + k), len(g.segments)))
        n += k
    return draw_segments(np.concatenate(starts), np.concatenate(ends), np.concatenate(ws),
                         np.concatenate(owner), n, size)


@lru_cache(maxsize=1)
def classes() -> tuple[Glyph, ...]:
    """The stand-in's classes: the glyphs left after near-duplicates are dropped, in font order."""
    glyphs = _all_glyphs()
    size = 28
    plain = [(g.points * 20 + size / 2)[None] for g in glyphs]
    flat = _draw(glyphs, plain, [np.full(1, 2.0)] * len(glyphs), size).reshape(len(glyphs), -1)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    similar = unit @ unit.T > DUPLICATE
    keep = []
    for i in range(len(glyphs)):                 # greedy, in order: a loop over ~1,200 glyphs, not pixels
        if not any(similar[i, j] for j in keep):
            keep.append(i)
    return tuple(glyphs[i] for i in keep)


def _instances(g: Glyph, rng: np.random.Generator, k: int, size: int):
    """k distorted copies of g: pixel vertices [k, p, 2], stroke widths [k], noise levels [k]."""
    p = g.points
    # a smooth warp: each axis shifted by a sine of the other, random phase and frequency
    freq = rng.uniform(1.0, 3.0, (k, 1, 2))
    phase = rng.uniform(0, 2 * np.pi, (k, 1, 2))
    warp = 0.07 * np.sin(freq * 2 * np.pi * p[None, :, ::-1] + phase)
    wobble = rng.normal(0, 0.02, (k, len(p), 2))
    q = p[None] + warp + wobble
    angle = rng.uniform(-0.3, 0.3, k)            # about +-17 degrees
    shear = rng.uniform(-0.3, 0.3, k)
    scale = rng.uniform(13.0, 20.0, (k, 2))      # pixels for the glyph's largest extent, per axis
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)        # [k, 2, 2]
    sh = np.zeros((k, 2, 2))
    sh[:, 0, 0] = sh[:, 1, 1] = 1.0
    sh[:, 0, 1] = shear
    m = rot @ sh * scale[:, None, :]
    shift = size / 2 + rng.uniform(-2.5, 2.5, (k, 1, 2))
    pts = np.einsum("kij,kpj->kpi", m, q) + shift
    return pts, rng.uniform(1.0, 3.0, k), rng.uniform(0.0, 0.05, k)


def render(class_ids, seed: int = 0, instances: int = 20, size: int = 28) -> np.ndarray:
    """[len(class_ids) * instances, size, size] float32: class_ids[0]'s instances first."""
    glyphs = classes()
    ids = np.asarray(class_ids, np.int64)
    if ids.ndim != 1 or (ids.size and not (0 <= ids.min() and ids.max() < len(glyphs))):
        raise MetaccError(f"{STANDIN_NAME}: class ids must lie in 0..{len(glyphs) - 1}",
                          found=repr(ids.tolist())[:80])
    pts, widths, noise = [], [], []
    for c in ids.tolist():                       # one generator per class: subsets render as in the whole
        p, w, s = _instances(glyphs[c], np.random.default_rng([seed, c]), instances, size)
        pts.append(p)
        widths.append(w)
        noise.append(np.random.default_rng([seed, c, 1]).normal(size=(instances, size, size)) * s[:, None, None])
    ink = _draw([glyphs[c] for c in ids.tolist()], pts, widths, size)
    return np.clip(ink + np.concatenate(noise).astype(np.float32), 0.0, 1.0)


def _glyphs_digest(glyphs) -> str:
    h = hashlib.sha256()
    for g in glyphs:
        h.update(f"{g.font}:{g.code}:".encode() + g.points.tobytes() + g.segments.tobytes())
    return h.hexdigest()


def load_hershey_standin(seed: int = 0, instances: int = 20, size: int = 28, class_ids=None,
                         cache: bool = True) -> ImageSet:
    """The stand-in as an ImageSet named 'hershey-omniglot-standin': [C * instances, size, size, 1].

    class_ids picks some classes (relabelled 0..len-1 in the order given; not cached);
    by default all, cached under METACC_CACHE_DIR/data after the first render."""
    for name, v in (("seed", seed), ("instances", instances), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "seed" else 1):
            raise MetaccError(f"{STANDIN_NAME}: {name} must be a whole number", found=repr(v))
    glyphs = classes()
    ids = np.arange(len(glyphs)) if class_ids is None else np.asarray(class_ids, np.int64)
    if class_ids is None:
        key = {"format": FORMAT, "seed": int(seed), "instances": int(instances), "size": int(size),
               "glyphs": _glyphs_digest(glyphs)}
        name = f"{STANDIN_NAME}-seed{seed}-{instances}x{size}px"
        images = store.cached(name, key, lambda: render(ids, seed, instances, size), use_cache=cache)
    else:
        images = render(ids, seed, instances, size)
    fonts = sorted({g.font for g in glyphs})
    chosen = [glyphs[c] for c in ids.tolist()]
    return ImageSet(name=STANDIN_NAME, images=images[..., None],
                    labels=np.repeat(np.arange(len(ids), dtype=np.int64), instances),
                    class_names=tuple(f"{g.font}/{g.code}" for g in chosen),
                    groups=np.array([fonts.index(g.font) for g in chosen], np.int64), group_names=tuple(fonts))
