"""One compiled kernel: a function, a kind, its differentiated arguments and
batch layout, from IR to a loaded Numba module (through the disk cache).

Kinds (metacc.kernels): forward, grad (value and gradient), vjp, jvp, hvp;
for a `meta` function the task arguments carry a leading task axis and every
output is the mean over tasks, all in one parallel call.

Solvers in the program (argmin's SGD, conjugate gradient) add convergence
figures as extra outputs (metacc.diagnostics); a call strips them and warns
(metacc.ConvergenceWarning) about any that missed its tolerance.
"""
from __future__ import annotations

import re
from pathlib import Path

from metacc.ad import expand
from metacc.diagnostics import check, hoist
from metacc.errors import MetaccError
from metacc.ir.core import Func
from metacc.ad.activity import emit as emit_notes
from metacc.kernels import kernel_ir, kernel_notes
from metacc.runtime.cache import entry_key, open_module
from metacc.runtime.progress import first_call

_SINGULAR = re.compile(r"metacc: (.*)")


class Kernel:
    def __init__(self, source_key: str, fn_name: str, ir: Func, kind: str, wrt: tuple[int, ...],
                 batched: tuple[bool, ...] | None, dtype: str, cache_dir: Path):
        self.fn_name, self.base, self.kind, self.wrt, self.batched = fn_name, ir, kind, wrt, batched
        self.source_key, self.dtype, self.cache_dir = source_key, dtype, cache_dir
        self._ir: Func | None = None
        self._mod = None
        self._fresh = False          # built in this process (not loaded from the cache)
        self._entry = None
        self._proven = False         # has run once
        self.check_finite = False    # set by the Module (metacc.nonfinite)

    @property
    def label(self) -> str:
        b = "".join("b" if x else "s" for x in self.batched) if self.batched else "-"
        return f"{self.fn_name}:{self.kind}:wrt={','.join(map(str, self.wrt))}:batch={b}"

    def __repr__(self) -> str:
        state = "built" if self._mod is not None else "not built yet"
        return f"<metacc kernel {self.label} dtype={self.dtype} ({state})>"

    def ir(self, stage: str = "simplified") -> Func:
        if stage == "simplified" and self._ir is not None:
            return self._ir
        wrt = list(self.wrt) if self.kind != "forward" else None
        out = kernel_ir(self.base, "meta_grad" if self.kind == "grad" and self.batched else self.kind,
                        wrt, stage)
        if stage == "simplified":
            out = expand(out) if _needs_expand(out) else out
            self._ir = out
        return out

    def source(self) -> str:
        src = kernel_source(self.ir(), self.batched)
        notes = kernel_notes(self.base, "meta_grad" if self.kind == "grad" and self.batched else self.kind,
                             list(self.wrt) if self.kind != "forward" else None)
        if notes:
            # repeated by module() whenever the kernel is loaded from the cache
            src += f"\n# disconnected differentiated inputs (metacc.DisconnectedWarning)\nWARNINGS = {list(notes)!r}\n"
        return src

    def module(self):
        if self._mod is None:
            key, parts = entry_key(self.source_key, self.label, self.dtype)
            # _entry is None when the kernel is compiled in memory (the cache cannot be used)
            self._mod, self._fresh, self._entry = open_module(self.cache_dir, key, parts, self.source)
            if not self._fresh:     # building warned already; a cached kernel repeats its notes
                emit_notes(getattr(self._mod, "WARNINGS", ()))
        return self._mod

    def __call__(self, args: list):
        if self._mod is None:       # the first call builds or loads it: say so (metacc.runtime.progress)
            out = first_call(self, lambda: self._run(args))
        else:
            out = self._run(args)
        descs = getattr(self._mod, "DIAGNOSTICS", None)
        if descs:
            n = len(descs)
            check(descs, out[len(out) - n:], batched=self.batched is not None)
            out = out[:len(out) - n]
        if self.check_finite:       # compile(check_finite=True) / METACC_CHECK_FINITE=1
            from metacc.nonfinite import check_outputs
            check_outputs(self, args, out)
        return out

    def _run(self, args: list):
        mod = self.module()
        entry = mod.ENTRY_BATCHED if self.batched is not None else mod.ENTRY_CALL
        try:
            out = entry(*args)
            self._proven = True
            return out
        except MetaccError:
            raise
        except ValueError as err:
            m = _SINGULAR.match(str(err))
            if m:
                raise MetaccError(m.group(1), hint="add a ridge term (lam * eye(n)) to keep the "
                                  "system well-posed") from None
            raise
        except MemoryError:
            raise               # the call's own problem, not the cached entry's: keep the entry
        except Exception as err:  # noqa: BLE001
            if self._fresh or self._proven or self._entry is None:
                raise
            # a kernel loaded from the cache failed before running (damaged
            # Numba cache files): rebuild it once from source
            self._entry.discard(f"{type(err).__name__}: {err}")
            self._mod = None
            mod = self.module()
            entry = mod.ENTRY_BATCHED if self.batched is not None else mod.ENTRY_CALL
            return entry(*args)


def kernel_source(fn: Func, batched: tuple[bool, ...] | None) -> str:
    """The Numba module the runtime compiles for a simplified kernel IR (also what
    `metacc show --stage numba` prints). `batched`: a flag per argument leaf of a
    meta function (its task arguments), None for a plain call."""
    fn = expand(fn) if _needs_expand(fn) else fn
    # solver convergence figures become the kernel's last outputs (kept per task
    # when batched), listed in the module as DIAGNOSTICS for __call__ to strip
    fn, descs = hoist(fn)
    n_user = len(fn.outs) - len(descs)
    if batched is None:
        src = _lower()(fn).source
    else:
        src = _lower()(fn, list(batched) + [False] * (len(fn.ins) - len(batched)),
                       ["mean"] * n_user + ["stack"] * len(descs)).source
    if descs:
        from metacc.backend.wrap import literal, wrap_line     # (see _lower)
        src += ("\n# solver convergence and label-range figures: the last len(DIAGNOSTICS) outputs "
                "(metacc.diagnostics)\n"
                + "\n".join(wrap_line(f"DIAGNOSTICS = {literal(descs)}")) + "\n")
    return src


def _needs_expand(fn: Func) -> bool:
    for e in fn.eqns:
        if e.prim in ("grad", "argmin"):
            return True
        if any(_needs_expand(s) for s in e.subfuncs()):
            return True
    return False


def _lower():
    # imported on use: metacc.backend imports metacc.runtime (threads), so a
    # top-level import here would meet a half-initialised backend package
    from metacc.backend.module import lower
    return lower
