"""Every kind of node and every builtin, registered: importing this module completes
metacc.frontend.dispatch's tables and metacc.frontend.builtins.BUILTINS.

metacc/frontend/__init__.py imports it, so the tables are complete whichever part
of the front end is imported first."""
from __future__ import annotations

from metacc.frontend import calls, differentiate, exprs, indexing, loops, stmts  # noqa: F401
from metacc.frontend import lib_ad, lib_array, lib_math, lib_random  # noqa: F401
