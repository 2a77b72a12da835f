"""Importing generated source from a real file.

Numba's `cache=True` needs the function to live in a file it can locate; so
generated modules are always written to disk (atomically: a temporary file
renamed into place, so a reader never sees half a file) and imported by path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def write_atomic(path: Path, text: str) -> None:
    write_atomic_bytes(path, text.encode())


def write_atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def import_path(path: Path) -> ModuleType:
    """Import a file as a fresh module (its name derived from the path, so two
    kernels files never shadow each other in sys.modules)."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    name = f"metacc_kernels_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def load(source: str, directory: str | os.PathLike) -> ModuleType:
    """Write source to directory/kernels.py (if it differs) and import it."""
    path = Path(directory) / "kernels.py"
    if not path.exists() or path.read_text() != source:
        write_atomic(path, source)
    return import_path(path)
