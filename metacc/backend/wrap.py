"""Fold generated Python lines to at most WIDTH characters.

Generated code is read by people (`metacc show --stage numba`), and a kernel's
signature or a call with every buffer can run to hundreds of characters. A long
line is broken inside brackets, after a comma or before a binary operator, and
continues 8 spaces in from where the statement starts: Python joins such lines
itself, so the code and what Numba compiles from it are unchanged.
"""
from __future__ import annotations

WIDTH = 120
_OPS = (" + ", " - ", " * ", " / ", " and ", " or ")


def wrap_source(src: str) -> str:
    return "\n".join(piece for line in src.split("\n") for piece in wrap_line(line))


def wrap_line(line: str) -> list[str]:
    if len(line) <= WIDTH or line.lstrip().startswith("#"):
        return [line]
    pad = " " * (len(line) - len(line.lstrip()) + 8)
    out, depth = [], 0
    while len(line) > WIDTH:
        cut, depth_after = _break_at(line, len(pad) + 8, depth)
        if cut is None:
            break
        out.append(line[:cut].rstrip())
        line, depth = pad + line[cut:].lstrip(), depth_after
    return out + [line]


def _break_at(line: str, least: int, depth: int) -> tuple[int | None, int]:
    """The place at or before WIDTH, inside brackets and outside strings, to break the
    line (the outermost comma in its second half, else the last binary operator or the
    space between two pieces of a string), and the bracket depth there. `depth`: the
    brackets already open where the line starts."""
    quote, escaped, commas, op = None, False, [], None
    for i, ch in enumerate(line[:WIDTH]):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth > 0 and i >= least:
            if ch == ",":
                commas.append((i + 1, depth))
            elif ch == " " and (any(line.startswith(op_, i) for op_ in _OPS)
                                or (line[i - 1] in "'\"" and line[i + 1:i + 2] in ("'", '"'))):
                op = (i, depth)         # before a binary operator, or between two string pieces
    # the outermost comma in the second half of the line: `f(a, g(b, c))` breaks before g
    late = [c for c in commas if c[0] > WIDTH // 2]
    if late:
        return max(late, key=lambda c: (-c[1], c[0]))
    return op or (commas[-1] if commas else (None, depth))


def literal(value) -> str:
    """repr() of a constant made of dicts, lists, tuples, strings and numbers, with each
    long string cut at spaces into pieces Python joins again (`('...' '...')`), so that
    wrap_line can fold it."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str) and len(value) > 80:
        pieces, cur = [], ""
        for word in value.split(" "):
            if cur and len(cur) + len(word) > 72:
                pieces.append(cur)
                cur = ""
            cur += word + " "
        pieces.append(cur[:-1])
        return "(" + " ".join(repr(p) for p in pieces) + ")"
    return repr(value)
