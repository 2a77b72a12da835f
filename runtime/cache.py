"""The on-disk kernel cache.

An entry is a directory `<cache_dir>/<key>/` holding `kernels.py` (the
generated source, imported by path so that Numba's own `cache=True` can store
the machine code beside it in `__pycache__/`) and `entry.json` (what the key
was made of, and the SHA-256 of kernels.py). The key hashes the .meta source
text, the kernel it is for (function, kind, differentiated arguments, batch
layout), the dtype, and the metacc and Numba versions: a kernel is never
served for anything else.

A broken entry (unreadable or mismatched entry.json, kernels.py that does not
match its hash or does not import, Numba cache files that fail to load) is
removed and rebuilt with a warning. Writes are atomic renames, so processes
sharing a cache directory see either nothing or a whole file.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from types import ModuleType

import numba

import metacc
from metacc.backend.loader import import_path, write_atomic


def default_dir() -> Path:
    env = os.environ.get("METACC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "metacc"


_BUILD: str | None = None


def compiler_build() -> str:
    """metacc's version plus a hash of its own code: a kernel built by a changed
    compiler (a development checkout between releases) is never served."""
    global _BUILD
    if _BUILD is None:
        h = hashlib.sha256()
        here = Path(__file__).parent
        # everything that decides a kernel's code: the compiler, and the runtime's
        # helpers, kernel kinds and retyping (not the rest of the runtime)
        files = sorted(Path(metacc.__file__).parent.rglob("*.py")) + [
            here / "helpers.py", here / "extern.py", here / "kernel.py", here / "retype.py"]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _BUILD = f"{metacc.__version__}+{h.hexdigest()[:12]}"
    return _BUILD


def entry_key(source_text: str, kernel: str, dtype: str) -> tuple[str, dict]:
    parts = {"source_sha256": hashlib.sha256(source_text.encode()).hexdigest(), "kernel": kernel,
             "dtype": dtype, "metacc": compiler_build(), "numba": numba.__version__}
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24], parts


class CacheWarning(UserWarning):
    """A cache entry was broken and has been rebuilt."""


class Entry:
    def __init__(self, root: Path, key: str, parts: dict):
        self.dir = root / key
        self.parts = parts
        self.kernels = self.dir / "kernels.py"
        self.meta = self.dir / "entry.json"

    def load(self) -> ModuleType | None:
        """The cached module, or None when there is no usable entry."""
        if not self.kernels.exists() and not self.meta.exists():
            return None
        try:
            meta = json.loads(self.meta.read_text())
            text = self.kernels.read_text()
            if meta.get("parts") != self.parts:
                raise ValueError("entry.json does not describe this kernel")
            if meta.get("kernels_sha256") != hashlib.sha256(text.encode()).hexdigest():
                raise ValueError("kernels.py does not match its recorded hash")
            return import_path(self.kernels)
        except Exception as err:  # noqa: BLE001 - any damage means: rebuild
            self.discard(f"{type(err).__name__}: {err}")
            return None

    def store(self, source: str) -> ModuleType:
        write_atomic(self.kernels, source)
        meta = {"parts": self.parts, "kernels_sha256": hashlib.sha256(source.encode()).hexdigest()}
        write_atomic(self.meta, json.dumps(meta, indent=1, sort_keys=True))
        return import_path(self.kernels)

    def discard(self, why: str) -> None:
        warnings.warn(f"metacc: cache entry {self.dir} is broken ({why}); rebuilding it", CacheWarning,
                      stacklevel=4)
        shutil.rmtree(self.dir, ignore_errors=True)
