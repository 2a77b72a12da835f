"""One compiled kernel: a function, a kind, its differentiated arguments and
batch layout, from IR to a loaded Numba module (through the disk cache).

Kinds (metacc.pipeline): forward, grad (value and gradient), vjp, jvp, hvp;
for a `meta` function the task arguments carry a leading task axis and every
output is the mean over tasks, all in one parallel call.

Solvers in the program (argmin's SGD, conjugate gradient) add convergence
figures as extra outputs (metacc.convergence); a call strips them and warns
(metacc.ConvergenceWarning) about any that missed its tolerance.
"""
from __future__ import annotations

import re
from pathlib import Path

from metacc.convergence import check
from metacc.errors import MetaccError
from metacc.ir.core import Func
from metacc.disconnected import emit as emit_notes
from metacc.runtime.cache import entry_key, open_module
from metacc.runtime.device import device_leaves
from metacc.runtime.nests import prestart
from metacc.runtime.progress import first_call

_SINGULAR = re.compile(r"metacc: (.*)")


class Kernel:
    def __init__(self, source_key: str, fn_name: str, ir: Func, kind: str, wrt: tuple[int, ...],
                 batched: tuple[bool, ...] | None, dtype: str, cache_dir: Path, pipeline, check_outputs=None):
        # metacc.pipeline (the passes of each kernel kind), handed down from the compile
        # driver: the runtime runs the compiler on first call but does not import it
        self.pipeline = pipeline
        # check_outputs(kernel, args, outs), what checks a call's results when compile(check_finite=True)
        # or METACC_CHECK_FINITE=1 (metacc.nonfinite.check_outputs, handed down the same way: it
        # runs the interpreter, so AD); None: unchecked
        self.check_outputs = check_outputs
        self.fn_name, self.base, self.kind, self.wrt, self.batched = fn_name, ir, kind, wrt, batched
        self.source_key, self.dtype, self.cache_dir = source_key, dtype, cache_dir
        self._ir: Func | None = None
        self._mod = None
        self._fresh = False          # built in this process (not loaded from the cache)
        self._entry = None
        self._proven = False         # has run once
        self._descs = None           # the module's DIAGNOSTICS (solver figures), once it is loaded
        # looked up once: a module attribute that is missing costs an exception on every call
        self._on_cpu = getattr(pipeline, "TARGET", "cpu") == "cpu"

    @property
    def check_finite(self) -> bool:
        return self.check_outputs is not None

    @property
    def label(self) -> str:
        b = "".join("b" if x else "s" for x in self.batched) if self.batched else "-"
        return f"{self.fn_name}:{self.kind}:wrt={','.join(map(str, self.wrt))}:batch={b}"

    def __repr__(self) -> str:
        state = "built" if self._mod is not None else "not built yet"
        return f"<metacc kernel {self.label} dtype={self.dtype} ({state})>"

    @property
    def _kind(self) -> str:
        # a grad kernel over a task batch is the meta-gradient
        return "meta_grad" if self.kind == "grad" and self.batched else self.kind

    @property
    def _wrt(self) -> list[int] | None:
        return list(self.wrt) if self.kind != "forward" else None

    def ir(self, stage: str = "simplified") -> Func:
        """The kernel's IR after a stage of its pipeline (metacc.pipeline); 'simplified':
        what the back end lowers."""
        if stage == "simplified" and self._ir is not None:
            return self._ir
        pipeline = self.pipeline
        if stage == "simplified":
            self._ir = pipeline.back_end(self.base, self._kind, self._wrt, self.batched, "expand").fn
            return self._ir
        return pipeline.kernel_ir(self.base, self._kind, self._wrt, stage)

    def source(self) -> str:
        # with the kernel's WARNINGS, repeated by module() when it comes from the cache
        return self.pipeline.kernel_source(self.base, self._kind, self._wrt, self.batched)

    def _new_source(self) -> str:
        """The source of a kernel about to be built: start the workers that build its loop
        nests (metacc.runtime.nests) first, so that they are ready when it is."""
        prestart()
        return self.source()

    def show(self, stage: str = "numba") -> str:
        """The kernel after a stage: 'numba' its module, 'ir' and 'simplified' its IR, or
        the program after any pass of its pipeline (an unknown name says which exist)."""
        if stage in ("numba", "lower"):
            return self.source()
        if stage in ("ir", "simplified"):
            return str(self.ir(stage))
        return self.pipeline.show_stage(self.base, self._kind, self._wrt, self.batched, stage)

    def module(self):
        if self._mod is None:
            key, parts = entry_key(self.source_key, self.label, self.dtype)
            # _entry is None when the kernel is compiled in memory (the cache cannot be used)
            self._mod, self._fresh, self._entry = open_module(self.cache_dir, key, parts, self._new_source)
            if not self._fresh:     # building warned already; a cached kernel repeats its notes
                emit_notes(getattr(self._mod, "WARNINGS", ()))
            self._descs = getattr(self._mod, "DIAGNOSTICS", None)
        return self._mod

    def __call__(self, args: list):
        if self._mod is None:       # the first call builds or loads it: say so (metacc.runtime.progress)
            out = first_call(self, lambda: self._run(args))
        else:
            out = self._run(args)
        descs = self._descs
        if descs:
            n = len(descs)
            check(descs, out[len(out) - n:], batched=self.batched is not None)
            out = out[:len(out) - n]
        if self.check_outputs is not None:       # compile(check_finite=True) / METACC_CHECK_FINITE=1
            self.check_outputs(self, args, out)
        return out

    def _run(self, args: list):
        if self._on_cpu and device_leaves(args):
            raise MetaccError(f"{self.fn_name}: a device array was passed to a CPU module",
                              found=f"device arrays at flat arguments {device_leaves(args)}",
                              hint="compile with metacc.compile(..., target='cuda'), or copy it to the host "
                                   "(.copy_to_host())")
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
