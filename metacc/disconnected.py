"""The DisconnectedWarning and its collection while a kernel is built.

A differentiated input that the output does not depend on gets a warning
(the rule: metacc.ad.activity, which finds them). Warnings raised while a kernel
is built are collected (`collecting`) so that the runtime can record them with
the kernel and repeat them (`emit`) when it loads the kernel from the disk
cache; this module sits below ad/ so that the runtime can do that without
importing AD.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings

from metacc.convergence import _user_stacklevel


class DisconnectedWarning(UserWarning):
    """A differentiated input (a params field, say) that the value or output does
    not depend on: its derivative is returned as exact zeros.

    Attributes: field (its name, e.g. 'theta.temp'), where (file:line:col of the
    function or grad(...) expression being differentiated)."""

    def __init__(self, message: str, field: str = "", where: str = ""):
        super().__init__(message)
        self.field, self.where = field, where


_notes: contextvars.ContextVar = contextvars.ContextVar("metacc_disconnected", default=None)


def warn_disconnected(message: str, field: str, where: str) -> None:
    """Warn now, or record the warning when a `collecting` block is open."""
    notes = _notes.get()
    if notes is not None:
        notes.append((message, field, where))
    else:
        emit([(message, field, where)])


def report(notes) -> None:
    """Warnings found just now: to the open `collecting` block, else to the user."""
    if _notes.get() is not None:
        _notes.get().extend(notes)
    else:
        emit(notes)


def replay(notes) -> None:
    """Pass warnings found earlier (a cached expansion) to an open `collecting` block."""
    open_ = _notes.get()
    if open_ is not None:
        open_.extend(notes)


@contextlib.contextmanager
def collecting():
    """Collect the DisconnectedWarnings raised inside (a list of (message, field, where))."""
    notes: list = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def emit(notes) -> None:
    for message, field, where in notes:
        warnings.warn(DisconnectedWarning(message, field, where), stacklevel=_user_stacklevel())
