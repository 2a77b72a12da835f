"""Omniglot (Lake et al. 2015) from a local copy in its distributed layout, and Finn et al.'s split.

    DIR/images_background/<alphabet>/<character>/*.png    (30 alphabets, 964 characters)
    DIR/images_evaluation/<alphabet>/<character>/*.png    (20 alphabets, 659 characters)

that is, github.com/brendenlake/omniglot's python/images_background.zip and
images_evaluation.zip unzipped side by side; 20 PNGs of 105x105 (1-bit) per
character, one per drawer. Every character of both folders is a class (1,623 in
all), as in Finn et al. 2017. Images are resized to 28x28 by area averaging
(Finn et al. resized with PIL's Lanczos filter) and inverted to ink = 1 on 0,
as their loader does (1 - pixel / 255). Nothing is downloaded: the user points at
the folder (`--data DIR`). The decoded array is cached (runtime/data/store.py),
keyed by the folder and the names, sizes and times of its files.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime.data import store
from metacc.runtime.data.imageset import ImageSet
from metacc.runtime.data.png import read_grey
from metacc.runtime.data.resize import resize_area
from metacc.runtime.episodes import ClassSplit

SUBSETS = ("images_background", "images_evaluation")
LAYOUT = ("DIR/images_background/<alphabet>/<character>/*.png and "
          "DIR/images_evaluation/<alphabet>/<character>/*.png (Omniglot's images_background.zip "
          "and images_evaluation.zip unzipped into DIR)")
FORMAT = 1              # of the cached array: bump when decoding or resizing changes


def _layout_error(message: str, root: Path, hint: str | None = None) -> MetaccError:
    return MetaccError(f"Omniglot data folder {root}: {message}", expected=LAYOUT,
                       hint=hint or "point --data at the folder that holds images_background/ "
                                    "and images_evaluation/")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def characters(root: str | Path) -> list[tuple[str, str, str, list[Path]]]:
    """(subset, alphabet, character, PNG files) of every character under root, in name order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _layout_error("does not exist or is not a folder", root)
    present = [s for s in SUBSETS if (root / s).is_dir()]
    if not present:
        zips = sorted(p.name for p in root.glob("images_*.zip"))
        if zips:
            hint = f"unzip {' and '.join(zips)} in {root} first"
        elif any(_pngs(c) for a in _subdirs(root)[:3] for c in _subdirs(a)[:3]):
            hint = f"{root} looks like one of the two subsets itself: point --data at {root.parent}"
        else:
            hint = None
        raise _layout_error(f"has neither {SUBSETS[0]}/ nor {SUBSETS[1]}/", root, hint)
    found = []
    for subset in present:
        alphabets = _subdirs(root / subset)
        if not alphabets:
            raise _layout_error(f"{subset}/ has no alphabet folders", root)
        for alphabet in alphabets:
            chars = _subdirs(alphabet)
            if not chars:
                raise _layout_error(f"{alphabet} has no character folders", root)
            for char in chars:
                files = _pngs(char)
                if not files:
                    raise _layout_error(f"{char} has no .png files", root)
                found.append((subset, alphabet.name, char.name, files))
    return found


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())


def _fingerprint(root: Path, found) -> str:
    h = hashlib.sha256()
    for *_, files in found:
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode(files: list[Path], size: int, chunk: int = 1024) -> np.ndarray:
    """[n, size, size] ink in [0, 1]: read a chunk of files, resize those of one shape in one product
    (chunks keep the 105x105 pages of 32,460 files from filling memory at once)."""
    out = np.empty((len(files), size, size), np.float32)
    for lo in range(0, len(files), chunk):
        greys = [read_grey(f) for f in files[lo:lo + chunk]]
        shapes: dict[tuple, list[int]] = {}
        for i, g in enumerate(greys):
            shapes.setdefault(g.shape, []).append(i)
        for idx in shapes.values():
            out[[lo + i for i in idx]] = 1.0 - resize_area(np.stack([greys[i] for i in idx]), size, size)
    return out


def load_omniglot(root: str | Path, size: int = 28, cache: bool = True) -> ImageSet:
    """Omniglot under `root` as an ImageSet of [n, size, size, 1] float32 images (ink 1).

    Classes are the characters in (subset, alphabet, character) name order; groups are
    the alphabets (named subset/alphabet)."""
    root = Path(root).expanduser().resolve()
    found = characters(root)
    files = [f for *_, fs in found for f in fs]
    labels = np.repeat(np.arange(len(found), dtype=np.int64), [len(fs) for *_, fs in found])
    key = {"format": FORMAT, "size": int(size), "root": str(root), "files": _fingerprint(root, found)}
    name = "omniglot-" + hashlib.sha256(f"{root}\0{size}".encode()).hexdigest()[:16]
    images = store.cached(name, key, lambda: _decode(files, size), use_cache=cache)
    group_names = sorted({f"{s}/{a}" for s, a, _, _ in found})
    group_of = {g: i for i, g in enumerate(group_names)}
    return ImageSet(name="omniglot", images=images[..., None], labels=labels,
                    class_names=tuple(f"{s}/{a}/{c}" for s, a, c, _ in found),
                    groups=np.array([group_of[f"{s}/{a}"] for s, a, _, _ in found], np.int64),
                    group_names=tuple(group_names))


def finn_split(data: ImageSet, n_train: int = 1200, n_val: int = 100, seed: int = 1) -> ClassSplit:
    """Finn et al.'s Omniglot split (github.com/cbfinn/maml, data_generator.py).

    Their code lists every alphabet/character folder of both subsets, calls
    random.seed(1) and random.shuffle on the list, and takes the first 1,200 - 100 =
    1,100 characters for meta-training, the next 100 for meta-validation and the
    remaining 423 for meta-test. Their list comes from os.listdir, whose order is the
    file system's; here it is sorted by 'alphabet/character' first, then shuffled with
    random.Random(seed), the same generator and shuffle. n_val=0 gives all 1,200 to
    meta-training."""
    if data.name != "omniglot":
        raise MetaccError(f"finn_split: is a split of Omniglot's characters, not of {data.name}",
                          hint="use data.split(seed, n_val, n_test) for other image sets")
    if not 0 <= n_val < n_train < data.n_classes:
        raise MetaccError("finn_split: needs 0 <= n_val < n_train < the number of characters",
                          expected=f"n_train < {data.n_classes} characters", found=f"n_train={n_train}, n_val={n_val}",
                          hint="the full Omniglot (both subsets) has 1,623 characters")
    # 'alphabet/character' as in their merged folder; the subset breaks ties of equal names
    names = [(n.split("/", 1)[1], i) for i, n in enumerate(data.class_names)]
    order = [i for _, i in sorted(names)]
    random.Random(seed).shuffle(order)
    cut = n_train - n_val
    return ClassSplit(train=np.sort(order[:cut]), val=np.sort(order[cut:n_train]), test=np.sort(order[n_train:]))
