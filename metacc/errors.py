"""User-facing errors.

A `MetaccError` is what a user sees when their program, inputs or files are
wrong: where (file:line:col), the offending line with a caret, what was
expected, what was found, and a hint. Anything else escaping metacc is a bug
in metacc and is reported as an `InternalError`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """A .meta text and the name it is reported under (a path or '<string>')."""
    name: str
    text: str

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a .meta source; lines and columns count from 1."""
    source: Source
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

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
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.col - 1])
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


class InternalError(Exception):
    """A bug in metacc, never a user mistake. Reports should include the message."""
