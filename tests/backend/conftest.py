"""Shared compiled kernels for the backend tests.

Numba needs seconds per kernel, so every test module lowers what it needs
through the session-wide `build` fixture: identical sources load once, and
the compiled machine code is cached under one directory per test run
(METACC_CACHE_DIR when CI sets it, else a pytest temporary directory).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from metacc.backend import load, lower


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> Path:
    env = os.environ.get("METACC_CACHE_DIR")
    root = Path(env) / "backend-tests" if env else tmp_path_factory.mktemp("kernels")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def build(kernel_dir):
    loaded: dict[str, object] = {}

    def _build(fn, batched=None, reduce=None):
        src = lower(fn, batched, reduce).source
        key = hashlib.sha256(src.encode()).hexdigest()[:20]
        if key not in loaded:
            loaded[key] = load(src, kernel_dir / key)
        return loaded[key]
    return _build
