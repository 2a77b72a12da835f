"""Every primitive's JVP and VJP rule, and second order, against outside oracles."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.ad import jvp_func, vjp_func
from metacc.ad.rules import JVP_RULES, VJP_RULES
from metacc.interp import evaluate
from metacc.ir.prims import PRIMS
from metacc.ir.verify import verify
from tests.ad.cases import CASES
from tests.oracles import fd_jvp, inner, rel_err

EXPANDED_BEFORE_AD = {"grad", "argmin"}


def test_every_primitive_has_rules():
    missing = []
    for name in PRIMS:
        if name in EXPANDED_BEFORE_AD:
            continue
        if name not in JVP_RULES:
            missing.append(f"{name}: jvp")
        if name not in VJP_RULES:
            missing.append(f"{name}: vjp")
    assert not missing, missing


def test_every_differentiable_primitive_has_a_case():
    names = {e.prim for c in CASES for e in c.func().eqns}
    float_prims = [p for p, prim in PRIMS.items()
                   if prim.family not in ("compare", "logic", "random")
                   and p not in EXPANDED_BEFORE_AD | {"cg_solve", "iota", "diagnostic"}]
    assert sorted(set(float_prims) - names) == []


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request):
    return request.param


def _directions(rng, args, n):
    return [rng.normal(size=np.shape(a)) for a in args[:n]]


def test_jvp_matches_finite_differences(case):
    rng = np.random.default_rng(0)
    fn = verify(case.func())
    args = case.args(rng)
    wrt = list(range(case.n_diff))
    tans = _directions(rng, args, case.n_diff)
    j = verify(jvp_func(fn, wrt))
    got = evaluate(j, args + tans)[len(fn.outs):]
    want = fd_jvp(case.ref() if case.ref else fn, args, wrt, tans)
    for g, w in zip(got, want):
        assert rel_err(g, w) < 1e-7, (case.name, g, w)


def test_vjp_dot_product_identity(case):
    """<u, J v> computed forward equals <J^T u, v> computed backward."""
    rng = np.random.default_rng(1)
    fn = verify(case.func())
    args = case.args(rng)
    wrt = list(range(case.n_diff))
    v = _directions(rng, args, case.n_diff)
    outs = evaluate(fn, args)
    u = [rng.normal(size=np.shape(o)) for o in outs]
    jv = fd_jvp(case.ref() if case.ref else fn, args, wrt, v)   # J v by finite differences: the oracle
    vj = verify(vjp_func(fn, wrt))
    bars = evaluate(vj, args + u)[len(fn.outs):]
    lhs, rhs = inner(u, jv), inner(bars, v)
    assert abs(lhs - rhs) <= 1e-7 * max(1.0, abs(lhs)), (case.name, lhs, rhs)


def test_second_order_jvp_of_vjp(case):
    """Forward-over-reverse against finite differences of the VJP itself."""
    rng = np.random.default_rng(2)
    fn = verify(case.func())
    args = case.args(rng)
    wrt = list(range(case.n_diff))
    outs = evaluate(fn, args)
    u = [rng.normal(size=np.shape(o)) for o in outs]
    vj = verify(vjp_func(fn, wrt))
    v = _directions(rng, args, case.n_diff)
    jv = verify(jvp_func(vj, wrt))          # tangents on the primal inputs, cotangent u fixed
    got = evaluate(jv, args + u + v)[len(vj.outs):][len(fn.outs):]
    want = fd_jvp(vj, args + u, wrt, v)[len(fn.outs):]
    for g, w in zip(got, want):
        assert rel_err(g, w) < 1e-6, (case.name, g, w)
