"""metacc.compile end to end: every call kind against the reference interpreter
run on the same derivative IR (and the meta-gradient against the mean of
per-task results)."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

RT = dict(rtol=1e-10, atol=1e-12)


def flat_p(p):
    return [p["w"], p["b"]]


def task(tasks, b):
    return [tasks["support"]["x"][b], tasks["support"]["y"][b], tasks["query"]["x"][b], tasks["query"]["y"][b]]


def test_forward(mod, data):
    p = mod.Lin.init(seed=3)
    got = mod.loss(p, data["x"], data["y"])
    (want,) = evaluate(mod.loss.fn.ir, flat_p(p) + [data["x"], data["y"]])
    assert got.dtype == np.float64 and got.shape == ()
    np.testing.assert_allclose(got, want, **RT)


def test_value_and_grad(mod, data):
    p = mod.Lin.init(seed=3)
    value, g = mod.loss.value_and_grad(p, data["x"], data["y"])
    want = evaluate(kernel_ir(mod.loss.fn.ir, "grad", [0, 1]), flat_p(p) + [data["x"], data["y"]])
    np.testing.assert_allclose(value, want[0], **RT)
    assert set(g) == {"w", "b"} and g["w"].shape == (3, 2)
    np.testing.assert_allclose(g["w"], want[1], **RT)
    np.testing.assert_allclose(g["b"], want[2], **RT)
    np.testing.assert_allclose(mod.loss.grad(p, data["x"], data["y"])["w"], want[1], **RT)


def test_gradient_against_finite_differences(mod, data):
    p = mod.Lin.init(seed=3)
    g = mod.loss.grad(p, data["x"], data["y"])
    eps = 1e-6
    for idx in [(0, 0), (2, 1)]:
        hi, lo = {k: v.copy() for k, v in p.items()}, {k: v.copy() for k, v in p.items()}
        hi["w"][idx] += eps
        lo["w"][idx] -= eps
        fd = (mod.loss(hi, data["x"], data["y"]) - mod.loss(lo, data["x"], data["y"])) / (2 * eps)
        np.testing.assert_allclose(g["w"][idx], fd, rtol=1e-6, atol=1e-9)


def test_hvp_jvp_vjp(mod, data):
    p, v = mod.Lin.init(seed=4), data["v"]
    args = flat_p(p) + [data["x"], data["y"]]
    hv = mod.loss.hvp(p, data["x"], data["y"], v=v)
    want = evaluate(kernel_ir(mod.loss.fn.ir, "hvp", [0, 1]), args + [v["w"], v["b"]])
    np.testing.assert_allclose(hv["w"], want[2], **RT)
    np.testing.assert_allclose(hv["b"], want[3], **RT)

    out, out_dot = mod.loss.jvp(p, data["x"], data["y"], tangents=v)
    want = evaluate(kernel_ir(mod.loss.fn.ir, "jvp", [0, 1]), args + [v["w"], v["b"]])
    np.testing.assert_allclose(out, want[0], **RT)
    np.testing.assert_allclose(out_dot, want[1], **RT)

    out, bars = mod.loss.vjp(p, data["x"], data["y"], cotangent=2.0)
    want = evaluate(kernel_ir(mod.loss.fn.ir, "vjp", [0, 1]), args + [np.float64(2.0)])
    np.testing.assert_allclose(bars["w"], want[1], **RT)
    np.testing.assert_allclose(bars["b"], want[2], **RT)


def test_meta_value_and_grad_is_mean_over_tasks(mod, data):
    theta, tasks = mod.Lin.init(seed=5), data["tasks"]
    loss, g = mod.adapt.value_and_grad(theta, tasks)
    ir = kernel_ir(mod.adapt.fn.ir, "meta_grad", [0, 1])
    per = [evaluate(ir, flat_p(theta) + task(tasks, b) + [np.float64(0.1)]) for b in range(5)]
    np.testing.assert_allclose(loss, np.mean([r[0] for r in per]), **RT)
    np.testing.assert_allclose(g["w"], np.mean([r[1] for r in per], axis=0), **RT)
    np.testing.assert_allclose(g["b"], np.mean([r[2] for r in per], axis=0), **RT)
    (fwd,) = [mod.adapt(theta, tasks)]
    np.testing.assert_allclose(fwd, loss, **RT)


def test_static_argument_selects_a_variant(mod, data):
    theta, tasks = mod.Lin.init(seed=5), data["tasks"]
    k2 = mod.adapt(theta, tasks)
    k3 = mod.adapt(theta, tasks, K=3)
    assert k3 != k2
    np.testing.assert_allclose(mod.adapt(theta, tasks, K=2), k2, **RT)


def test_float32_module(cache_dir, data):
    import metacc
    from tests.runtime.conftest import SOURCE
    m32 = metacc.compile(SOURCE, dtype="f32", cache_dir=cache_dir)
    p = m32.Lin.init(seed=3)
    assert p["w"].dtype == np.float32
    x, y = data["x"].astype(np.float32), data["y"].astype(np.float32)
    value, g = m32.loss.value_and_grad(p, x, y)
    assert value.dtype == np.float32 and g["w"].dtype == np.float32
    want = evaluate(kernel_ir(m32.loss.fn.ir, "grad", [0, 1]), flat_p(p) + [x, y])
    np.testing.assert_allclose(g["w"], want[1], rtol=2e-5, atol=1e-6)


def test_source_is_readable(mod):
    src = mod.adapt.source("grad")
    assert "def adapt" in src and "theta_w" in src and "0x" not in src
    assert "# <string>:" in src                 # .meta lines of each block
    assert "func " in mod.adapt.source("grad", stage="simplified")


def test_init(mod):
    a, b = mod.Lin.init(seed=0), mod.Lin.init(seed=0)
    assert np.array_equal(a["w"], b["w"]) and not np.array_equal(a["w"], mod.Lin.init(seed=1)["w"])
    assert np.all(a["b"] == 0) and a["b"].shape == (2,)
    assert mod.Lin.init(dtype="f32")["w"].dtype == np.float32


@pytest.mark.parametrize("kind,args,std", [("he_normal", (), np.sqrt(2 / 400)),
                                           ("glorot_normal", (), np.sqrt(2 / 700)),
                                           ("normal", (0.3,), 0.3)])
def test_initialiser_scales(kind, args, std):
    from metacc.program import Field, Init
    from metacc.ir.types import TensorType
    from metacc.runtime.initializers import init_field
    x = init_field(Field("w", TensorType("f64", (400, 300)), Init(kind, args)), np.random.default_rng(0), "f64", "G")
    assert abs(x.std() / std - 1) < 0.02 and abs(x.mean()) < 0.05 * std


def test_uniform_and_const_initialisers():
    from metacc.program import Field, Init
    from metacc.ir.types import TensorType
    from metacc.runtime.initializers import init_field
    rng = np.random.default_rng(0)
    u = init_field(Field("w", TensorType("f32", (50, 50)), Init("uniform", (-0.5, 0.25))), rng, "f32", "G")
    assert u.dtype == np.float32 and u.min() >= -0.5 and u.max() < 0.25
    c = init_field(Field("w", TensorType("f64", (3,)), Init("const", (0.01,))), rng, "f64", "G")
    assert np.all(c == 0.01)


def test_program_object_and_dtype_override(cache_dir):
    """A hand-built Program compiles too, and dtype='f64' retypes an f32 program."""
    import metacc
    from tests.backend.programs import p1_program
    prog = p1_program(K=1, dtype="f32")
    m64 = metacc.compile(prog, dtype="f64", cache_dir=cache_dir)
    p = m64.Net.init(seed=0)
    assert p["w2"].dtype == np.float64 and m64.mse.fn.ir.ins[0].type.dtype == "f64"
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-5, 5, (10, 1)), rng.normal(size=(10, 1))
    (want,) = evaluate(m64.mse.fn.ir, flat_net(p) + [x, y])
    np.testing.assert_allclose(m64.mse(p, x, y), want, **RT)
    m32 = metacc.compile(prog, cache_dir=cache_dir)
    with pytest.raises(Exception, match="dtype float64, expected float32"):
        m32.mse(p, x, y)


def flat_net(p):
    return [p[k] for k in ("w1", "b1", "w2", "b2", "w3", "b3")]
