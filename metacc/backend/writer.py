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

    def returns(self, items: list[str]) -> None:
        """`return (a, b, c)`, one item a line when there are more than two (the entry
        points return every output: a layout that does not depend on their lengths)."""
        if len(items) <= 2:
            self.line(f"return ({', '.join(items)}{',' if len(items) == 1 else ''})")
            return
        self.line(f"return ({items[0]},")
        for item in items[1:-1]:
            self.line(f"        {item},")
        self.line(f"        {items[-1]})")

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
