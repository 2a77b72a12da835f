"""The version of metacc, and where its sources are (the kernel cache's key hashes them).

A module of its own, below everything, so that metacc.runtime can read them without
importing the package's __init__ (which reaches the compiler)."""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
PACKAGE_DIR = Path(__file__).parent
