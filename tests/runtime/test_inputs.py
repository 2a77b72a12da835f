"""Runtime inputs that used to run as a silently different computation (issue 9)
are named MetaccErrors: empty dims, bools taken for numbers, floats that overflow
f32, masked arrays, keys beyond 64 bits, object / complex / string arrays. And a
Module answers hasattr/getattr like any Python object, with a readable repr."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError

SOURCE = """
fn scale(x: f32[n], a: f32) -> f32[n] {
    return a * x
}

fn scale64(x: f64[n], a: f64) -> f64[n] {
    return a * x
}

fn noise(rng: key, x: f64[n]) -> f64[n] {
    return x + normal(rng, [n], f64)
}

fn pick(x: f64[n], flag: bool, i: i64) -> f64[n] {
    return where(flag, x, -x)
}
"""


@pytest.fixture(scope="module")
def m(cache_dir):
    return metacc.compile(SOURCE, cache_dir=cache_dir)


def err(fn, *args, **kw) -> MetaccError:
    with pytest.raises(MetaccError) as info:
        fn(*args, **kw)
    return info.value


X32 = np.ones(3, np.float32)
X64 = np.ones(3)


# ---- zero-size dims ----

def test_zero_size_dim_is_rejected(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss, p, data["x"][:0], data["y"][:0])
    assert "'x'" in e.message and "dim n is 0" in e.message and "at least 1" in e.message


@pytest.mark.parametrize("part,dim", [("support", "k"), ("query", "q")])
def test_empty_support_or_query_is_rejected(mod, data, part, dim):
    tasks = {s: dict(d) for s, d in data["tasks"].items()}
    tasks[part] = {k: v[:, :0] for k, v in tasks[part].items()}
    for call in (mod.adapt, mod.adapt.value_and_grad):
        e = err(call, mod.Lin.init(), tasks)
        assert f"'t.{part}.x'" in e.message and f"dim {dim} is 0" in e.message


def test_zero_size_in_a_derivative_call(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss.jvp, p, data["x"][:0], data["y"][:0], tangents=data["v"])
    assert "dim n is 0" in e.message


# ---- scalars ----

def test_numbers_still_accepted(m):
    assert m.scale(X32, 2.0).tolist() == [2.0] * 3
    assert m.scale(X32, 3).tolist() == [3.0] * 3                   # an int for a float
    assert np.isnan(m.scale(X32, float("nan"))).all()                # the caller's business
    assert np.isinf(m.scale(X32, float("inf"))).all()


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number(m, value):
    e = err(m.scale, X32, value)
    assert "argument 'a'" in e.message and "bool" in e.message and "1.0 or 0.0" in e.hint
    e = err(m.pick, X64, True, value)
    assert "argument 'i'" in e.message and "bool" in e.message
    e = err(m.noise, value, X64)
    assert "argument 'rng'" in e.message and "random key" in e.message


@pytest.mark.parametrize("value", [1e300, -1e39, 10 ** 400])
def test_float_overflowing_f32_is_rejected(m, value):
    with np.errstate(all="raise"):                    # and no cast warning on the way
        e = err(m.scale, X32, value)
    assert "argument 'a'" in e.message and "largest finite f32" in e.message and "dtype='f64'" in e.hint


def test_int_beyond_f64_is_rejected(m):
    e = err(m.scale64, X64, 10 ** 400)
    assert "argument 'a'" in e.message and "an int of 401 digits" in e.message and "f64" in e.message


@pytest.mark.parametrize("value,what", [(2 ** 64, "outside 0 .. 2**64 - 1"), (-1, "outside 0 .. 2**64 - 1"),
                                        (3.0, "an integer in 0 .. 2**64 - 1")])
def test_key_range(m, value, what):
    e = err(m.noise, value, X64)
    assert "argument 'rng'" in e.message and what in e.message


def test_i64_and_bool_scalars(m):
    e = err(m.pick, X64, True, 2 ** 63)
    assert "argument 'i'" in e.message and "outside -2**63 .. 2**63 - 1" in e.message
    e = err(m.pick, X64, True, 2.0)
    assert "argument 'i'" in e.message and "int(x)" in e.hint
    for flag in (1, 1.0):
        e = err(m.pick, X64, flag, 0)
        assert "argument 'flag' is a bool" in e.message


def test_masked_array_is_rejected(m):
    e = err(m.scale, np.ma.masked_array(X32, [True, False, False]), 1.0)
    assert "argument 'x'" in e.message and "masked" in e.message and "filled" in e.hint


@pytest.mark.parametrize("value,words", [
    (np.array([1.0, None, 2.0], dtype=object), ("dtype object", "object array")),
    (np.array([1 + 2j, 0, 1]), ("dtype complex128", "real numbers")),
    (np.array(["a", "b", "c"]), ("dtype <U1", "strings")),
])
def test_arrays_of_other_kinds(m, value, words):
    e = err(m.scale64, value, 1.0)
    assert "argument 'x'" in e.message and words[0] in e.message and words[1] in e.hint


@pytest.mark.parametrize("value", [None, "abc", [[1.0], [2.0, 3.0]], [1.0, 2.0, 3.0]])
def test_non_arrays(m, value):
    e = err(m.scale64, value, 1.0)
    assert "argument 'x' should be a NumPy array" in e.message
    for scalar in (None, "1.0"):
        e = err(m.scale64, X64, scalar)
        assert "argument 'a' should be a number (f64)" in e.message


# ---- Module attributes and repr ----

def test_unknown_name_is_an_attribute_error(mod):
    assert not hasattr(mod, "nope") and hasattr(mod, "adapt")
    assert getattr(mod, "los", None) is None
    assert np.ndim(mod) == 0
    with pytest.raises(AttributeError) as info:
        mod.los
    assert isinstance(info.value, MetaccError) and "did you mean `loss`" in info.value.hint


def test_repr_lists_the_program(mod):
    text = repr(mod)
    assert text.startswith("<metacc.Module <string>")
    assert "params Lin {w: f64[3, 2], b: f64[2]}" in text
    assert "task Reg {support: (x: f64[k, 3], y: f64[k, 2]), query: (x: f64[q, 3], y: f64[q, 2])}" in text
    assert "fn loss(p: Lin, x: f64[n, 3], y: f64[n, 2]) -> f64" in text
    assert "meta adapt(theta: Lin, t: Reg, alpha: f64 = 0.1, K: int = 2) -> f64" in text
    assert len(text.splitlines()) == 5
    assert repr(mod.adapt) == "<meta adapt(theta: Lin, t: Reg, alpha: f64 = 0.1, K: int = 2) -> f64>"
    assert repr(mod.Lin) == "<params Lin {w: f64[3, 2], b: f64[2]}>"
    k = mod.loss.kernel("forward")
    assert "loss:forward" in repr(k) and "dtype=" in repr(k)


def test_numpy_int_keys(m):
    x = np.zeros(2)
    assert np.array_equal(m.noise(np.int64(3), x), m.noise(3, x))
    assert np.array_equal(m.noise(np.uint64(3), x), m.noise(3, x))
    e = err(m.noise, np.int64(-2), x)
    assert "argument 'rng'" in e.message and "outside 0 .. 2**64 - 1" in e.message


# ---- other arguments of a call ----

def test_wrt_must_name_arguments(mod, data):
    p = mod.Lin.init()
    call = mod.loss.grad
    for wrt, words in ((3, "a tuple of names"), (["p", ["x"]], "a tuple of names"), ((), "names no argument"),
                       (("p", "p"), "'p' more than once")):
        e = err(call, p, data["x"], data["y"], wrt=wrt)
        assert words in e.message


def test_cotangent_and_seed_checked(mod, data):
    p = mod.Lin.init()
    e = err(mod.loss.vjp, p, data["x"], data["y"], cotangent=10 ** 400)
    assert "argument 'cotangent'" in e.message and "largest finite f64" in e.message
    for seed in ("a", -1, True, 1.5):
        e = err(mod.Lin.init, seed=seed)
        assert "Lin.init: seed must be a non-negative int" in e.message
    e = err(mod.__getitem__, 0)
    assert "indexed by the name" in e.message
    assert mod["loss"] is mod.loss


def test_a_list_of_tasks_gets_a_hint(mod, data):
    one = {s: {k: v[0] for k, v in d.items()} for s, d in data["tasks"].items()}
    e = err(mod.adapt, mod.Lin.init(), [one, one])
    assert "'t' should be a mapping" in e.message and e.found == "list of 2 (mapping)"
    assert "leading task axis" in e.hint and "np.stack" in e.hint
    p = mod.Lin.init()
    e = err(mod.loss, dict(p, w=p["w"].tolist()), data["x"], data["y"])
    assert "'p.w'" in e.message and e.found == "list of 3 (list)"


@pytest.mark.parametrize("kw", [{"lr": True}, {"lr": "0.1"}, {"lr": np.array([0.1, 0.2])}, {"lr": float("inf")},
                                {"momentum": None}])
def test_optimizer_hyperparameters_are_numbers(kw):
    from metacc.runtime.optim import SGD, Adam
    with pytest.raises(MetaccError, match="must be a finite number"):
        SGD(**kw) if "momentum" in kw else Adam(**kw)
    assert SGD(lr=np.float32(0.1)).lr == np.float32(0.1)


def test_compile_time_argument_is_named(mod, data):
    for K in (0, -1):
        e = err(mod.adapt, mod.Lin.init(), data["tasks"], K=K)
        assert e.message.startswith(f"adapt(K={K}): ") and "repeat" in e.message and e.span is not None


def test_a_call_too_big_for_memory_is_named(cache_dir):
    # (x @ transpose(x) alone would fuse into its sum, needing no n x n buffer: the
    # outer product is a broadcast multiply, metacc.passes.outer; the second matmul reads it)
    m = metacc.compile("fn gram(x: f64[n, 1]) -> f64 {\n    return sum(x @ transpose(x) @ x)\n}\n",
                       cache_dir=cache_dir)
    assert m.gram(np.ones((3, 1))) == 9.0
    # n x n floats: 288 TB, beyond any address space (so no overcommit setting lets it through)
    e = err(m.gram, np.ones((6 * 10 ** 6, 1)))
    assert "gram: not enough memory for this call" in e.message and e.found == "dims n=6000000"
