"""The on-disk kernel cache: a second process loads compiled kernels without
compiling, and a damaged entry is rebuilt (with a warning), never served."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import metacc
from metacc.runtime.cache import CacheWarning
from tests.runtime.conftest import SOURCE

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import metacc
    src = open(sys.argv[1]).read()
    t0 = time.perf_counter()
    mod = metacc.compile(src, cache_dir=sys.argv[2])
    p = mod.Lin.init(seed=2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    value, g = mod.loss.value_and_grad(p, x, y)
    elapsed = time.perf_counter() - t0
    k = mod.loss.kernel("grad", mod.loss._wrt(None))
    kmod = k.module()
    task = getattr(kmod, k.ir().name)
    print(json.dumps({"value": float(value), "hits": task.stats.cache_hits and sum(task.stats.cache_hits.values()),
                      "misses": sum(task.stats.cache_misses.values()), "built_here": k._fresh,
                      "seconds": elapsed}))
""")


def run_child(tmp_path: Path, cache: Path) -> dict:
    script, src = tmp_path / "child.py", tmp_path / "prog.meta"
    script.write_text(CHILD)
    src.write_text(SOURCE)
    out = subprocess.run([sys.executable, str(script), str(src), str(cache)], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = run_child(tmp_path, cache)
    second = run_child(tmp_path, cache)
    assert first["built_here"] and first["misses"] >= 1
    assert not second["built_here"]
    assert second["misses"] == 0 and second["hits"] >= 1        # loaded, not compiled
    assert second["value"] == first["value"]


def _entries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if (p / "entry.json").exists()]


def test_corrupt_source_is_rebuilt(tmp_path, data):
    cache = tmp_path / "cache"
    mod = metacc.compile(SOURCE, cache_dir=cache)
    p = mod.Lin.init(seed=2)
    want = mod.loss(p, data["x"], data["y"])
    (entry,) = _entries(cache)
    (entry / "kernels.py").write_text("def broken(:\n")
    fresh = metacc.compile(SOURCE, cache_dir=cache)
    with pytest.warns(CacheWarning, match="broken"):
        got = fresh.loss(p, data["x"], data["y"])
    assert got == want
    assert "def broken" not in (entry / "kernels.py").read_text()


def test_tampered_entry_is_not_served(tmp_path, data):
    cache = tmp_path / "cache"
    mod = metacc.compile(SOURCE, cache_dir=cache)
    p = mod.Lin.init(seed=2)
    want = mod.loss(p, data["x"], data["y"])
    (entry,) = _entries(cache)
    text = (entry / "kernels.py").read_text()
    # valid Python that computes something else: the recorded hash catches it
    (entry / "kernels.py").write_text(text.replace("return (", "return (2.0 * ", 1))
    with pytest.warns(CacheWarning, match="hash"):
        got = metacc.compile(SOURCE, cache_dir=cache).loss(p, data["x"], data["y"])
    assert got == want


def test_corrupt_numba_cache_is_rebuilt(tmp_path, data):
    cache = tmp_path / "cache"
    mod = metacc.compile(SOURCE, cache_dir=cache)
    p = mod.Lin.init(seed=2)
    want = mod.loss(p, data["x"], data["y"])
    (entry,) = _entries(cache)
    damaged = list((entry / "__pycache__").glob("*.nbi"))
    assert damaged
    for f in damaged:
        f.write_bytes(b"\x80\x04garbage")
    with pytest.warns(CacheWarning):
        got = metacc.compile(SOURCE, cache_dir=cache).loss(p, data["x"], data["y"])
    assert got == want


def test_entry_records_its_key(tmp_path, data):
    cache = tmp_path / "cache"
    metacc.compile(SOURCE, cache_dir=cache).loss(metacc.compile(SOURCE, cache_dir=cache).Lin.init(),
                                                 data["x"], data["y"])
    (entry,) = _entries(cache)
    parts = json.loads((entry / "entry.json").read_text())["parts"]
    assert {"source_sha256", "kernel", "dtype", "metacc", "numba"} <= set(parts)
