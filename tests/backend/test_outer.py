"""Matmuls with an inner dimension of 1 are broadcast multiplies in the lowered code
(metacc.passes.outer): they fuse with their neighbours, and agree with the product to
the last bit, since each element is one multiply and no sum."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.interp import evaluate

SRC = """
fn outer(x: f64[n, 1], w: f64[1, m], b: f64[m]) -> f64[n, m] {
    return relu(x @ w + b)
}
fn outer_t(g: f64[n, 1], w: f64[m, 1]) -> f64[n, m] {
    return g @ transpose(w)
}
fn column(x: f64[n, 1]) -> f64[1, n] {
    return transpose(x) * 2.0
}
"""
P1 = Path(__file__).resolve().parents[2] / "examples" / "sinusoid_maml.meta"


@pytest.fixture(scope="module")
def mod(tmp_path_factory):
    return metacc.compile(SRC, cache_dir=tmp_path_factory.mktemp("outer"))


def test_an_outer_product_is_one_fused_nest_and_exact(mod):
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(7, 1)), rng.normal(size=(1, 9)), rng.normal(size=9)
    src = mod.outer.source()
    assert "mm_" not in src.split("# entry points")[0].split("def outer(")[1]
    # x * w, + b and relu in one loop nest: the product is never stored
    assert len(re.findall(r"^def nest_", src, flags=re.M)) == 1
    assert np.array_equal(mod.outer(x, w, b), np.maximum(x * w + b, 0.0))
    np.testing.assert_array_equal(mod.outer(x, w, b), evaluate(mod.outer.fn.ir, [x, w, b])[0])


def test_a_transposed_column_is_read_in_place(mod):
    rng = np.random.default_rng(4)
    g, w = rng.normal(size=(5, 1)), rng.normal(size=(6, 1))
    src = mod.outer_t.source()
    assert "mm_" not in src.split("# entry points")[0] and "transpose" not in src.split("NESTS = {")[1].split("\n}")[0]
    assert np.array_equal(mod.outer_t(g, w), g @ w.T)
    x = rng.normal(size=(4, 1))
    assert np.array_equal(mod.column(x), x.T * 2.0)


def test_p1_calls_the_matmul_helper_only_for_real_products():
    mod = metacc.compile(P1.read_text())
    src = mod.maml.source("grad")
    calls = re.findall(r"\bmm_(?:nn|nt|tn|tt)\(([^)]*)\)", src)
    inner = [c.split(", ")[-2].strip() for c in calls]
    assert calls and "size1" not in inner and "1" not in inner     # no call with kk = 1 remains
