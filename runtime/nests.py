"""Outlined loop nests (metacc.backend.outline): compiled once, cached by content, linked.

A generated kernel module lists its nests, each as (parameter kinds, source), and calls

    globals().update(link_nests(NESTS, globals()))

when it is imported. For each nest, in this order:
- already linked in this process (another kernel has it): nothing to do;
- its cache entry `<cache>/nests/<key>/` (the same checked entry format as a kernel's,
  metacc.runtime.cache; the key hashes the nest's name, which is the hash of its kinds
  and text, its text, and the metacc and Numba versions) is loaded, or written and
  compiled, as a C-ABI cfunc whose machine code Numba caches inside the entry;
- its address is stored in its slot, the 8-byte global registered with LLVM as
  `metacc_<name>` (metacc.backend.nest_call),
and the module gets an intrinsic of the nest's name that calls through that slot. A
nest shared by several kernels, programs or sizes of one program is compiled once.

Nests not yet compiled are built by worker processes when there are several
(MIN_PARALLEL) and more than one CPU (each worker writes its entries; one per CPU
but one). Meanwhile this process compiles the kernel itself, which needs only the
slots' addresses: the module wraps its task kernel in `compile_then_link`, whose first
call compiles the kernel for its arguments, then builds nests from the last one back
until it meets the workers, loads every nest into its slot, and only then runs the
kernel. With one CPU, or a few nests, they are built here, before the kernel.

With no usable cache (the kernel itself compiled in memory) nests are compiled in
memory too.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import llvmlite.binding as llvm
import numba
from numba.core.ccallback import CFunc
from numba.core.compiler_lock import global_compiler_lock

from metacc.backend.nest_call import c_signature, call_intrinsic, symbol
from metacc.backend.outline import PLACEHOLDER, nest_name
from metacc.errors import InternalError
from metacc.runtime import cache

HEADER = '''"""metacc loop nest (metacc.backend.outline): generated code, shared by the kernels that call it."""
import numpy as np
from numba import carray

from metacc.backend.helpers import (
    fold, ld, mix, normal_f32, normal_f64, sigmoid_f32, sigmoid_f64, softplus_f32, softplus_f64, st,
    uniform53, uniform_f32, uniform_f64)

'''
OPTIONS = {"error_model": "numpy"}
WORKER_TIMEOUT_S = 600          # a worker that hangs is stopped; its nests are built here
MIN_PARALLEL = 6                # fewer missing nests (~0.13 s each) are not worth a worker's start

_linked: dict[str, CFunc] = {}          # keeps each nest's machine code alive
_calls: dict[str, object] = {}          # the intrinsic calling each nest, made once per process
_slots: dict[str, ctypes.c_void_p] = {}  # each nest's address, where kernels read it
_lock = threading.Lock()


def nest_entry(name: str, kinds: tuple[str, ...], source: str) -> tuple[str, dict, str]:
    """(cache key, what the key was made of, the module text) of one nest."""
    text = HEADER + source
    parts = {"nest": name, "kinds": list(kinds), "source_sha256": hashlib.sha256(text.encode()).hexdigest(),
             "metacc": cache.compiler_build(), "numba": numba.__version__}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return key, parts, text


def _check(name: str, kinds: tuple[str, ...], source: str) -> None:
    if nest_name(kinds, source.replace(f"def {name}(", f"def {PLACEHOLDER}(", 1)) != name:
        raise InternalError(f"loop nest {name}: its text does not match its name")


def _compile(name: str, kinds: tuple[str, ...], source: str, root: Path | None) -> CFunc:
    key, parts, text = nest_entry(name, kinds, source)
    if root is not None:
        mod, _built, entry = cache.open_module(root / "nests", key, parts, lambda: text)
    else:
        mod, entry = cache.load_module(text, key, None), None
    pyfunc = getattr(mod, name)
    sig = c_signature(kinds)
    cf = CFunc(pyfunc, (sig.args, sig.return_type), locals={}, options=dict(OPTIONS))
    if entry is not None:
        cf._cache = cache.EntryCache(pyfunc, entry)
    cf.compile()
    return cf


def link_nests(table: dict[str, tuple[str, str]], module_globals: dict) -> dict:
    """The intrinsics calling each nest of `table` ({name: (kinds, source)}), every nest's
    slot registered first. Nests are compiled or loaded here, except those handed to
    worker processes: they are linked on the kernel's first call (compile_then_link)."""
    where = module_globals.get("__metacc_entry__")
    root = where[0].root if where is not None else None
    out = {}
    with global_compiler_lock:
        todo = []
        for name, (kinds_text, source) in table.items():
            kinds = tuple(kinds_text.split())
            source = source.lstrip("\n")          # the table's text opens on the line after its quotes
            _check(name, kinds, source)
            _slot(name)
            if name not in _calls:
                _calls[name] = call_intrinsic(name, kinds)
            out[name] = _calls[name]
            if name not in _linked:
                todo.append((name, kinds, source))
        building = _start_workers(todo, root) if root is not None and len(todo) > 1 else None
        if building is not None:
            module_globals["__metacc_building__"] = building
            return out
        for name, kinds, source in todo:
            _link(name, kinds, source, root)
    return out


def _slot(name: str) -> ctypes.c_void_p:
    """The nest's slot, registered with LLVM under its symbol (empty until it is linked)."""
    slot = _slots.get(name)
    if slot is None:
        slot = _slots[name] = ctypes.c_void_p(0)
        llvm.add_symbol(symbol(name), ctypes.addressof(slot))
    return slot


def _link(name: str, kinds: tuple[str, ...], source: str, root: Path | None) -> None:
    if name not in _linked:
        cf = _compile(name, kinds, source, root)
        _slot(name).value = cf.address
        _linked[name] = cf


def compile_then_link(kernel, module_globals: dict):
    """What the module calls its task kernel: the kernel itself when its nests are all
    linked, else a stand-in whose first call compiles the kernel (while the workers
    build the nests), links the nests, puts the kernel in its place and runs it."""
    building = module_globals.pop("__metacc_building__", None)
    if building is None:
        return kernel
    return _FirstCall(kernel, module_globals, building)


class _FirstCall:
    def __init__(self, kernel, module_globals: dict, building: "_Building"):
        self.metacc_kernel = kernel          # metacc.runtime.cache finds the kernel through this
        self._globals, self._building = module_globals, building
        self._lock = threading.Lock()

    def __call__(self, *args):
        kernel = self.metacc_kernel
        with self._lock:                     # pool threads calling at once wait for the first
            if self._building is not None:
                try:
                    kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
                finally:                     # a kernel that does not compile still leaves its nests linked
                    self._building.finish()
                    self._building = None
                    self._globals[kernel.py_func.__name__] = kernel
        return kernel(*args)


# ---- building many nests at once: worker processes --------------------------------

def _workers() -> int:
    env = os.environ.get("METACC_COMPILE_WORKERS")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            return 0
    return min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)


def _start_workers(todo: list, root: Path) -> "_Building | None":
    """Hand the nests that have no machine code in the cache yet to worker processes
    (Numba holds the GIL while it compiles: threads would not help), which write them
    into the cache while this process compiles the kernel. Each worker is a fresh
    `python -c` that imports only metacc (never the user's script, as multiprocessing's
    spawn would) and reads its share of nests as JSON on stdin. None: build them here."""
    n = _workers()
    if n <= 1:
        return None
    missing = [t for t in todo if not _cached(root, *t)]
    if len(missing) < MIN_PARALLEL:
        return None
    procs = _take_workers(n - 1)           # this process is the n-th: the kernel first, then nests
    if not procs:
        return None
    # round robin over nests in program order, so that each share has big and small ones
    busy = []
    for i, p in enumerate(procs):
        chunk = missing[i::len(procs)]
        job = {"root": str(root), "nests": [[name, list(kinds), source] for name, kinds, source in chunk]}
        try:
            p.stdin.write(json.dumps(job).encode())
            p.stdin.close()
        except OSError:                      # the worker died: finish() builds its share here
            continue
        busy.append(p)
    return _Building(todo, busy, root)


class _Building:
    """Nests being built by workers; finish() links them all."""

    def __init__(self, todo: list, procs: list, root: Path):
        self.todo, self.procs, self.root = todo, procs, root

    def finish(self) -> None:
        """Build nests here too, from the last one back, until those the workers (which go
        from the first on) have built; then wait for the workers and link every nest: from
        the cache they wrote, or built here where a worker failed (it only loses the head
        start). A worker that reaches a nest built here loads it rather than compiling it."""
        for name, kinds, source in reversed(self.todo):
            if all(p.poll() is not None for p in self.procs):
                break
            if name not in _linked and not _cached(self.root, name, kinds, source):
                with global_compiler_lock:
                    _link(name, kinds, source, self.root)
        for p in self.procs:
            try:
                p.wait(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with global_compiler_lock:
            for name, kinds, source in self.todo:
                _link(name, kinds, source, self.root)


# Workers started ahead (prestart): a worker spends about a second importing Numba and
# metacc, which the caller spends meanwhile generating the kernel whose nests they will build.
_idle: list[subprocess.Popen] = []


def _spawn() -> subprocess.Popen | None:
    env = dict(os.environ, METACC_COMPILE_WORKERS="0")
    try:
        return subprocess.Popen([sys.executable, "-c", "from metacc.runtime.nests import worker_main; worker_main()"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
    except OSError:
        return None                          # no processes here: everything is built in this one


def prestart() -> None:
    """Start the build workers now (a kernel is about to be generated and built)."""
    with _lock:
        _idle[:] = [p for p in _idle if p.poll() is None]
        while len(_idle) < _workers() - 1:
            p = _spawn()
            if p is None:
                break
            _idle.append(p)


def _take_workers(n: int) -> list[subprocess.Popen]:
    with _lock:
        procs = [p for p in _idle if p.poll() is None][:n]
        _idle[:] = [p for p in _idle if p.poll() is None and p not in procs]
    while len(procs) < n:
        p = _spawn()
        if p is None:
            break
        procs.append(p)
    return procs


@atexit.register
def _dismiss() -> None:
    """Idle workers get an empty job and exit."""
    for p in _idle:
        with contextlib.suppress(OSError):
            p.stdin.close()
    for p in _idle:
        with contextlib.suppress(Exception):
            p.wait(timeout=5)


def worker_main() -> None:
    """A build worker: compile each nest read from stdin into its cache entry (an empty
    job, when the worker was started ahead and not needed: nothing)."""
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        return
    job = json.loads(raw)
    for name, kinds, source in job["nests"]:
        _compile(name, tuple(kinds), source, Path(job["root"]))


def _cached(root: Path, name: str, kinds: tuple[str, ...], source: str) -> bool:
    key, _parts, _text = nest_entry(name, kinds, source)
    pycache = root / "nests" / key / "__pycache__"
    try:
        return any(n.endswith(".nbc") for n in os.listdir(pycache))
    except OSError:
        return False
