"""The optional packages of the `fewshot` extra, imported on first use with a clear message."""
from __future__ import annotations

from metacc.errors import MetaccError

EXTRA = "pip install 'metacc[fewshot]'"


def missing(pip_name: str, what: str) -> MetaccError:
    return MetaccError(f"{what} needs the package {pip_name}, which is not installed",
                       hint=f"{EXTRA} (or: python3 -m pip install {pip_name})")
