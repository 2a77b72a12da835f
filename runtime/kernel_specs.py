"""Kernels on a Dask worker: what the client sends of one, and how a worker loads it.

A KernelSpec is a kernel's cache key, what the key was made of (the client's metacc
build and Numba version among it) and its generated source: tens of kB, sent once per
worker. A worker loads the kernel once per process through the on-disk cache
(metacc.runtime.cache), so that workers sharing a cache directory compile it once in
all, and refuses a spec made by another metacc or Numba: a key names the compiler that
generated the source, and the helpers the source calls are the worker's own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numba

from metacc.errors import MetaccError
from metacc.runtime.cache import compiler_build, default_dir, entry_key, open_module


@dataclass(frozen=True)
class KernelSpec:
    """What a worker needs to load a kernel: its cache key, what the key was made of (the
    client's metacc build among it) and the generated source. Sent once per worker."""
    key: str
    parts: dict
    source: str
    label: str


def kernel_spec(kernel) -> KernelSpec:
    key, parts = entry_key(kernel.source_key, kernel.label, kernel.dtype)
    return KernelSpec(key, parts, kernel.source(), f"{kernel.fn_name} ({kernel.kind})")


_SPECS: dict[str, KernelSpec] = {}          # registered in this process (metacc.runtime.dask_runner)
_LOADED: dict[str, tuple[ModuleType, bool]] = {}


def register(spec: KernelSpec) -> None:
    _SPECS[spec.key] = spec


def load(key: str, cache_dir: str | None) -> tuple[ModuleType, bool]:
    """The kernels module of `key` in this process (loaded once): from the cache when an
    entry for it is there (a shared cache: another worker compiled it), else compiled
    here from the client's source. Refused when this process runs another metacc or
    Numba than the client that made the key: its helpers would not be the kernel's."""
    hit = _LOADED.get(key)
    if hit is not None:
        return hit
    spec = _SPECS.get(key)
    if spec is None:
        raise MetaccError(f"kernel {key} was never sent to this worker (pid {os.getpid()})",
                          hint="run the call through the DaskRunner that warmed it")
    mine = {"metacc": compiler_build(), "numba": numba.__version__}
    theirs = {k: spec.parts.get(k) for k in mine}
    if mine != theirs:
        raise MetaccError(f"worker pid {os.getpid()} runs metacc {mine['metacc']} with Numba {mine['numba']}, "
                          f"the client metacc {theirs['metacc']} with Numba {theirs['numba']}",
                          hint="install the same metacc checkout and Numba on the client and every worker")
    root = Path(cache_dir) if cache_dir else default_dir()
    mod, fresh, _entry = open_module(root, key, spec.parts, lambda: spec.source)
    _LOADED[key] = (mod, fresh)
    return mod, fresh
