"""Collecting user errors and phrasing the common ones.

The checker keeps going after an error so that `metacc check` can report
everything it finds in one run; `Reporter` gathers the errors (once each) and
raises them together at the end.
"""
from __future__ import annotations

from metacc.errors import MetaccError, MetaccErrors, Span
from metacc.ir.types import ShapeError


class Reporter:
    def __init__(self):
        self.errors: list[MetaccError] = []
        self.count = 0                      # every report, duplicates included: "did anything fail?"
        self._seen: set[tuple] = set()

    def report(self, err: MetaccError) -> None:
        self.count += 1
        key = (err.span.where() if err.span else None, err.message)
        if key not in self._seen:
            self._seen.add(key)
            self.errors.append(err)

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        errors = sorted(self.errors, key=lambda e: (e.line or 0, e.col or 0))
        raise errors[0] if len(errors) == 1 else MetaccErrors(errors)


_SHAPE_HINTS = (
    ("different dtypes", "metacc never mixes f32 and f64 silently: cast one operand with f32(...) or f64(...)"),
    ("inner dims", "in a @ b the last dim of a must equal the first dim of b: check the order, "
                   "or transpose one side with transpose(...)"),
    ("do not broadcast", "shapes broadcast from the right, and a dim stretches only when it is 1: "
                         "reshape(...) or transpose(...) one operand"),
    ("takes 2-D", "@ multiplies matrices: reshape a vector to [n, 1] or [1, n] first"),
    ("needs a float", "cast it with f32(...) or f64(...)"),
    ("needs float", "cast it with f32(...) or f64(...)"),
    ("needs boolean", "and, or and not combine comparisons such as x > 0"),
    ("must be boolean", "the condition of where(...) is a comparison such as x > 0"),
    ("number of elements", "reshape keeps the number of elements; symbolic dims must appear on both sides"),
)


def shape_error(err: ShapeError, span: Span | None, operands=(), what: str | None = None,
                hint: str | None = None) -> MetaccError:
    """A type rule's complaint, located at the expression, with each operand's type and origin."""
    text = str(err)
    if hint is None:
        hint = next((h for key, h in _SHAPE_HINTS if key in text), None)
    typed = [v for v in operands if hasattr(v, "type")]
    notes = [(f"`{v.desc}` is {v.type}", v.origin) for v in typed if v.desc]
    found = " and ".join(str(v.type) for v in typed) or None
    message = f"{what}: {text}" if what else text
    return MetaccError(message, span, found=found, hint=hint, notes=notes)
