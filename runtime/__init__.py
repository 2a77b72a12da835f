"""The runtime: compiled modules, argument trees, kernel cache (installed as metacc.runtime)."""
from metacc.runtime.compiler import compile  # noqa: F401,A004
from metacc.runtime.module import Module  # noqa: F401
# the outer loop: task samplers, optimizers on parameter groups, a training loop
from metacc.runtime import optim, tasks, train  # noqa: F401,E402
