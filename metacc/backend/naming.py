"""Python identifiers for IR vars: source names kept, made valid and unique.

`theta.w1` becomes `theta_w1`; a name that collides with a Python keyword, a
helper of the generated module or a loop index gets a suffix from
`metacc.ir.printer.Names`, which also makes repeated IR names unique.
"""
from __future__ import annotations

import builtins
import keyword
import re

from metacc.ir.core import Atom, Var
from metacc.ir.prims import PRIMS
from metacc.backend.extern import NAMES as EXTERN
from metacc.backend.helpers import NAMES as HELPERS
from metacc.ir.printer import Names

# Names the generated code uses for itself: modules, helpers, loop indices,
# workspace arguments. No IR var may print as one of these.
RESERVED = frozenset({
    "np", "numba", "njit", "prange", "range", "min", "max", "abs", "len", "float", "int", "bool",
    "tuple", "print", "at", "ValueError", "n_tasks", "n_workers", "worker", "task", "sizes",
    "task_lo", "task_hi", "lo", "hi", "pool_flags", "pool_job", "release_workers",
} | {f"i{d}" for d in range(16)}
  | {f"{p}_{t}" for p in ("ws", "at") for t in ("f32", "f64", "i64", "bool", "key")}
  | {f"{p}{j}" for p in ("per_task", "over_tasks") for j in range(256)}
  | set(HELPERS) | set(EXTERN) | {"CACHE", "r", "i", "threads", "work"} | set(dir(builtins)))


def sanitize(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_") or "v"
    if s[0].isdigit():
        s = "v_" + s
    if keyword.iskeyword(s) or s.startswith("_"):
        s = s + "_"
    return s


def output_names(outs: tuple[Atom, ...]) -> list[str]:
    """Names of a kernel's output arguments, after what they are: the gradient of
    `theta.w1` (its cotangent, `theta.w1_bar` in the IR) is `g_theta_w1`; the value
    of a function returned beside its gradients is `loss`; a value with no source
    name (named after its primitive, `div`) is `value`. Unique names are made later."""
    bases = []
    for a in outs:
        name = getattr(a, "name", "value")
        if name.endswith("_bar"):
            name = "g_" + name[:-len("_bar")]
        elif name in PRIMS:
            name = "value"
        bases.append(sanitize(name))
    rest = bases[1:]
    if outs and outs[0].type.rank == 0 and any(b.startswith("g_") for b in rest) \
            and not bases[0].startswith("g_"):
        bases[0] = "loss"
    return bases


class CodeNames:
    """One namespace per generated Python function (scan bodies are inlined into it)."""

    def __init__(self, reserved=()):
        self._names = Names(RESERVED | set(reserved))

    def __call__(self, v: Var) -> str:
        return self._names.name(v, sanitize)

    def fresh(self, base: str) -> str:
        """A new local that stands for no IR var (loop counters, spare buffers)."""
        return self._names.name(Var(base, None), sanitize)  # type: ignore[arg-type]

    def dim(self, symbol: str) -> str:
        """The local holding a symbolic dim's size (`n = x.shape[0]`)."""
        return self.fresh(symbol)

    def bind(self, v: Var, name: str) -> None:
        """Make v print as an existing local (a scan const is its outer value)."""
        self._names.of[v] = name

    def has(self, v: Var) -> bool:
        return v in self._names.of
