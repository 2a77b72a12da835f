"""Faults in the kernel cache: a damaged, foreign or unusable cache never crashes
and never serves a wrong kernel. One tiny program, compiled once into a pristine
cache that each test copies (a copy is also a relocation)."""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.runtime import cache as cache_mod
from metacc.runtime import serial
from metacc.runtime.cache import CacheWarning

SOURCE = "fn f(x: f64[n]) -> f64 {\n    return sum(x * x + 1.0)\n}\n"
OTHER = "fn f(x: f64[n]) -> f64 {\n    return sum(x * x * x)\n}\n"
X = np.arange(4.0)
WANT = float(np.sum(X * X + 1.0))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "cache"
    assert metacc.compile(SOURCE, cache_dir=root).f(X) == WANT
    return root


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    # which caches this process has given up on is per process: start each test clean
    monkeypatch.setattr(cache_mod, "_OFF", {})


@pytest.fixture
def cache(pristine, tmp_path) -> Path:
    dst = tmp_path / "cache"
    shutil.copytree(pristine, dst)
    return dst


def entry_of(root: Path) -> Path:
    (entry,) = [p for p in root.iterdir() if (p / "entry.json").exists()]
    return entry


def run(root, expect_warnings: int, match: str | None = None):
    """Compile and call f with every warning recorded; the kernel and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = metacc.compile(SOURCE, cache_dir=root)
        assert mod.f(X) == WANT
    ours = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(ours) == expect_warnings, [str(w.message) for w in ours]
    if match is not None:
        assert all(match in str(w.message) for w in ours), [str(w.message) for w in ours]
    return mod.f.kernel("forward"), [str(w.message) for w in ours]


def numba_stats(kernel):
    task = getattr(kernel.module(), kernel.ir().name)
    return sum(task.stats.cache_hits.values()), sum(task.stats.cache_misses.values())


def manifest_holds(entry: Path) -> bool:
    files = json.loads((entry / "numba.json").read_text())["files"]
    found = {p.name for p in (entry / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc")}
    return bool(found) and set(files) == found and all(
        cache_mod._sha((entry / "__pycache__" / n).read_bytes()) == h for n, h in files.items())


# --- a copy is used as is ------------------------------------------------------

def test_a_copied_cache_loads_without_rebuild(cache):
    kernel, _ = run(cache, 0)
    assert not kernel._fresh
    assert numba_stats(kernel) == (1, 0)          # machine code loaded, not compiled


def test_a_moved_cache_is_used_by_a_new_process(cache, tmp_path):
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(str(cache), str(moved))
    child = textwrap.dedent("""
        import json, sys, warnings
        import numpy as np
        import metacc
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod = metacc.compile(sys.argv[1])
            value = mod.f(np.arange(4.0))
        k = mod.f.kernel("forward")
        task = getattr(k.module(), k.ir().name)
        print(json.dumps({"value": value, "fresh": k._fresh, "warnings": [str(w.message) for w in caught],
                          "hits": sum(task.stats.cache_hits.values()),
                          "misses": sum(task.stats.cache_misses.values())}))
    """)
    env = dict(os.environ, METACC_CACHE_DIR=str(moved))
    out = subprocess.run([sys.executable, "-c", child, SOURCE], capture_output=True, text=True, env=env,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"value": WANT, "fresh": False, "warnings": [], "hits": 1, "misses": 0}


# --- damaged entries are rebuilt, once, with one warning ------------------------

def test_overwritten_numba_data_is_rebuilt(cache):
    entry = entry_of(cache)
    (nbc,) = (entry / "__pycache__").glob("*.nbc")
    data = bytearray(nbc.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = b"\xff" * 16          # once a UnicodeDecodeError on every run; elsewhere, a crash
    nbc.write_bytes(bytes(data))
    kernel, (message,) = run(cache, 1)
    assert str(entry) in message and "hash" in message
    assert numba_stats(kernel) == (0, 1)        # compiled again...
    assert manifest_holds(entry)                # ...and replaced: the next run loads it quietly
    assert numba_stats(run(cache, 0)[0]) == (1, 0)


def test_any_error_from_numbas_loader_means_compile_again(cache, monkeypatch):
    from numba.core import caching

    def fails(self, name):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    monkeypatch.setattr(caching.IndexDataCacheFile, "_load_data", fails)
    kernel, (message,) = run(cache, 1)
    assert str(entry_of(cache)) in message and "UnicodeDecodeError" in message
    assert numba_stats(kernel) == (0, 1)


def test_unlisted_numba_files_are_not_loaded(cache):
    entry = entry_of(cache)
    (entry / "numba.json").unlink()             # e.g. a run that stopped before recording them
    kernel, _ = run(cache, 0)
    assert numba_stats(kernel) == (0, 1)
    assert manifest_holds(entry)


@pytest.mark.parametrize("damage", ["garbage", "other kernel", "old format", "directory", "missing"])
def test_a_damaged_entry_json_is_rebuilt(cache, damage):
    entry = entry_of(cache)
    meta = json.loads((entry / "entry.json").read_text())
    if damage == "garbage":
        (entry / "entry.json").write_bytes(b"\x00\xff{")
    elif damage == "other kernel":
        meta["parts"]["kernel"] = "g:forward:wrt=:batch=-"
        (entry / "entry.json").write_text(json.dumps(meta))
    elif damage == "old format":
        del meta["format"]
        (entry / "entry.json").write_text(json.dumps(meta))
    elif damage == "directory":
        (entry / "entry.json").unlink()
        (entry / "entry.json").mkdir()
    else:
        (entry / "entry.json").unlink()
    kernel, (message,) = run(cache, 1, match=str(entry))
    assert kernel._fresh
    assert json.loads((entry / "entry.json").read_text())["format"] == cache_mod.FORMAT


# --- the cached program: data, validated, never another program -------------------

def program_file(root: Path) -> Path:
    (path,) = (root / "programs").glob("*.json")
    return path


@pytest.mark.parametrize("content", [b"null", b"{}", b"\x80\x04N.", b"{\"format\": 1}\nnull"])
def test_a_cached_program_that_is_not_a_program_is_rebuilt(cache, content):
    program_file(cache).write_bytes(content)
    run(cache, 1, match="cached program")
    run(cache, 0)                               # rewritten


def test_another_programs_entry_is_never_served(cache, tmp_path):
    other = tmp_path / "other"
    metacc.compile(OTHER, cache_dir=other)      # front end only: no kernel is built
    # a valid entry of another program, at this program's key
    shutil.copy(program_file(other), program_file(cache))
    run(cache, 1, match="another program")
    # the same with the header rewritten to claim this key: the text inside still differs
    mine, theirs = program_file(cache).read_bytes(), program_file(other).read_bytes()
    head = mine.partition(b"\n")[0]
    header = json.loads(head)
    body = theirs.partition(b"\n")[2]
    header["program_sha256"] = cache_mod._sha(body)
    program_file(cache).write_bytes(json.dumps(header).encode() + b"\n" + body)
    run(cache, 1, match="another program")


def test_program_format_round_trips_and_runs_no_code():
    from metacc.frontend import load_source
    program = load_source(SOURCE)
    back = serial.loads(serial.dumps(program))
    assert str(back.functions["f"].ir) == str(program.functions["f"].ir)
    fn = back.functions["f"].ir
    assert fn.eqns[0].ins[0] is fn.ins[0]       # shared variables stay shared
    for hostile in ('{"c": "system", "i": 0, "f": {}}', '{"c": "Var", "i": 0, "f": {"name": "x"}}',
                    '{"r": 3}', '[1, 2]', '{"x": "1e3"}'):
        with pytest.raises(serial.FormatError):
            serial.loads(hostile)


# --- an unusable cache: compiled in memory, one warning that says why -------------

def _under(path, root: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).absolute().is_relative_to(root)
    except TypeError:
        return False


def fail_open(monkeypatch, root: Path, err: int, writing: bool):
    real = builtins.open

    def fake(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and _under(file, root) and \
                (any(c in mode for c in "wax+") == writing):
            raise OSError(err, os.strerror(err), os.fspath(file))
        return real(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", fake)
    monkeypatch.setattr(io, "open", fake)
    if writing:                                 # tempfile.mkstemp and lock files open at the os level
        real_os_open = os.open

        def fake_os_open(path, flags, *args, **kwargs):
            if _under(path, root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(err, os.strerror(err), os.fspath(path))
            return real_os_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(os, "open", fake_os_open)


def test_a_full_disk_on_a_cold_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    fail_open(monkeypatch, root, errno.ENOSPC, writing=True)
    kernel, (message,) = run(root, 1, match="METACC_CACHE_DIR")
    assert "no space left" in message and kernel._entry is None
    assert not [p for p in root.rglob("*") if p.is_file()]      # nothing half-written left behind
    run(root, 0)                                                 # said once per process


def test_a_full_disk_when_numba_saves(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    real = builtins.open

    def fake(file, mode="r", *args, **kwargs):
        if "w" in mode and "__pycache__" in os.fspath(file):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", fake)
    run(root, 1, match="no space left")


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_a_read_only_or_foreign_cold_cache(tmp_path, monkeypatch, err):
    root = tmp_path / "cache"
    root.mkdir()
    real = os.mkdir

    def fake(path, *args, **kwargs):
        if _under(path, root):
            raise OSError(err, os.strerror(err), os.fspath(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, "mkdir", fake)
    kernel, (message,) = run(root, 1, match="METACC_CACHE_DIR")
    assert str(root) in message and kernel._entry is None


def test_a_cache_root_that_is_a_file(tmp_path):
    root = tmp_path / "cache"
    root.write_text("not a directory")
    kernel, (message,) = run(root, 1, match="METACC_CACHE_DIR")
    assert "a file is in the way" in message
    assert root.read_text() == "not a directory"


def test_an_entry_path_that_is_a_file(cache):
    entry = entry_of(cache)
    shutil.rmtree(entry)
    entry.write_text("in the way")
    kernel, (message,) = run(cache, 1, match=f"Remove {entry}")
    assert kernel._entry is None and entry.read_text() == "in the way"


def test_an_unreadable_entry(cache, monkeypatch):
    entry = entry_of(cache)                     # as if at mode 000 (root reads through the bits)
    fail_open(monkeypatch, entry, errno.EACCES, writing=False)
    kernel, (message,) = run(cache, 1, match="permission denied")
    assert kernel._entry is None


# --- writers, and the edges of the cache directory ------------------------------

def test_two_processes_building_one_entry(tmp_path):
    root = tmp_path / "cache"
    child = ("import sys, warnings, numpy as np, metacc\nfrom metacc.runtime.cache import CacheWarning\nwarnings.simplefilter('error', CacheWarning)\n"
             "print(metacc.compile(sys.argv[1], cache_dir=sys.argv[2]).f(np.arange(4.0)))\n")
    procs = [subprocess.Popen([sys.executable, "-c", child, SOURCE, str(root)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert float(out) == WANT
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []     # no temporaries left
    kernel, _ = run(root, 0)
    assert not kernel._fresh and numba_stats(kernel) == (1, 0)


def test_a_second_writer_uses_the_first_writers_entry(cache):
    entry = entry_of(cache)
    meta = json.loads((entry / "entry.json").read_text())
    e = cache_mod.Entry(cache, entry.name, meta["parts"])
    text = (entry / "kernels.py").read_text()
    mod = e.store(text)                         # the entry is there already, whole: kept
    assert mod.ENTRY_CALL(X)[0] == WANT and manifest_holds(entry)


def test_nothing_outside_the_cache_is_touched(cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.py").write_text("precious\n")
    entry = entry_of(cache)
    (entry / "kernels.py").unlink()
    (entry / "kernels.py").symlink_to(outside / "keep.py")       # a damaged entry pointing out
    run(cache, 1, match="broken")
    assert (outside / "keep.py").read_text() == "precious\n"
    shutil.rmtree(entry)
    entry.symlink_to(outside, target_is_directory=True)          # an entry path that is a link out
    run(cache, 1, match="symbolic link")
    assert [p.name for p in outside.iterdir()] == ["keep.py"] and (outside / "keep.py").read_text() == "precious\n"
