"""Every kind of node and every builtin, registered: importing this module completes
metacc.frontend.dispatch's tables and metacc.frontend.builtins.BUILTINS (re-exported here).

The lowering driver (to_program.py) imports it; so does whatever reads the tables on its own."""
from __future__ import annotations

from metacc.frontend import calls, differentiate, exprs, indexing, loops, stmts  # noqa: F401
from metacc.frontend import lib_ad, lib_array, lib_conv, lib_math, lib_random  # noqa: F401
from metacc.frontend.builtins import BUILTINS  # noqa: F401,E402  (complete once the above are imported)
