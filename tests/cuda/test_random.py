"""Counter-based random numbers on the CUDA target, in the simulator: draws equal to the
interpreter's (metacc.ir.rng, bit for bit), and a meta function whose inner loop adds
noise drawn from a key folded with the step against the interpreter."""
from __future__ import annotations

import numpy as np

import metacc
from metacc.interp import evaluate
from tests.cuda.programs import interp_mean, need_simulator

cuda = need_simulator()

DRAWS = """
fn draws(k: key) -> (u32: f32[3, 2], u64: f64[4], n32: f32[5], n64: f64[2, 3]) {
    return uniform(k, [3, 2], f32), uniform(fold_in(k, 7), [4], f64),
           normal(fold_in(k, 1), [5], f32), normal(fold_in(fold_in(k, 2), 3), [2, 3], f64)
}
"""

NOISY = """
params Lin { w: f64[3, 1] = normal(0.5) }
task Reg { x: f64[k, 3]  y: f64[k, 1] }

fn mse(p: Lin, x: f64[n, 3], y: f64[n, 1]) -> f64 { return mean((x @ p.w - y) ^ 2) }

meta noisy(theta: Lin, t: Reg, seed: key, alpha: f64 = 0.1, K: int = 2) -> f64 {
    p = theta
    repeat K as i {
        g = grad(mse(p, t.x, t.y), p)
        p = p - alpha * g + 0.01 * normal(fold_in(seed, i), [3, 1])
    }
    return mse(p, t.x, t.y)
}
"""


def test_draws_equal_the_interpreters_bit_for_bit():
    mod = metacc.compile(DRAWS, target="cuda")
    key = np.uint64(987654321)
    got = mod.draws(key)
    want = evaluate(mod.program.functions["draws"].ir, [key])
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    assert np.asarray(got[1]).std() > 0.05          # not constant


def test_per_task_noise_in_a_meta_gradient():
    mod = metacc.compile(NOISY, dtype="f64", target="cuda")
    rng = np.random.default_rng(2)
    theta = mod.Lin.init(seed=0)
    t = {"x": rng.normal(size=(2, 4, 3)), "y": rng.normal(size=(2, 4, 1))}
    seed = np.uint64(11)
    loss, g = mod.noisy.value_and_grad(theta, t, seed)
    ir = mod.program.functions["noisy"].ir
    want = interp_mean(ir, "meta_grad", [0], [theta["w"]], [t["x"], t["y"]], [seed, np.float64(0.1)], 2)
    np.testing.assert_allclose(loss, want[0], rtol=1e-10)
    np.testing.assert_allclose(g["w"], want[1], rtol=1e-10, atol=1e-13)
    # the noise matters: without it (the same tasks, the same keys, scaled by zero) the loss differs
    quiet = metacc.compile(NOISY.replace("0.01 * normal", "0.0 * normal"), dtype="f64", target="cuda")
    assert abs(quiet.noisy(theta, t, seed) - loss) > 1e-8


def test_gumbel_softmax_and_categorical_built_on_the_draws():
    text = """
fn soft(z: f64[4, 3], k: key) -> f64[4, 3] { return gumbel_softmax(k, z, 0.7) }
fn drawn(z: f64[4, 3], k: key) -> i64[4] { return categorical(z, k) }
"""
    mod = metacc.compile(text, dtype="f64", target="cuda")
    z, key = np.random.default_rng(5).normal(size=(4, 3)), np.uint64(77)
    for name in ("soft", "drawn"):
        got = np.asarray(getattr(mod, name)(z, key))
        want = np.asarray(evaluate(mod.program.functions[name].ir, [z, key])[0])
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12)
