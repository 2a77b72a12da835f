"""The primitive registry (metacc/ir/primitives/): every primitive walked through every table
derived from it, and a missing rule reported as an InternalError naming the primitive."""
from __future__ import annotations

import math

import numpy as np
import pytest

from metacc.ad.jvp import jvp_inline
from metacc.ad.rules import JVP_RULES, VJP_RULES, tangent_rule
from metacc.ad.partials import PARTIALS, partials
from metacc.backend import fusion, pointwise
from metacc.backend.lower import KernelWriter
from metacc.errors import InternalError
from metacc.frontend.arith import NUMBER_FOLD, NUMBER_MATH
from metacc.frontend.lowering import BUILTINS
from metacc import interp
from metacc.ir.builder import Builder
from metacc.ir.primitives import (ELEMENTWISE, EXPANDED, GENERATOR, HOOK, INDEXED, LOWERINGS, REGISTRY, SINK,
                                  Primitive, infer, lookup, need_rule)
from metacc.ir.prims import BINARY, COMPARE, PRIMS, UNARY, _register
from metacc.ir.types import TensorType

# rewritten into other primitives by metacc.ad.expand before any derivative rule runs
EXPANDED_BEFORE_AD = {"grad", "argmin"}
NAMES = sorted(REGISTRY)


def test_prims_is_the_registry():
    assert PRIMS is REGISTRY
    assert all(isinstance(p, Primitive) and p.name == n for n, p in REGISTRY.items())
    assert set(UNARY) | set(BINARY) | set(COMPARE) <= set(REGISTRY)
    assert "ipow" not in UNARY and "exp" in UNARY and "add" in BINARY and "lt" in COMPARE


@pytest.mark.parametrize("name", NAMES)
def test_every_primitive_through_every_table(name):
    p = REGISTRY[name]
    assert callable(p.rule), f"{name}: no type rule"
    # reference implementation: declared, or evaluated by the interpreter itself
    if name in interp.EVALUATED_HERE:
        assert p.impl is None
    else:
        assert interp.IMPLS[name] is p.impl is not None, f"{name}: no reference implementation"
    # derivative: partials, JVP and VJP rules, none (nondiff), or a control rule (metacc.ad.loops):
    # every one in the same two tables
    if name not in EXPANDED_BEFORE_AD:
        assert name in JVP_RULES, f"{name}: no JVP rule"
        assert name in VJP_RULES, f"{name}: no VJP rule"
    if p.partials is not None:
        assert p.jvp is None and p.vjp is None and not p.nondiff, f"{name}: partials and other rules"
    if p.jvp is not None or p.vjp is not None:
        assert p.jvp is not None and p.vjp is not None, f"{name}: a JVP rule without a VJP rule or back"
    # lowering
    assert p.lowering in LOWERINGS, f"{name}: lowering {p.lowering!r}"
    if p.lowering in (ELEMENTWISE, INDEXED, GENERATOR):
        assert p.scalar is not None, f"{name}: {p.lowering} without a scalar expression"
        assert name in pointwise.POINTWISE
    else:
        assert p.scalar is None and name not in pointwise.POINTWISE
    assert (name in pointwise.ELEMENTWISE) == (p.lowering == ELEMENTWISE)
    assert (name in pointwise.INDEXED) == (p.lowering == INDEXED)
    assert (name in pointwise.GENERATORS) == (p.lowering == GENERATOR)
    assert (name in fusion.SINKS) == (p.lowering == SINK)
    if p.lowering == HOOK:
        assert callable(getattr(KernelWriter, f"emit_{name}", None)), f"{name}: no KernelWriter.emit_{name}"
    if p.lowering == EXPANDED:
        assert not hasattr(KernelWriter, f"emit_{name}")
    # surface names are builtins of the language
    for s in p.surface:
        assert s in BUILTINS, f"{name}: surface name {s!r} is not a builtin"
    # folding
    if p.family == "unary" and p.fold is not None:
        assert NUMBER_MATH[name] is p.fold
    if p.family in ("binary", "compare"):
        assert NUMBER_FOLD[name] is p.fold is not None, f"{name}: no folding on numbers"


@pytest.mark.parametrize("name", UNARY)
def test_unary_is_complete(name):
    """A unary primitive needs all of these, and its two implementations (NumPy, math) agree."""
    p = REGISTRY[name]
    assert p.partials is not None and p.scalar is not None and p.fold is not None
    assert PARTIALS[name] is p.partials
    x = 0.7 if p.domain != "away_from_zero" else -0.7
    want = float(p.impl(np.array(x)))
    assert math.isclose(p.fold(x), want, rel_tol=1e-12, abs_tol=1e-15), (name, p.fold(x), want)
    if name != "neg":
        assert name in BUILTINS and name in p.surface


@pytest.mark.parametrize("name", BINARY + COMPARE)
def test_binary_fold_agrees_with_impl(name):
    p = REGISTRY[name]
    for a, b in ((1.5, 0.25), (0.25, 1.5), (2.0, 2.0)):
        assert math.isclose(float(p.fold(a, b)), float(p.impl(np.float64(a), np.float64(b))), rel_tol=1e-12)


@pytest.mark.parametrize("name", [n for n, p in REGISTRY.items() if p.partials is not None])
def test_partials_one_per_input(name):
    p = REGISTRY[name]
    b = Builder()
    ins = [b.input(f"x{i}", TensorType("f64", (3,))) for i in range(p.n_ins)]
    params = {"n": 3} if "n" in p.params else {}
    (out,) = b.emit(name, *ins, **params)
    assert len(partials(b, name, ins, out, params)) == p.n_ins


def test_missing_rules_name_the_primitive():
    with pytest.raises(InternalError, match="'no_such_prim'.*type rule"):
        lookup("no_such_prim", "type rule")
    with pytest.raises(InternalError, match="'no_such_prim'"):
        infer("no_such_prim", (TensorType("f64", ()),), {})
    with pytest.raises(InternalError, match="'no_such_prim' has no partials"):
        partials(Builder(), "no_such_prim", [], None, {})
    with pytest.raises(InternalError, match="'exp' has no JVP rule"):
        need_rule({}, "exp", "JVP rule")
    # a primitive declared by its type rule alone (the old way) with no implementation
    b = Builder()
    x = b.input("x", TensorType("f64", (2,)))
    e = b.emit("exp", x)[0]
    fn = b.build("f", [e])
    saved = interp.IMPLS.pop("exp")
    try:
        with pytest.raises(InternalError, match="'exp' has no reference implementation"):
            interp.evaluate(fn, [np.ones(2)])
    finally:
        interp.IMPLS["exp"] = saved


def test_missing_scalar_lowering_names_the_primitive():
    b = Builder()
    x = b.input("x", TensorType("f64", (2, 2)))
    (m,) = b.emit("matmul", x, x)
    fn = b.build("f", [m])
    with pytest.raises(InternalError, match="'matmul' has no scalar lowering"):
        pointwise.expr(fn.eqns[0], ["i0", "i1"], lambda j, idx: "x", str, set())


def test_missing_jvp_rule_names_the_primitive():
    b = Builder()
    x = b.input("x", TensorType("f64", (2,)))
    fn = b.build("f", [b.exp(x)])
    saved = JVP_RULES.pop("exp")
    try:
        b2 = Builder()
        y = b2.input("x", TensorType("f64", (2,)))
        with pytest.raises(InternalError, match="'exp'"):
            jvp_inline(b2, fn, [y], [y])
    finally:
        JVP_RULES["exp"] = saved


def test_the_old_way_of_registering_still_works():
    """A primitive registered into today's tables (as branches started before the registry do)."""
    _register("old_double", "unary", 1)(lambda x: (x,))
    interp.IMPLS["old_double"] = lambda x, **_: 2 * x
    JVP_RULES["old_double"] = tangent_rule(lambda b, ins, outs, tans, **_: [b.mul(tans[0], 2.0)])
    try:
        b = Builder()
        x = b.input("x", TensorType("f64", (2,)))
        fn = b.build("f", [b.emit("old_double", x)[0]])
        np.testing.assert_array_equal(interp.evaluate(fn, [np.array([1.0, 3.0])])[0], [2.0, 6.0])
        b2 = Builder()
        y, t = b2.input("x", TensorType("f64", (2,))), b2.input("t", TensorType("f64", (2,)))
        outs, tans = jvp_inline(b2, fn, [y], [t])
        got = interp.evaluate(b2.build("g", list(outs) + list(tans)), [np.ones(2), np.array([0.5, 1.0])])
        np.testing.assert_array_equal(got[1], [1.0, 2.0])
    finally:
        for table in (REGISTRY, interp.IMPLS, JVP_RULES):
            table.pop("old_double", None)
