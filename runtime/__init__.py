"""The runtime: compiled modules, argument trees, kernel cache (installed as metacc.runtime)."""
from metacc.runtime.compile import compile  # noqa: F401,A004
from metacc.runtime.module import Module  # noqa: F401
