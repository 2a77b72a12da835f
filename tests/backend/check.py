"""Comparing a lowered kernel with the reference interpreter."""
from __future__ import annotations

import numpy as np

from metacc.interp import evaluate

RTOL = {"f64": 1e-10, "f32": 2e-5}


def assert_matches(fn, mod, args, dtype="f64", atol=None):
    """Every output of the kernel's call entry equals the interpreter's."""
    want = evaluate(fn, args)
    got = mod.ENTRY_CALL(*args)
    assert len(got) == len(want)
    for j, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"output {j}: shape {g.shape} vs {w.shape}"
        assert g.dtype == w.dtype, f"output {j}: dtype {g.dtype} vs {w.dtype}"
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"output {j}")
        else:
            tol = atol if atol is not None else RTOL[dtype]
            np.testing.assert_allclose(g, w, rtol=RTOL[dtype], atol=tol, err_msg=f"output {j}")
    return got
