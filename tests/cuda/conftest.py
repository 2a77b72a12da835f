"""The CUDA target's tests run on numba-cuda's simulator (no GPU needed): a Python
thread per CUDA thread, so every size here is tiny.

NUMBA_ENABLE_CUDASIM must be seen before numba.cuda is first imported; numba may be
imported already by other test folders, so its config flag is set as well. Each test
module skips itself (pytest.importorskip) where numba-cuda is not installed."""
from __future__ import annotations

import importlib.util
import os
import sys

if importlib.util.find_spec("numba_cuda") is not None and "numba.cuda" not in sys.modules:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba
    numba.config.ENABLE_CUDASIM = 1
