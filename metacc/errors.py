"""User-facing errors.

A `MetaccError` is what a user sees when their program, inputs or files are
wrong: where (file:line:col), the offending line with a caret, what was
expected, what was found, and a hint. Anything else escaping metacc is a bug
in metacc and is reported as an `InternalError`.

A MetaccError leaving the Python API (`api_boundary`) carries a traceback of the
user's own frames only, as JAX filters its frames: the message says what is
wrong and where in the .meta source; metacc's internals would only bury it.
METACC_FULL_TRACEBACK=1 keeps every frame (for debugging metacc itself).
"""
from __future__ import annotations

import difflib
import functools
import os
import types
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """A .meta text and the name it is reported under (a path or '<string>')."""
    name: str
    text: str

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


_EXCERPT = 120      # characters of a source line shown under a message


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a .meta source; lines and columns count from 1."""
    source: Source
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0
    # set on the equations of a backward sweep: they are the adjoint of the statement
    # at this span (the printer and the Numba lowering say so); not part of its identity
    adjoint: bool = field(default=False, compare=False)

    def as_adjoint(self) -> "Span":
        return self if self.adjoint else replace(self, adjoint=True)

    def statement(self) -> str:
        """The source line this span starts on, stripped: what a comment of generated code quotes."""
        return self.source.line(self.line).strip()

    def where(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"

    def short(self) -> str:
        """`maml.meta:12` — used in comments of generated code."""
        name = self.source.name.replace("\\", "/").rsplit("/", 1)[-1]
        return f"{name}:{self.line}"

    def excerpt(self) -> str:
        text = self.source.line(self.line)
        width = 1
        if self.end_line == self.line and self.end_col > self.col:
            width = self.end_col - self.col
        col = self.col
        if len(text) > _EXCERPT:
            # a very long line (generated code, one huge expression): a window around the column
            start = max(0, min(col - 1 - _EXCERPT // 4, len(text) - _EXCERPT))
            head, tail = ("... " if start else ""), (" ..." if start + _EXCERPT < len(text) else "")
            text = head + text[start:start + _EXCERPT] + tail
            col = col - start + len(head)
            width = max(1, min(width, _EXCERPT + len(head) - col + 1))
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: col - 1])
        return f"    {text}\n    {pad}{'^' * width}"


class MetaccError(Exception):
    """A mistake the user can fix: in a program, an input, a file or a flag."""

    def __init__(self, message: str, span: Span | None = None, *,
                 expected: str | None = None, found: str | None = None,
                 hint: str | None = None, notes: list[tuple[str, Span | None]] | None = None):
        self.message = message
        self.span = span
        self.expected = expected
        self.found = found
        self.hint = hint
        self.notes = list(notes or [])
        super().__init__(self.render())

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def col(self) -> int | None:
        return self.span.col if self.span else None

    def render(self) -> str:
        head = f"{self.span.where()}: error: {self.message}" if self.span else f"error: {self.message}"
        parts = [head]
        if self.span:
            parts.append(self.span.excerpt())
        if self.expected is not None:
            parts.append(f"  expected: {self.expected}")
        if self.found is not None:
            parts.append(f"  found:    {self.found}")
        for text, span in self.notes:
            parts.append(f"  note: {text}" + (f" ({span.where()})" if span else ""))
            if span:
                parts.append(span.excerpt())
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class MetaccErrors(MetaccError):
    """Several user errors found in one pass (`metacc check` reports them all)."""

    def __init__(self, errors: list[MetaccError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, expected=first.expected, found=first.found,
                         hint=first.hint, notes=first.notes)

    def render(self) -> str:
        return "\n\n".join(e.render() for e in self.errors)


# here, not in metacc.nonfinite (which finds the equation to blame with the interpreter, and
# so imports AD): `import metacc` exports it without loading either
class NonFiniteError(MetaccError, FloatingPointError):
    """A result of a checked call (check_finite=True) is NaN or inf.

    Attributes: function, kind (the kernel: forward, grad, ...), task (the
    first bad task of a meta function's batch, else None), prim and where
    (the first equation that made a non-finite value, when found), output
    (the name of the first non-finite result)."""

    def __init__(self, message, span=None, *, function="", kind="", task=None, prim=None, where=None,
                 output=None, **kw):
        super().__init__(message, span, **kw)
        self.function, self.kind, self.task = function, kind, task
        self.prim, self.where, self.output = prim, where, output


def did_you_mean(name: str, candidates) -> str | None:
    """The hint for a misspelt name: up to three close candidates, or None."""
    # short names (w4 for w1) differ in a larger fraction of their letters
    cutoff = 0.5 if len(name) <= 3 else 0.6
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=cutoff)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


class InternalError(Exception):
    """A bug in metacc, never a user mistake. Reports should include the message."""


# ---- traceback filtering at the API boundary ---------------------------------------------------

FULL_TRACEBACK_ENV = "METACC_FULL_TRACEBACK"
_NOTE = (f"(metacc's internal frames are hidden from this traceback; set {FULL_TRACEBACK_ENV}=1 "
         "to see them)")


@functools.lru_cache(maxsize=1)
def _internal_dirs() -> tuple[str, ...]:
    """Folders whose frames are metacc's internals: the package, its runtime (installed as
    metacc.runtime from its own folder) and lark, which calls back into the parser's methods."""
    dirs = [os.path.dirname(os.path.abspath(__file__))]
    for name in ("metacc.runtime", "lark"):
        try:
            mod = __import__(name, fromlist=["__file__"])
            dirs.append(os.path.dirname(os.path.abspath(mod.__file__)))
        except Exception:  # noqa: BLE001 - a folder we cannot find is simply not filtered
            pass
    return tuple(d + os.sep for d in dirs)


def _is_internal(frame) -> bool:
    # by module as well as by file: code that dataclasses generate (an __init__) has no file
    module = frame.f_globals.get("__name__", "") or ""
    if module == "metacc" or module.startswith(("metacc.", "lark.")):
        return True
    return os.path.abspath(frame.f_code.co_filename).startswith(_internal_dirs())


def filter_traceback(tb: types.TracebackType | None) -> tuple[types.TracebackType | None, int]:
    """The same chain of frames without metacc's own (the user's frames, in order), and how many
    frames were removed."""
    kept, removed = [], 0
    while tb is not None:
        if _is_internal(tb.tb_frame):
            removed += 1
        else:
            kept.append((tb.tb_frame, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    out = None
    for frame, lasti, lineno in reversed(kept):
        out = types.TracebackType(out, frame, lasti, lineno)
    return out, removed


def full_traceback() -> bool:
    return os.environ.get(FULL_TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def api_boundary(fn):
    """Wrap a public entry point: a MetaccError raised inside leaves it with metacc's frames
    removed from its traceback (unless METACC_FULL_TRACEBACK=1)."""
    @functools.wraps(fn)
    def entry(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MetaccError as err:
            if not full_traceback():
                tb, removed = filter_traceback(err.__traceback__)
                if removed:
                    err.__traceback__ = tb
                    if _NOTE not in getattr(err, "__notes__", ()):
                        err.add_note(_NOTE)
            # a bare raise re-raises with the traceback just set, without adding this frame
            raise
    entry.__metacc_api__ = True
    return entry


def wrap_methods(cls, names) -> None:
    """api_boundary on each named method of cls (once)."""
    for name in names:
        method = cls.__dict__.get(name)
        if method is not None and not getattr(method, "__metacc_api__", False):
            setattr(cls, name, api_boundary(method))
