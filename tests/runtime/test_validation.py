"""Wrong inputs are MetaccErrors that name the argument and say what was
expected and what was given (the kernels never see them)."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.errors import MetaccError


def err(fn, *args, **kw) -> MetaccError:
    with pytest.raises(MetaccError) as info:
        fn(*args, **kw)
    return info.value


def test_wrong_shape(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss, p, data["x"][:, :2], data["y"])
    assert "'x'" in e.message and e.expected == "f64[n, 3]" and "(6, 2)" in e.found


def test_wrong_rank(mod, data):
    e = err(mod.loss, mod.Lin.init(), data["x"].ravel(), data["y"])
    assert "'x'" in e.message and "axes" in e.message


def test_wrong_dtype_is_never_converted(mod, data):
    p = mod.Lin.init()
    p["w"] = p["w"].astype(np.float32)
    e = err(mod.loss, p, data["x"], data["y"])
    assert "'p.w'" in e.message and "float32" in e.message and "float64" in e.message
    assert "astype" in e.hint


def test_inconsistent_symbolic_dim(mod, data):
    e = err(mod.loss, mod.Lin.init(), data["x"], data["y"][:4])
    assert "dim n" in e.message and "'y'" in e.message and "'x'" in e.message


def test_missing_and_extra_fields(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss, {"w": p["w"]}, data["x"], data["y"])
    assert "missing field 'b'" in e.message and "'p'" in e.message
    e = err(mod.loss, dict(p, c=p["b"]), data["x"], data["y"])
    assert "unknown field 'c'" in e.message
    tasks = {"support": data["tasks"]["support"], "query": {"x": data["tasks"]["query"]["x"]}}
    e = err(mod.adapt, p, tasks)
    assert "'t.query'" in e.message and "missing field 'y'" in e.message


def test_not_a_mapping(mod, data):
    e = err(mod.loss, [1, 2], data["x"], data["y"])
    assert "'p'" in e.message and "mapping" in e.message


def test_batch_axis_mismatch(mod, data):
    tasks = {"support": data["tasks"]["support"],
             "query": {"x": data["tasks"]["query"]["x"][:4], "y": data["tasks"]["query"]["y"][:4]}}
    e = err(mod.adapt, mod.Lin.init(), tasks)
    assert "batch axis mismatch" in e.message and "t.query.x" in e.message


def test_unbatched_task_gets_a_hint(mod, data):
    one = {s: {k: v[0] for k, v in d.items()} for s, d in data["tasks"].items()}
    e = err(mod.adapt, mod.Lin.init(), one)
    assert "leading axis" in e.hint


def test_call_errors(mod, data):
    p = mod.Lin.init()
    assert "no argument 'z'" in err(mod.loss, p, data["x"], data["y"], z=1).message
    assert "missing argument 'y'" in err(mod.loss, p, data["x"]).message
    assert "takes 3 arguments" in err(mod.loss, p, data["x"], data["y"], 1).message
    assert "unknown argument 'q'" in err(mod.loss.grad, p, data["x"], data["y"], wrt="q").message
    assert "cannot differentiate" not in str(err(mod.loss.grad, p, data["x"], data["y"], wrt="q"))
    assert "no params, task or function named 'los'" in err(getattr, mod, "los").message


def test_hvp_direction_checked(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss.hvp, p, data["x"], data["y"], v={"w": p["w"]})
    assert "'v'" in e.message and "missing field 'b'" in e.message
