"""Image sets (runtime/data/): the PNG reader, area resizing, the Omniglot loader on a fixture in the
distributed layout that the test writes, Finn et al.'s split, the digits, the Hershey stand-in, the cache."""
from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from metacc.errors import MetaccError
from metacc.runtime.data import STANDIN_NAME, finn_split, load_digits, load_hershey_standin, load_omniglot, store
from metacc.runtime.data.png import read_grey
from metacc.runtime.data.resize import resize_area


# --- writing PNGs, independently of the reader: the forward filters of the PNG specification ---

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, v in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((v - pred) % 256)
    return bytes([kind]) + bytes(out)


def write_png(path: Path, pixels: np.ndarray, depth: int, colour: int = 0, filters=(0,)) -> None:
    """pixels [h, w] (or [h, w, ch]) integer samples; rows filtered with filters[y % len(filters)]."""
    px = pixels if pixels.ndim == 3 else pixels[..., None]
    h, w, ch = px.shape
    if depth < 8:
        bits = ((px[..., 0, None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(h, w * depth)
        rows = [np.packbits(r).tobytes() for r in bits.astype(np.uint8)]
    else:
        rows = [r.astype(">u2" if depth == 16 else np.uint8).tobytes() for r in px.reshape(h, w * ch)]
    bpp = max(1, ch * depth // 8)
    raw, prev = b"", bytes(len(rows[0]))
    for y, r in enumerate(rows):
        raw += _filter(filters[y % len(filters)], r, prev, bpp)
        prev = r

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("filters", [(0, 1, 2, 3, 4), (2, 2, 0, 2, 2, 2, 0), (0,)])
def test_the_png_reader_undoes_every_filter_at_every_grey_depth(tmp_path, depth, filters):
    rng = np.random.default_rng(depth)
    pixels = rng.integers(0, 2 ** depth, size=(9, 13))
    write_png(tmp_path / "a.png", pixels, depth, filters=filters)
    assert np.array_equal(read_grey(tmp_path / "a.png"), pixels / (2 ** depth - 1))


def test_the_png_reader_turns_colour_and_alpha_into_grey(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, size=(6, 7, 4))
    write_png(tmp_path / "c.png", rgba, 8, colour=6, filters=(4, 3, 1))
    rgb, alpha = rgba[..., :3] / 255.0, rgba[..., 3] / 255.0
    want = (rgb @ [0.299, 0.587, 0.114]) * alpha + (1 - alpha)
    assert np.allclose(read_grey(tmp_path / "c.png"), want, atol=1e-12)


def test_the_png_reader_agrees_with_pillow(tmp_path):
    image = pytest.importorskip("PIL.Image")
    bits = np.random.default_rng(1).random((105, 105)) > 0.3
    image.fromarray(bits).save(tmp_path / "bits.png")          # mode '1': Omniglot's kind of file
    grey = (np.random.default_rng(2).random((20, 31)) * 255).astype(np.uint8)
    image.fromarray(grey).save(tmp_path / "grey.png", optimize=True)
    image.fromarray(grey).convert("P").save(tmp_path / "pal.png")
    assert np.array_equal(read_grey(tmp_path / "bits.png"), bits.astype(float))
    assert np.array_equal(read_grey(tmp_path / "grey.png"), grey / 255.0)
    pal = np.asarray(image.open(tmp_path / "pal.png").convert("RGB")) / 255.0 @ [0.299, 0.587, 0.114]
    assert np.allclose(read_grey(tmp_path / "pal.png"), pal)


def test_a_damaged_png_is_named(tmp_path):
    write_png(tmp_path / "a.png", np.ones((4, 4), int), 1)
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[40] ^= 0xFF
    (tmp_path / "a.png").write_bytes(bytes(data))
    with pytest.raises(MetaccError, match="a.png.*corrupt"):
        read_grey(tmp_path / "a.png")
    write_png(tmp_path / "b.png", np.ones((4, 4), int), 3)            # no PNG has 3-bit samples
    with pytest.raises(MetaccError, match="bit depth 3"):
        read_grey(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"GIF89a")
    with pytest.raises(MetaccError, match="c.png.*PNG signature"):
        read_grey(tmp_path / "c.png")


def test_area_resizing_averages_blocks_and_keeps_the_ink():
    x = np.random.default_rng(3).random((2, 8, 12))
    blocks = x.reshape(2, 4, 2, 4, 3).mean(axis=(2, 4))       # an integer factor: plain block means
    assert np.allclose(resize_area(x, 4, 4), blocks)
    big = np.random.default_rng(4).random((105, 105))
    small = resize_area(big, 28, 28)
    assert np.isclose(small.sum() * (105 / 28) ** 2, big.sum())
    assert np.allclose(resize_area(np.full((105, 105), 0.25), 28, 28), 0.25)


# --- Omniglot: a fixture in the distributed layout ---

FIXTURE = {"images_background": {"Alpha": 3, "Beta": 2}, "images_evaluation": {"Gamma": 3}}
DRAWERS = 4


def _drawing(char: int, drawer: int) -> np.ndarray:
    """A 105x105 1-bit page, white (1) with a black bar whose place says the character and drawer."""
    page = np.ones((105, 105), np.int64)
    page[10 * char:10 * char + 15, 5 * drawer:5 * drawer + 40] = 0
    return page


def _omniglot_fixture(root: Path) -> Path:
    n = 0
    for subset, alphabets in FIXTURE.items():
        for alphabet, count in alphabets.items():
            for c in range(count):
                folder = root / subset / alphabet / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                for d in range(DRAWERS):
                    write_png(folder / f"{1000 + n:04d}_{d + 1:02d}.png", _drawing(n, d), 1, filters=(0, 2))
                n += 1
    return root


@pytest.fixture(scope="module")
def omniglot_dir(tmp_path_factory) -> Path:
    return _omniglot_fixture(tmp_path_factory.mktemp("omniglot"))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METACC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


def test_the_omniglot_loader_reads_the_distributed_layout(omniglot_dir, private_cache):
    data = load_omniglot(omniglot_dir)
    assert data.name == "omniglot" and data.images.shape == (8 * DRAWERS, 28, 28, 1)
    assert data.images.dtype == np.float32 and data.labels.dtype == np.int64
    assert data.class_names[0] == "images_background/Alpha/character01"
    assert data.class_names[-1] == "images_evaluation/Gamma/character03"
    assert data.group_names == ("images_background/Alpha", "images_background/Beta", "images_evaluation/Gamma")
    assert data.groups.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert np.array_equal(data.labels, np.repeat(np.arange(8), DRAWERS))
    # ink is 1 - the page, area-resized: each image's mean ink is the bar's share of the page
    for i in (0, 9, 31):
        c, d = divmod(i, DRAWERS)
        want = 1 - resize_area(_drawing(c, d).astype(float), 28, 28)
        assert np.allclose(data.images[i, :, :, 0], want, atol=1e-6)
    assert list(private_cache.glob("omniglot-*.npy"))                 # cached for the next load
    again = load_omniglot(omniglot_dir)
    assert np.array_equal(again.images, data.images)


def test_a_damaged_cache_entry_is_rebuilt_not_served(omniglot_dir, private_cache):
    first = load_omniglot(omniglot_dir)
    (entry,) = private_cache.glob("omniglot-*.npy")
    raw = bytearray(entry.read_bytes())
    raw[-5] ^= 0x7F
    entry.write_bytes(bytes(raw))
    assert np.array_equal(load_omniglot(omniglot_dir).images, first.images)


def test_a_wrong_omniglot_folder_is_named_with_the_expected_layout(tmp_path, omniglot_dir):
    with pytest.raises(MetaccError, match="does not exist") as info:
        load_omniglot(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value) and "images_background/<alphabet>" in str(info.value)
    with pytest.raises(MetaccError, match="has neither images_background") as info:
        load_omniglot(omniglot_dir / "images_background")
    assert f"point --data at {omniglot_dir}" in str(info.value)
    (tmp_path / "zipped").mkdir()
    (tmp_path / "zipped" / "images_background.zip").write_bytes(b"")
    with pytest.raises(MetaccError, match="unzip images_background.zip"):
        load_omniglot(tmp_path / "zipped")
    (tmp_path / "empty" / "images_background" / "Alpha" / "character01").mkdir(parents=True)
    with pytest.raises(MetaccError, match="character01 has no .png files"):
        load_omniglot(tmp_path / "empty")


def test_finn_split_is_their_seeded_shuffle_of_the_characters(omniglot_dir, private_cache):
    data = load_omniglot(omniglot_dir)
    split = finn_split(data, n_train=6, n_val=2)
    assert [len(split.train), len(split.val), len(split.test)] == [4, 2, 2]
    # their procedure on 'alphabet/character' names: random.seed(1), random.shuffle, cut
    names = sorted(n.split("/", 1)[1] for n in data.class_names)
    rng = random.Random(1)
    rng.shuffle(names)
    index = {n.split("/", 1)[1]: i for i, n in enumerate(data.class_names)}
    assert split.train.tolist() == sorted(index[n] for n in names[:4])
    assert split.test.tolist() == sorted(index[n] for n in names[6:])
    assert finn_split(data, n_train=6, n_val=2) == split
    with pytest.raises(MetaccError, match="1,623 characters"):
        finn_split(data)                            # the defaults need the whole Omniglot


# --- data from the package registry ---

def test_the_digits_loader_gives_sklearns_digits_as_ink_in_0_1():
    datasets = pytest.importorskip("sklearn.datasets")
    data = load_digits()
    assert data.name == "sklearn-digits" and data.images.shape == (1797, 8, 8, 1) and data.n_classes == 10
    assert np.array_equal(data.images[..., 0] * 16, datasets.load_digits().images)
    assert np.bincount(data.labels).min() >= 170
    t = data.episodes(ways=5, shots=1, queries=5).sample(np.random.default_rng(0), 3)
    assert t["support"]["x"].shape == (3, 5, 8, 8, 1)


@pytest.fixture(scope="module")
def standin():
    pytest.importorskip("HersheyFonts")
    return load_hershey_standin(seed=0, instances=20, class_ids=range(0, 900, 45))


def test_the_standin_is_named_a_standin_with_many_classes(standin):
    from metacc.runtime.data.hershey import classes
    assert standin.name == STANDIN_NAME == "hershey-omniglot-standin" and "omniglot" != standin.name
    assert len(classes()) > 800                     # Omniglot has 1,623; the stand-in has what its fonts give
    assert standin.images.shape == (20 * 20, 28, 28, 1) and standin.images.dtype == np.float32
    assert 0.0 <= standin.images.min() and standin.images.max() <= 1.0
    ink = standin.images.reshape(20, 20, -1).mean(axis=2)
    assert np.all(ink > 0.03) and np.all(ink < 0.6)                  # every instance has strokes, none is a blot


def test_the_standin_renders_deterministically_from_the_seed(standin):
    again = load_hershey_standin(seed=0, instances=20, class_ids=range(0, 900, 45))
    assert np.array_equal(again.images, standin.images)
    # a class renders the same alone as among others: its instances depend on (seed, class) only
    alone = load_hershey_standin(seed=0, instances=20, class_ids=[90])
    assert np.array_equal(alone.images, standin.images[40:60])
    other = load_hershey_standin(seed=1, instances=20, class_ids=[90])
    assert not np.allclose(other.images, alone.images)


def test_the_standins_instances_vary_and_its_classes_differ(standin):
    x = standin.images.reshape(400, -1).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    same = standin.labels[:, None] == standin.labels[None, :]
    off = ~np.eye(400, dtype=bool)
    assert cos[same & off].max() < 0.999                                 # no two instances alike
    assert cos[same & off].mean() > cos[~same].mean() + 0.05             # closer within a class than across
    np.fill_diagonal(cos, -2.0)
    nearest = standin.labels[np.argmax(cos, axis=1)]
    assert np.mean(nearest == standin.labels) > 0.5                      # 20 classes: chance is 0.05


def test_standin_episodes_with_rotations(standin):
    split = standin.split(seed=0, n_val=4, n_test=4)
    ep = standin.episodes(split.train, ways=5, shots=1, queries=3, rotations=True)
    draw = ep.draw(np.random.default_rng(0), 8)
    t = ep.tasks_for(draw)
    assert t["query"]["x"].shape == (8, 15, 28, 28, 1) and set(np.unique(draw.classes // 4)) <= set(split.train)


def test_the_cache_serves_only_a_whole_matching_entry(private_cache):
    built = []

    def build():
        built.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    key = {"format": 1, "n": 3}
    first = store.cached("thing", key, build)
    assert np.array_equal(store.cached("thing", key, build), first) and len(built) == 1
    store.cached("thing", {"format": 2, "n": 3}, build)                 # another key: built again
    assert len(built) == 2
    (private_cache / "thing.json").write_text("{not json")
    assert np.array_equal(store.cached("thing", {"format": 2, "n": 3}, build), first) and len(built) == 3
    assert not list(private_cache.glob(".tmp-*"))


@pytest.mark.slow
def test_the_whole_standin_renders_and_caches(private_cache):
    pytest.importorskip("HersheyFonts")
    data = load_hershey_standin()
    assert data.images.shape[0] == 20 * data.n_classes and list(private_cache.glob(f"{STANDIN_NAME}-*.npy"))
    assert np.array_equal(load_hershey_standin().images, data.images)


def _ink_brute_force(starts, ends, widths, owner, n_images, size):
    """The stroke model written out: every segment against every pixel centre, one segment at a time."""
    out = np.zeros((n_images, size, size))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for a, b, w, i in zip(starts, ends, widths, owner):
        d = b - a
        t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
        dist = np.hypot(xx - a[0] - t * d[0], yy - a[1] - t * d[1])
        out[i] = np.maximum(out[i], np.clip(w / 2 + 0.5 - dist, 0, 1))
    return out


def test_the_windowed_rasteriser_inks_exactly_what_every_pixel_would_get():
    from metacc.runtime.data.raster import draw_segments
    rng = np.random.default_rng(5)
    m = 60
    starts = rng.uniform(-3, 15, (m, 2))
    ends = starts + rng.normal(0, 5, (m, 2))                 # long and short, some leaving the image
    ends[:5] = starts[:5]                                    # dots
    widths = rng.uniform(0.8, 3.0, m)
    owner = np.sort(rng.integers(0, 4, m))
    got = draw_segments(starts, ends, widths, owner, 5, 12)
    want = _ink_brute_force(starts, ends, widths, owner, 5, 12)
    assert np.allclose(got, want, atol=1e-5) and not got[4].any() and got[:4].max() == 1.0


def test_fewshot_data_names_a_missing_data_folder(tmp_path):
    from metacc.runtime.data import fewshot_data
    with pytest.raises(MetaccError, match="Omniglot data folder .*nowhere"):
        fewshot_data(tmp_path / "nowhere")


@pytest.mark.slow
def test_fewshot_data_defaults_to_the_standin_with_a_finn_sized_split(private_cache):
    pytest.importorskip("HersheyFonts")
    from metacc.runtime.data import fewshot_data
    data, split = fewshot_data()
    assert data.name == STANDIN_NAME
    assert abs(len(split.test) / data.n_classes - 423 / 1623) < 0.01 and len(split.val) > 0


@pytest.mark.slow
def test_reading_the_font_archive_once_gives_the_glyphs_of_the_public_loader(monkeypatch):
    pytest.importorskip("HersheyFonts")
    from metacc.runtime.data import hershey
    fast = hershey._all_glyphs()
    hershey._all_glyphs.cache_clear()
    monkeypatch.setattr(hershey, "_font_files", lambda fonts: None)
    try:
        public = hershey._all_glyphs()
    finally:
        hershey._all_glyphs.cache_clear()
    assert [(g.font, g.code) for g in fast] == [(g.font, g.code) for g in public]
    assert all(np.array_equal(a.points, b.points) and np.array_equal(a.segments, b.segments)
               for a, b in zip(fast, public))


def test_the_episode_example_of_docs_data_md_runs_as_written():
    pytest.importorskip("sklearn")
    import re
    text = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    scope: dict = {}
    exec(compile(code, "docs/data.md", "exec"), scope)
    assert scope["tasks"]["support"]["x"].shape == (32, 5, 8, 8, 1)
    assert scope["tasks"]["query"]["x"].shape == (32, 75, 8, 8, 1)


def test_a_missing_extra_is_a_message_saying_what_to_install(monkeypatch):
    import sys
    from metacc.runtime.data import hershey
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)      # import fails as if not installed
    with pytest.raises(MetaccError, match="needs the package scikit-learn") as info:
        load_digits()
    assert "metacc[fewshot]" in str(info.value)
    monkeypatch.setitem(sys.modules, "HersheyFonts", None)
    hershey.classes.cache_clear()
    hershey._all_glyphs.cache_clear()
    try:
        with pytest.raises(MetaccError, match="needs the package Hershey-Fonts") as info:
            load_hershey_standin(class_ids=[0])
    finally:
        hershey.classes.cache_clear()
        hershey._all_glyphs.cache_clear()
    assert "hershey-omniglot-standin" in str(info.value) and "metacc[fewshot]" in str(info.value)


def test_the_core_and_the_omniglot_loader_need_no_extra(tmp_path):
    import subprocess
    import sys
    _omniglot_fixture(tmp_path / "omni")
    code = ("import sys\n"
            "for name in ('sklearn', 'HersheyFonts', 'PIL', 'matplotlib'):\n"
            "    sys.modules[name] = None\n"
            "import metacc, metacc.runtime, metacc.runtime.data as d\n"
            f"data = d.load_omniglot({str(tmp_path / 'omni')!r}, cache=False)\n"
            "print(data.images.shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"({8 * DRAWERS}, 28, 28, 1)"
