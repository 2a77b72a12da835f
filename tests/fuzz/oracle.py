"""The oracle: what running one program through metacc's front end must give.

A program passes when the front end accepts it, or rejects it with a
MetaccError whose every message says where: `fuzz.meta:LINE:COL` inside the
program (or, for errors of the kernel stage, which have no single place, the
name of the function or argument concerned). Anything else is a crash: another
exception (InternalError, RecursionError, lark's VisitError, MemoryError...), a
MetaccError without a place, or a hang (detected by the runner, which runs
cases in a worker process with a time bound).

The stages are those of `metacc check` (load + derivative checks) and, for a
sampled subset, of `metacc show FILE --stage simplified --kernel KIND` for every
kernel kind the CLI offers (the IR that would be handed to Numba; Numba itself
is not run: too slow for a fuzzer).
"""
from __future__ import annotations

import re
import traceback

NAME = "fuzz.meta"
WHERE = re.compile(r"^fuzz\.meta:(\d+):(\d+): error: ")


def _located(err, text: str, names: set[str]) -> str | None:
    """None if every message of err says where; else what is wrong with the first one that does not."""
    from metacc.errors import MetaccErrors
    errors = err.errors if isinstance(err, MetaccErrors) else [err]
    n_lines = text.count("\n") + 1
    for e in errors:
        head = e.render().splitlines()[0] if e.render() else ""
        m = WHERE.match(head)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            if not (1 <= line <= n_lines and col >= 1):
                return f"location {line}:{col} is outside the program ({n_lines} lines)"
            continue
        if names and any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", e.message) for n in names):
            continue            # a kernel-stage error naming the function or argument concerned
        return f"no file:line:col (and no argument named): {head[:200]}"
    return None


def _crash(info: dict, exc: str, message: str, err: BaseException) -> dict:
    return {**info, "outcome": "crash", "exc": exc, "message": message, "frames": _frames(err.__traceback__),
            "traceback": "".join(traceback.format_exception(err))[-6000:]}


def _frames(tb) -> list[str]:
    return [f"{f.filename.rsplit('metacc/', 1)[-1]}:{f.name}" for f in traceback.extract_tb(tb)
            if "/metacc/" in f.filename or "/runtime/" in f.filename or "lark" in f.filename]


def evaluate(text: str, kernels: bool, beat=lambda stage: None) -> dict:
    """Run the stages on one program. Returns {'outcome': 'ok'|'error'|'crash', ...}."""
    from metacc.errors import MetaccError
    stage = "load"
    names: set[str] = set()
    info: dict = {"stage": stage, "kernels_built": 0}
    try:
        beat("load")
        from metacc.frontend import load_source
        program = load_source(text, NAME)
        stage = info["stage"] = "check"
        beat("check")
        from metacc.cli import _check_derivatives
        _check_derivatives(program)
        info["functions"] = len(program.functions)
        if kernels:
            # every kernel of every function is built, even after one crashed, so a known
            # crash class in one kernel does not hide a new one in another
            from metacc.ir.printer import format_func
            from metacc.kinds import KINDS, default_wrt
            from metacc.pipeline import kernel_ir
            crashes = []
            for f in program.functions.values():
                format_func(f.ir)                       # show --stage ir
                wrt = default_wrt(f)
                names = {f.name} | {a.name for a in f.args}
                scalar = f.result.kind == "tensor" and all(not leaf.type.shape for leaf in f.result.leaves)
                for kind in KINDS:
                    if kind == "meta_grad" and f.kind != "meta":
                        continue                        # the CLI refuses this with a MetaccError first
                    stage = info["stage"] = f"kernel {kind}"
                    info["fn_scalar"] = scalar
                    beat(f"{f.name} {kind}")
                    try:
                        format_func(kernel_ir(f.ir, kind, None if kind == "forward" else wrt, "simplified"))
                        info["kernels_built"] += 1
                    except MetaccError as err:
                        problem = _located(err, text, names)
                        if problem is not None:
                            crashes.append(_crash(info, "MetaccError(no location)", problem, err))
                    except Exception as err:            # noqa: BLE001
                        crashes.append(_crash(info, type(err).__name__, str(err)[:500], err))
                    finally:
                        from metacc import pipeline as _k
                        _k._cache.clear()
            if crashes:
                new = [c for c in crashes if not classify(c, text).startswith("front:")]
                return (new or crashes)[0]
        return {**info, "outcome": "ok"}
    except MetaccError as err:
        problem = _located(err, text, set())
        if problem is None:
            return {**info, "outcome": "error", "message": err.message[:300]}
        return {**info, "outcome": "crash", "exc": "MetaccError(no location)", "message": problem,
                "frames": _frames(err.__traceback__), "traceback": traceback.format_exc()[-4000:]}
    except BaseException as err:             # noqa: BLE001 - everything else is the finding
        if isinstance(err, KeyboardInterrupt):
            raise
        return {**info, "outcome": "crash", "exc": type(err).__name__, "message": str(err)[:500],
                "frames": _frames(err.__traceback__), "traceback": traceback.format_exc()[-6000:]}
    finally:
        from metacc import pipeline as _k
        _k._cache.clear()                    # kernel_ir's memo is keyed by id(): drop it between programs


# ---- classification -------------------------------------------------------------------------

# Crash classes the "front" part of issue 9 is fixing; the fuzzer names them so a
# later run (after the branches merge) shows whether they are gone.
FRONT = {
    "front:int-pow-hang": "constant folding of integer powers never returns (3 ^ 3 ^ 3 ^ 3)",
    "front:deep-nesting": "deep nesting: lark VisitError / RecursionError / 'nested too deeply' without line:col",
    "front:checkpoint-snapshots": "@checkpoint(snapshots=1) with K >= 2 recurses forever",
    "front:grad-nonscalar": "show --kernel grad/hvp on a fn with a non-scalar result: InternalError",
    "front:literal-overflow": "a literal overflowing its dtype (1e39 in f32, 1e999)",
    "front:huge-shape": "huge parameter shapes accepted, then MemoryError",
    "front:empty-program": "an empty program (no declarations) accepted",
}


def classify(result: dict, text: str) -> str:
    """A crash class: one of FRONT's keys, or 'new:<exception>@<innermost metacc frame>'."""
    exc = result.get("exc", "")
    frames = result.get("frames") or []
    stage = result.get("stage", "")
    blob = (result.get("message") or "") + "\n" + (result.get("traceback") or "") + "\n" + (result.get("dump") or "")
    if exc == "hang":
        dump = result.get("dump") or ""
        if "frontend/arith.py" in dump and "_fold" in dump or "passes/fold.py" in dump:
            return "front:int-pow-hang"
        if "snapshots" in text and stage.startswith("kernel"):
            return "front:checkpoint-snapshots"
    if exc == "RecursionError" and any(f.endswith(":_checkpointed_forward") for f in frames):
        return "front:checkpoint-snapshots"
    if exc == "VisitError" or "nested too deeply" in blob:
        return "front:deep-nesting"
    if exc == "RecursionError" and stage == "load":
        return "front:deep-nesting"
    if exc == "InternalError" and stage in ("kernel grad", "kernel hvp", "kernel meta_grad") \
            and not result.get("fn_scalar", True):
        return "front:grad-nonscalar"
    if exc == "MemoryError" and stage in ("load", "check"):
        return "front:huge-shape"
    where = frames[-1] if frames else _innermost(result.get("dump") or "")
    return f"new:{exc}@{where}"


def _innermost(dump: str) -> str:
    """The innermost metacc frame of a faulthandler dump (it lists the most recent call first)."""
    m = re.search(r'File "[^"]*/(metacc|runtime)/([^"]+)", line \d+ in (\w+)', dump)
    return f"{m.group(2)}:{m.group(3)}" if m else "?"
