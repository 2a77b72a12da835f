"""Messages about kernel builds: which kernel, and how long it took.

The first call of a kernel builds it (seconds of Numba compilation) or loads
it from the disk cache (milliseconds). Without a word, a training loop's
progress bar sits at 0 for that time. Library calls stay quiet by default,
as JAX's do (jax_log_compiles is off unless asked for): the messages go to
the logging logger "metacc.compile" at INFO, which nothing shows until

- `with log_compiles(): ...` (what train() and the example drivers do), or
- METACC_LOG_COMPILES=1 in the environment (every process), or
- your own logging configuration sets "metacc.compile" to INFO.

    metacc: compiling maml meta_grad (f32)…
    metacc: maml meta_grad (f32) compiled in 5.2 s
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable

logger = logging.getLogger("metacc.compile")

# Where messages go: the innermost log_compiles() wins, so train()'s bar-aware
# writer takes over from a driver's plain one while its loop runs (no message
# is printed twice, none breaks the bar's line).
_writers: list[Callable[[str], None]] = []


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if _writers:
            try:
                _writers[-1]("metacc: " + record.getMessage())
            except Exception:  # noqa: BLE001 - a message must never break a call
                self.handleError(record)


_HANDLER = _Handler(logging.INFO)
_saved_levels: list[int] = []


@contextmanager
def log_compiles(write: Callable[[str], None] | None = None):
    """Show kernel build / cache-load messages while the block runs.

    write(line) prints one line (default: stderr); train() passes its progress
    bar's writer so that the bar is redrawn below the message."""
    if not _writers:
        logger.addHandler(_HANDLER)
    _saved_levels.append(logger.level)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    _writers.append(write or _stderr)
    try:
        yield
    finally:
        _writers.pop()
        logger.setLevel(_saved_levels.pop())
        if not _writers:
            logger.removeHandler(_HANDLER)


def describe(kernel) -> str:
    """'maml meta_grad (f32)': the function, the kernel kind, the precision."""
    kind = "meta_grad" if kernel.kind == "grad" and kernel.batched is not None else kernel.kind
    dtype = kernel.dtype
    if dtype not in ("f32", "f64"):     # 'declared': the program's own float type
        floats = [v.type.dtype for v in kernel.base.ins if v.type.is_float]
        dtype = floats[0] if floats else "no floats"
    return f"{kernel.fn_name} {kind} ({dtype})"


def first_call(kernel, run: Callable):
    """run() (the kernel's first call), announced and timed when messages are on."""
    if not logger.isEnabledFor(logging.INFO):
        return run()
    name = describe(kernel)
    logger.info("compiling %s…", name)
    start = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - start
    # _fresh: built in this process; otherwise its entry came from the disk cache
    how = "compiled" if getattr(kernel, "_fresh", False) else "loaded from cache"
    logger.info("%s %s in %.2f s", name, how, seconds)
    return out


if os.environ.get("METACC_LOG_COMPILES", "") not in ("", "0"):
    # for the whole process: entered once and never left (kept referenced: a collected
    # generator would run its finally clause and switch the messages off again)
    _FOR_THE_PROCESS = log_compiles()
    _FOR_THE_PROCESS.__enter__()
