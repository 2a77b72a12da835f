"""A disk cache for arrays that take seconds to build (a rendered or decoded image set).

Each entry is NAME.npy beside NAME.json, which records what the array was built
from (`key`), its shape, dtype and SHA-256. Both are written to a temporary file
and renamed into place, the array first, so that a reader never sees half a file;
a reader checks the record against its own key and the array against the hash,
and rebuilds on any mismatch (a stale, torn or edited entry is never served).
The folder is METACC_CACHE_DIR/data (default ~/.cache/metacc/data), the kernel
cache's root. An unwritable folder costs only the rebuild next time.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Callable

import numpy as np


def data_dir() -> Path:
    env = os.environ.get("METACC_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "metacc") / "data"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:12]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load(name: str, key: dict) -> np.ndarray | None:
    """The cached array of `name` if it was built from `key` and is whole, else None."""
    root = data_dir()
    try:
        record = json.loads((root / f"{name}.json").read_text(encoding="utf-8"))
        if record.get("key") != key:
            return None
        raw = (root / f"{name}.npy").read_bytes()
    except (OSError, ValueError):
        return None
    if _sha(raw) != record.get("sha256"):
        return None
    arr = np.load(io.BytesIO(raw), allow_pickle=False)
    if list(arr.shape) != record.get("shape") or str(arr.dtype) != record.get("dtype"):
        return None
    return arr


def store(name: str, key: dict, arr: np.ndarray) -> Path | None:
    """Write the entry; on an OSError warn and return None (the caller keeps its array)."""
    root = data_dir()
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    raw = buf.getvalue()
    record = {"key": key, "shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": _sha(raw)}
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_atomic(root / f"{name}.npy", raw)
        _write_atomic(root / f"{name}.json", json.dumps(record, indent=1).encode())
    except OSError as err:
        warnings.warn(f"metacc: could not cache {name} under {root} ({err.strerror or err}); "
                      "it will be built again next time. Set METACC_CACHE_DIR to a writable folder.",
                      stacklevel=3)
        return None
    return root / f"{name}.npy"


def cached(name: str, key: dict, build: Callable[[], np.ndarray], use_cache: bool = True) -> np.ndarray:
    """The array from the cache when it matches `key`, else build() (stored for next time)."""
    if use_cache:
        hit = load(name, key)
        if hit is not None:
            return hit
    arr = build()
    if use_cache:
        store(name, key, arr)
    return arr
