"""`metacc.compile`: a .meta program (path, text or an already checked Program)
to a Module whose kernels are built on first use and cached on disk.

dtype: None runs the program at the precision it declares; 'f32' or 'f64'
rewrites every float type of the program to that dtype first (one program,
both precisions). Either way the kernels accept exactly their dtype: a
float64 array passed where float32 is expected is an error naming the
argument, never a silent conversion.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

from metacc.errors import MetaccError, Source
from metacc.program import Program
from metacc.backend.loader import write_atomic_bytes
from metacc.runtime.cache import CacheWarning, compiler_build, default_dir
from metacc.runtime.module import Module
from metacc.runtime.retype import retype_program


def _front_end(source: Source, dtype: str | None, constants: dict | None, root: Path) -> Program:
    """The front end (parse, names, types, shapes) -> Program, at `dtype` when given.

    The checked Program is kept in the cache too (pickled, keyed like the
    kernels), so that a cached module loads without parsing: the front end
    takes 0.4 s or more, a tenth of a millisecond to unpickle."""
    key = json.dumps({"text": hashlib.sha256(source.text.encode()).hexdigest(), "name": source.name,
                      "dtype": dtype, "constants": sorted((constants or {}).items()),
                      "build": compiler_build()}, sort_keys=True)
    path = root / "programs" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".pickle")
    try:
        return pickle.loads(path.read_bytes())
    except FileNotFoundError:
        pass
    except Exception as err:  # noqa: BLE001 - a damaged entry is rebuilt
        warnings.warn(f"metacc: cached program {path} is unreadable ({type(err).__name__}); rebuilding it",
                      CacheWarning, stacklevel=3)
    from metacc.frontend import load_source          # imported only when parsing (lark: 0.3 s)
    program = load_source(source.text, source.name, float_dtype=dtype, constants=constants)
    try:
        write_atomic_bytes(path, pickle.dumps(program))
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass                      # caching is an optimisation only
    return program


def _read(path_or_source) -> Source:
    if isinstance(path_or_source, os.PathLike):
        path_or_source = os.fspath(path_or_source)
    if not isinstance(path_or_source, str):
        raise MetaccError("metacc.compile takes a path, the text of a .meta program or a Program",
                          found=type(path_or_source).__name__)
    text = path_or_source
    looks_like_path = "\n" not in text and ("{" not in text) and (text.endswith(".meta") or os.path.exists(text))
    if looks_like_path:
        p = Path(text)
        if not p.exists():
            raise MetaccError(f"no such file: {text}", hint="pass the path of a .meta file or its text")
        return Source(str(p), p.read_text())
    return Source("<string>", text)


def compile(path_or_source, dtype: str | None = None, cache_dir=None,  # noqa: A001
            check_finite: bool | None = None) -> Module:
    from metacc.nonfinite import enabled
    check = enabled(check_finite)
    if dtype not in (None, "f32", "f64"):
        raise MetaccError("compile: dtype must be None, 'f32' or 'f64'", found=repr(dtype))
    if isinstance(path_or_source, Program):
        program = path_or_source
        # hand-built programs can share a text; their IR tells them apart
        key_text = program.source.text + "\n".join(str(f.ir) for f in program.functions.values())
    else:
        source = _read(path_or_source)
        root = Path(cache_dir) if cache_dir is not None else default_dir()
        program = _front_end(source, dtype, None, root)
        key_text = source.text
    if dtype is not None and isinstance(path_or_source, Program):
        program = retype_program(program, dtype)
    root = Path(cache_dir) if cache_dir is not None else default_dir()
    reload = None
    if not isinstance(path_or_source, Program):
        def reload(consts, _source=source):
            return _front_end(_source, dtype, consts, root)
    mod = Module(program, key_text, dtype, root, reload)
    mod.check_finite = check
    return mod
