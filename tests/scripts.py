"""Load a script that is not a package module (a driver, a benchmark, docs/regenerate.py) by path."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
