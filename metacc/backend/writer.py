"""A small indenting writer for generated Python source."""
from __future__ import annotations

from contextlib import contextmanager


class Writer:
    def __init__(self, indent: int = 0):
        self.lines: list[str] = []
        self.depth = indent

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.depth + text) if text else "")

    def comment(self, text: str) -> None:
        self.line(f"# {text}")

    @contextmanager
    def block(self, header: str):
        """`for ...:` / `if ...:` / `def ...:` and an indented body."""
        self.line(header)
        self.depth += 1
        start = len(self.lines)
        try:
            yield
        finally:
            if len(self.lines) == start:      # an empty body is still valid Python
                self.line("pass")
            self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
