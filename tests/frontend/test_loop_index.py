"""`repeat K as k`: the step index (issue 11).

Every looped function here has an unrolled twin written by hand with the step
numbers as literals; values and derivatives of the loop must equal the twin's,
whatever the loop's annotations. Derivatives are also checked against central
finite differences (float64) of the reference interpreter, and compiled kernels
against the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError, MetaccErrors
from metacc.frontend import load_source
from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

HEAD = """
params Net { w: f64[3, 2] = he_normal  b: f64[2] = zeros }
params Rates { alpha: f64[4] = const(0.3) }
task Reg { support: (x: f64[s, 3], y: f64[s, 2])  query: (x: f64[q, 3], y: f64[q, 2]) }
fn loss(p: Net, x: f64[n, 3], y: f64[n, 2]) -> f64 { return mean((tanh(x @ p.w + p.b) - y) ^ 2) }
"""

# a per-step rate alpha[k], a schedule 0.5^k and a step-dependent choice where(k < 1, ...)
STEP = "p = p - {rate} * {decay} * {first} * {g}(loss(p, t.support.x, t.support.y), p)"


def _looped(name: str, annotation: str) -> str:
    body = STEP.format(rate="r.alpha[k]", decay="0.5 ^ f64(k)", first="where(k < 1, 2.0, 1.0)", g="grad")
    return (f"meta {name}(theta: Net, r: Rates, t: Reg) -> f64 {{\n    p = theta\n"
            f"    repeat 3 as k {annotation} {{\n        {body}\n    }}\n"
            f"    return loss(p, t.query.x, t.query.y)\n}}\n")


def _unrolled(name: str, exact_steps) -> str:
    lines = []
    for k in range(3):
        g = "grad" if k in exact_steps else "sg"
        step = STEP.format(rate=f"r.alpha[{k}]", decay=f"{0.5 ** k}", first="2.0" if k < 1 else "1.0", g=g)
        lines.append("    " + step.replace("sg(loss(p, t.support.x, t.support.y), p)",
                                           "stop_gradient(grad(loss(p, t.support.x, t.support.y), p))"))
    return (f"meta {name}(theta: Net, r: Rates, t: Reg) -> f64 {{\n    p = theta\n" + "\n".join(lines)
            + "\n    return loss(p, t.query.x, t.query.y)\n}\n")


VARIANTS = {               # looped annotation, the steps its twin differentiates exactly
    "plain": ("", (0, 1, 2)),
    "first_order": ("@first_order", ()),
    "truncate": ("@truncate(1)", (2,)),
    "checkpoint": ("@checkpoint(every=2)", (0, 1, 2)),
}

KEYS = """
fn noisy(key: key, x: f64[3]) -> f64[3] {
    y = x
    repeat 3 as k { y = y * 0.9 + normal(fold_in(key, k), [3]) }
    return y
}
fn noisy_unrolled(key: key, x: f64[3]) -> f64[3] {
    y = x
    y = y * 0.9 + normal(fold_in(key, 0), [3])
    y = y * 0.9 + normal(fold_in(key, 1), [3])
    y = y * 0.9 + normal(fold_in(key, 2), [3])
    return y
}
"""

SRC = HEAD + "".join(_looped(f"loop_{n}", a) + _unrolled(f"twin_{n}", steps)
                     for n, (a, steps) in VARIANTS.items()) + KEYS


@pytest.fixture(scope="module")
def prog():
    return load_source(SRC, "loop_index.meta")


@pytest.fixture(scope="module")
def args():
    rng = np.random.default_rng(11)
    return [rng.normal(size=(3, 2)), 0.1 * rng.normal(size=2), np.array([0.3, 0.2, 0.4, 9.0]),
            rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))]


WRT = [0, 1, 2]      # theta.w, theta.b, r.alpha


def _ir(prog, name):
    return prog.functions[name].ir


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_equal_the_unrolled_program(prog, args, variant):
    got = evaluate(_ir(prog, f"loop_{variant}"), args)
    want = evaluate(_ir(prog, f"twin_{variant}"), args)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # and every variant computes the same value: annotations change derivatives only
    np.testing.assert_allclose(got, evaluate(_ir(prog, "twin_plain"), args), rtol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["meta_grad", "vjp", "jvp", "hvp"])
def test_every_derivative_kind_equals_the_unrolled_program(prog, args, variant, kind):
    rng = np.random.default_rng(2)
    extra = []
    if kind == "vjp":
        extra = [np.float64(1.7)]
    elif kind in ("jvp", "hvp"):
        extra = [rng.normal(size=np.shape(args[i])) for i in WRT]
    got = evaluate(kernel_ir(_ir(prog, f"loop_{variant}"), kind, WRT), args + extra)
    want = evaluate(kernel_ir(_ir(prog, f"twin_{variant}"), kind, WRT), args + extra)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_the_gradient_matches_central_differences(prog, args):
    fn = _ir(prog, "loop_plain")
    grads = evaluate(kernel_ir(fn, "meta_grad", WRT), args)[1:]
    eps = 1e-6
    for i, g in zip(WRT, grads):
        fd = np.zeros_like(args[i])
        for idx in np.ndindex(np.shape(args[i])):
            plus = [np.array(a, copy=True) for a in args]
            minus = [np.array(a, copy=True) for a in args]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd[idx] = (evaluate(fn, plus)[0] - evaluate(fn, minus)[0]) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    assert grads[2][3] == 0.0      # alpha[3] is never read by 3 steps: exactly zero


def test_per_step_keys_equal_the_unrolled_draws(prog):
    key, x = np.uint64(5), np.array([1.0, -2.0, 0.5])
    got = evaluate(_ir(prog, "noisy"), [key, x])[0]
    np.testing.assert_array_equal(got, evaluate(_ir(prog, "noisy_unrolled"), [key, x])[0])
    assert not np.allclose(got, evaluate(_ir(prog, "noisy"), [np.uint64(6), x])[0])


# ---- compiled kernels equal the interpreter ----

@pytest.fixture(scope="module")
def mod(tmp_path_factory):
    return metacc.compile(SRC, cache_dir=tmp_path_factory.mktemp("loop_index_cache"))


# the kernel IR of every variant is checked above; compiling the annotated ones takes 15-25 s each
@pytest.mark.parametrize("variant", ["plain", pytest.param("truncate", marks=pytest.mark.slow),
                                     pytest.param("checkpoint", marks=pytest.mark.slow)])
def test_compiled_meta_gradient_equals_the_interpreter(mod, prog, args, variant):
    rng = np.random.default_rng(4)
    b = 2
    tasks = {"support": {"x": rng.normal(size=(b, 4, 3)), "y": rng.normal(size=(b, 4, 2))},
             "query": {"x": rng.normal(size=(b, 5, 3)), "y": rng.normal(size=(b, 5, 2))}}
    theta, rates = {"w": args[0], "b": args[1]}, {"alpha": args[2]}
    loss, (g, gr) = getattr(mod, f"loop_{variant}").value_and_grad(theta, rates, tasks, wrt=("theta", "r"))
    kern = kernel_ir(_ir(prog, f"loop_{variant}"), "meta_grad", WRT)
    per_task = [evaluate(kern, [theta["w"], theta["b"], rates["alpha"], tasks["support"]["x"][i],
                                tasks["support"]["y"][i], tasks["query"]["x"][i], tasks["query"]["y"][i]])
                for i in range(b)]
    want = [np.mean([t[j] for t in per_task], axis=0) for j in range(4)]
    np.testing.assert_allclose(loss, want[0], rtol=1e-10)
    np.testing.assert_allclose(g["w"], want[1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g["b"], want[2], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gr["alpha"], want[3], rtol=1e-10, atol=1e-14)


# ---- errors ----

@pytest.mark.parametrize("marked,message,hint", [
    ("repeat 5 as k { p = p - r.alpha[$k] * grad(loss(p, t.support.x, t.support.y), p) }",
     "runs to 4, but axis 0", "f64[5]"),
    ("repeat 3 as $k { k = 1.0  p = p - 0.1 * grad(loss(p, t.support.x, t.support.y), p) }",
     "loop index `k` is assigned", "rate = 0.5 ^ f32(k)"),
    ("repeat 3 as k { p = p - r.alpha[$k + 1] * grad(loss(p, t.support.x, t.support.y), p) }",
     "add needs float operands", None),      # no integer arithmetic: only k itself indexes
])
def test_mistakes_are_located_errors(marked, message, hint):
    body = f"meta m(theta: Net, r: Rates, t: Reg) -> f64 {{\n    p = theta\n    {marked}\n" \
           "    return loss(p, t.query.x, t.query.y)\n}\n"
    text = HEAD + body
    with pytest.raises(MetaccError) as info:
        load_source(text.replace("$", ""), "bad.meta")
    errs = info.value.errors if isinstance(info.value, MetaccErrors) else [info.value]
    assert len(errs) == 1, "\n".join(e.render() for e in errs)
    err = errs[0]
    assert message in err.message, err.render()
    line = text[:text.index("$")].count("\n") + 1
    col = text.index("$") - text.rindex("\n", 0, text.index("$"))
    assert (err.line, err.col) == (line, col), err.render()
    if hint:
        assert hint in err.hint, err.render()


NESTED = HEAD + """
meta nested(theta: Net, r: Rates, t: Reg) -> f64 {
    p = theta
    repeat 2 as i @checkpoint(snapshots=2) {
        repeat 2 as j {
            p = p - grad(r.alpha[j] * (1.0 + f64(i)) * loss(p, t.support.x, t.support.y), p)
        }
    }
    return loss(p, t.query.x, t.query.y)
}
meta nested_twin(theta: Net, r: Rates, t: Reg) -> f64 {
    p = theta
    p = p - grad(r.alpha[0] * 1.0 * loss(p, t.support.x, t.support.y), p)
    p = p - grad(r.alpha[1] * 1.0 * loss(p, t.support.x, t.support.y), p)
    p = p - grad(r.alpha[0] * 2.0 * loss(p, t.support.x, t.support.y), p)
    p = p - grad(r.alpha[1] * 2.0 * loss(p, t.support.x, t.support.y), p)
    return loss(p, t.query.x, t.query.y)
}
"""


@pytest.mark.parametrize("kind", ["forward", "meta_grad", "hvp"])
def test_nested_indices_used_inside_grad_equal_the_unrolled_program(args, kind):
    prog = load_source(NESTED, "nested.meta")
    rng = np.random.default_rng(8)
    extra = [rng.normal(size=np.shape(args[i])) for i in WRT] if kind == "hvp" else []
    got = evaluate(kernel_ir(_ir(prog, "nested"), kind, WRT if kind != "forward" else None), args + extra)
    want = evaluate(kernel_ir(_ir(prog, "nested_twin"), kind, WRT if kind != "forward" else None), args + extra)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
