"""Every `dtype=` takes the NumPy spellings of f32 / f64 too, and names what it accepts otherwise.

No kernel is built here: compile() runs the front end only, init() and the
samplers are NumPy.
"""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.dtypes import float_dtype
from metacc.frontend import load_source
from metacc.runtime.tasks import linear_regression_tasks, sinusoid_tasks
from tests.runtime.conftest import SOURCE

F32 = ["f32", "float32", np.float32, np.dtype("float32"), np.dtype(np.float32)]
F64 = ["f64", "float64", np.float64, np.dtype("float64"), float]
BAD = ["f16", "float", "double", "F64", "int64", np.int32, np.float16, np.dtype("complex128"), True, 1.0, 64, [], "",
       "f64 "]


@pytest.mark.parametrize("spelling", F32 + F64)
def test_compile_accepts_numpy_spellings(spelling, cache_dir):
    want = "f32" if spelling in F32 else "f64"
    mod = metacc.compile(SOURCE, dtype=spelling, cache_dir=cache_dir)
    assert mod.dtype == want
    theta = mod.Lin.init(seed=0)
    assert theta["w"].dtype == np.dtype(want.replace("f", "float"))
    # the program itself is retyped (its kernels are built at that precision)
    assert mod.Lin.group.fields[0].type.dtype == want


@pytest.mark.parametrize("spelling", [np.float32, "float32", np.dtype("float32")])
def test_init_and_samplers_accept_numpy_spellings(spelling, mod):
    assert all(v.dtype == np.float32 for v in mod.Lin.init(seed=0, dtype=spelling).values())
    tasks = sinusoid_tasks(np.random.default_rng(0), 2, k=3, dtype=spelling)
    assert tasks["support"]["x"].dtype == np.float32
    assert linear_regression_tasks(np.random.default_rng(0), 2, dtype=spelling)["x"].dtype == np.float32
    assert load_source(SOURCE, float_dtype=spelling).groups["Lin"].fields[0].type.dtype == "f32"


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_other_dtypes_are_refused_with_the_spellings(bad, cache_dir, mod):
    for call in (lambda: metacc.compile(SOURCE, dtype=bad, cache_dir=cache_dir),
                 lambda: mod.Lin.init(dtype=bad),
                 lambda: sinusoid_tasks(np.random.default_rng(0), 2, dtype=bad),
                 lambda: load_source(SOURCE, float_dtype=bad)):
        with pytest.raises(metacc.MetaccError) as e:
            call()
        msg = str(e.value)
        assert "'float64'" in msg and "np.float32" in msg and repr(bad) in msg


def test_none_means_the_declared_precision_where_that_exists():
    assert float_dtype(None, "compile", allow_none=True) is None
    # np.dtype(None) is float64: None must not slip through as f64 where no default exists
    with pytest.raises(metacc.MetaccError, match="dtype must be a float precision"):
        float_dtype(None, "sinusoid_tasks")
    with pytest.raises(metacc.MetaccError, match="sinusoid_tasks|tasks_for"):
        sinusoid_tasks(np.random.default_rng(0), 2, dtype=None)
