"""`metacc.compile`: a .meta program (path, text or an already checked Program)
to a Module whose kernels are built on first use and cached on disk.

dtype: None runs the program at the precision it declares; 'f32' or 'f64'
rewrites every float type of the program to that dtype first (one program,
both precisions; 'float32', np.float64 and np.dtype(...) are the same, see
metacc.dtypes). Either way the kernels accept exactly their dtype: a
float64 array passed where float32 is expected is an error naming the
argument, never a silent conversion.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from metacc import pipeline
from metacc.backend.loader import write_atomic_bytes
from metacc.dtypes import float_dtype
from metacc.errors import MetaccError, Source
from metacc.frontend import load_source, read_source
from metacc.backend.cuda import pipeline as cuda_pipeline
from metacc.nonfinite import check_outputs, enabled
from metacc.passes.retype import retype_program
from metacc.program import Program
from metacc.runtime import serial
from metacc.runtime.cache import compiler_build, default_dir, warn
from metacc.runtime.module import Module


def _front_end(source: Source, dtype: str | None, constants: dict | None, root: Path) -> Program:
    """The front end (parse, names, types, shapes) -> Program, at `dtype` when given.

    The checked Program is kept in the cache too (keyed like the kernels), so
    that a cached module loads without parsing: the front end takes 0.2-0.4 s,
    reading the cached program a millisecond or two. It is stored as data
    (metacc.runtime.serial, JSON), not a pickle, under a header that must
    match the request: the key, the hash of the source text, the dtype, the
    constants and the compiler build; the program read must have this very
    source text. Anything else is rebuilt with a warning, never served."""
    request = {"text": hashlib.sha256(source.text.encode()).hexdigest(), "name": source.name,
               "dtype": dtype, "constants": sorted((constants or {}).items()), "build": compiler_build()}
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:24]
    request = json.loads(json.dumps(request))       # as it reads back (tuples become lists)
    path = Path(os.path.abspath(root)) / "programs" / (key + ".json")
    try:
        raw = path.read_bytes()
    except OSError:
        raw = None               # none yet, or the cache cannot be read: the kernels will say so
    if raw is not None:
        try:
            return _read_program(raw, key, request, source)
        except Exception as err:  # noqa: BLE001 - any damage means: rebuild
            warn(f"metacc: cached program {path} is broken ({type(err).__name__}: {err}); rebuilding it")
    # the parser (and lark) loads on a cache miss only, in load_source
    program = load_source(source.text, source.name, float_dtype=dtype, constants=constants)
    try:
        body = serial.dumps(program).encode()
        header = {"format": 1, "key": key, "request": request, "program_sha256": hashlib.sha256(body).hexdigest()}
        write_atomic_bytes(path, json.dumps(header, sort_keys=True).encode() + b"\n" + body)
    except (OSError, TypeError, ValueError, RecursionError):
        pass                      # caching is an optimisation only (an unusable cache is reported once, by the kernels)
    return program


def _read_program(raw: bytes, key: str, request: dict, source: Source) -> Program:
    head, sep, body = raw.partition(b"\n")
    header = json.loads(head)
    if not sep or not isinstance(header, dict) or header.get("format") != 1:
        raise ValueError("not a cached program of this metacc")
    if header.get("key") != key or header.get("request") != request:
        raise ValueError("it was written for another program, dtype, constants or compiler build")
    if header.get("program_sha256") != hashlib.sha256(body).hexdigest():
        raise ValueError("the program does not match its recorded hash")
    program = serial.loads(body.decode())
    if not isinstance(program, Program) or program.source.text != source.text:
        raise ValueError("it holds another program")
    return program


def _read(path_or_source) -> Source:
    if isinstance(path_or_source, os.PathLike):
        path_or_source = os.fspath(path_or_source)
    if not isinstance(path_or_source, str):
        raise MetaccError("metacc.compile takes a path, the text of a .meta program or a Program",
                          found=type(path_or_source).__name__)
    text = path_or_source
    # The rule: a string with a line break or a brace is program text (every declaration has a
    # brace); any other non-blank string is a path, so a mistyped path is named as a missing
    # file instead of being parsed as a program.
    looks_like_path = text.strip() != "" and not any(c in text for c in "\n{}")
    if looks_like_path:
        return Source(str(Path(text)), read_source(text))
    return Source("<string>", text)


TARGETS = ("cpu", "cuda")


def target_pipeline(target: str):
    """The passes the Module's kernels run: metacc.pipeline for the CPU, the CUDA
    target's (metacc.backend.cuda.pipeline; its kernels need numba-cuda) for 'cuda'."""
    if target == "cpu":
        return pipeline
    if target != "cuda":
        raise MetaccError(f"unknown target '{target}'", expected=", ".join(TARGETS), found=repr(target))
    if importlib.util.find_spec("numba_cuda") is None:
        raise MetaccError("target='cuda' needs the numba-cuda package", found="numba-cuda is not installed",
                          hint="pip install -e '.[cuda]' (set NUMBA_ENABLE_CUDASIM=1 to run on the CUDA "
                               "simulator without a GPU)")
    return cuda_pipeline      # numba.cuda is imported by the generated modules, on first call


def compile(path_or_source, dtype: str | None = None, cache_dir=None,  # noqa: A001
            check_finite: bool | None = None, target: str = "cpu") -> Module:
    """target: 'cpu' (Numba CPU kernels) or 'cuda' (numba.cuda kernels through numba-cuda;
    metacc.backend.cuda)."""
    passes = target_pipeline(target)
    check = enabled(check_finite)
    dtype = float_dtype(dtype, "compile", allow_none=True)      # 'float64', np.float64 -> 'f64'
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
    if target != "cpu":
        key_text += f"\n# target: {target}"        # kernels of each target cached apart
    # the runtime does not import metacc.nonfinite (it runs the interpreter, so AD): its checker is handed in
    return Module(program, key_text, dtype, root, passes, reload, check_outputs=check_outputs if check else None)
