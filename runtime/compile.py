"""`metacc.compile`: a .meta program (path, text or an already checked Program)
to a Module whose kernels are built on first use and cached on disk.

dtype: None runs the program at the precision it declares; 'f32' or 'f64'
rewrites every float type of the program to that dtype first (one program,
both precisions). Either way the kernels accept exactly their dtype: a
float64 array passed where float32 is expected is an error naming the
argument, never a silent conversion.
"""
from __future__ import annotations

import os
from pathlib import Path

from metacc.errors import MetaccError, Source
from metacc.program import Program
from metacc.runtime.cache import default_dir
from metacc.runtime.module import Module
from metacc.runtime.retype import retype_program


def _front_end(source: Source, dtype: str | None, constants: dict | None = None) -> Program:
    """The front end (parse, names, types, shapes) -> Program, at `dtype` when given."""
    from metacc.frontend import load_source
    return load_source(source.text, source.name, float_dtype=dtype, constants=constants)


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


def compile(path_or_source, dtype: str | None = None, cache_dir=None) -> Module:  # noqa: A001
    if dtype not in (None, "f32", "f64"):
        raise MetaccError("compile: dtype must be None, 'f32' or 'f64'", found=repr(dtype))
    if isinstance(path_or_source, Program):
        program = path_or_source
        # hand-built programs can share a text; their IR tells them apart
        key_text = program.source.text + "\n".join(str(f.ir) for f in program.functions.values())
    else:
        source = _read(path_or_source)
        program = _front_end(source, dtype)
        key_text = source.text
    if dtype is not None and isinstance(path_or_source, Program):
        program = retype_program(program, dtype)
    root = Path(cache_dir) if cache_dir is not None else default_dir()
    reload = None
    if not isinstance(path_or_source, Program):
        def reload(consts, _source=source):
            return _front_end(_source, dtype, consts)
    return Module(program, key_text, dtype, root, reload)
