"""The shared traversal (metacc/ir/walk.py): it reaches nested sub-functions, substitutes
atoms, and rebuilds only the path to what changed (everything else stays the same object)."""
from __future__ import annotations

from metacc.ir.builder import Builder
from metacc.ir.core import Func, Lit
from metacc.ir.walk import all_eqns, any_eqn, map_subfuncs, subst, with_body, with_parts
from metacc.passes.cse import cse
from metacc.passes.licm import licm
from metacc.passes.passthrough import passthrough
from tests.ad.handbuilt import f64, maml


def drop_unit_muls(fn: Func) -> Func:
    """x * 1 -> x at every depth, written only with walk's helpers."""
    sub: dict = {}
    eqns = []
    for e in fn.eqns:
        e = with_parts(map_subfuncs(e, drop_unit_muls), [subst(a, sub) for a in e.ins])
        if e.prim == "mul" and isinstance(e.ins[1], Lit) and e.ins[1].value == 1:
            sub[e.outs[0]] = e.ins[0]
            continue
        eqns.append(e)
    return with_body(fn, eqns, [subst(a, sub) for a in fn.outs])


def _step(unit: bool) -> Func:
    b = Builder()
    p = b.input("p", f64(3))
    q = b.tanh(p)
    if unit:
        q = b.mul(q, Lit(1.0, f64()))
    return b.build("step", [b.exp(q, name="out")])


def _two_loops() -> Func:
    """x -> scan(body with x*1) then scan(body without): one changed path, one untouched."""
    b = Builder()
    x = b.input("x", f64(3))
    (y,) = b.emit("scan", x, body=_step(True), length=2, n_consts=0, n_carry=1)
    (z,) = b.emit("scan", y, body=_step(False), length=2, n_consts=0, n_carry=1)
    return b.build("top", [z])


def test_all_eqns_reaches_grad_inside_a_scan_body():
    fn = maml(3)
    prims = [e.prim for e in all_eqns(fn)]
    assert "scan" in prims and "grad" in prims
    # tanh is only in the loss under grad inside the loop body, and in the inlined query loss
    assert prims.count("tanh") == 2
    assert any_eqn(fn, lambda e: e.prim == "grad")
    assert not any_eqn(fn, lambda e: e.prim == "cg_solve")


def test_identity_when_nothing_changes():
    fn = maml(3)
    e = fn.eqns[0]
    assert with_body(fn, list(fn.eqns), list(fn.outs)) is fn
    assert map_subfuncs(e, lambda f: f) is e
    assert with_parts(e, list(e.ins), dict(e.params)) is e
    assert drop_unit_muls(fn) is fn
    for p in (cse, licm, passthrough):
        once = p(fn)
        assert p(once) is once


def test_rebuild_when_parts_differ():
    fn = maml(3)
    e = fn.eqns[0]
    swapped = with_parts(e, list(reversed(e.ins)))
    assert swapped is not e and swapped.ins == tuple(reversed(e.ins)) and swapped.outs is e.outs
    assert with_body(fn, fn.eqns[:-1]) is not fn


def test_substitution_reaches_inside_nested_scans_and_rebuilds_only_the_changed_path():
    fn = _two_loops()
    out = drop_unit_muls(fn)
    assert out is not fn
    changed, untouched = (e.params["body"] for e in out.eqns)
    assert changed is not fn.eqns[0].params["body"]
    assert [e.prim for e in changed.eqns] == ["tanh", "exp"]
    assert changed.eqns[1].ins[0] is changed.eqns[0].outs[0]     # exp now reads tanh's value
    assert changed.eqns[0] is fn.eqns[0].params["body"].eqns[0]   # the untouched equation is kept
    assert out.eqns[1] is fn.eqns[1] and untouched is fn.eqns[1].params["body"]
    assert drop_unit_muls(out) is out


def test_nested_two_deep():
    inner = _two_loops()
    b = Builder()
    x = b.input("x", f64(3))
    (y,) = b.emit("scan", x, body=inner, length=2, n_consts=0, n_carry=1)
    top = b.build("outer", [y])
    out = drop_unit_muls(top)
    body = out.eqns[0].params["body"]
    assert body is not inner
    assert [e.prim for e in body.eqns[0].params["body"].eqns] == ["tanh", "exp"]
    assert body.eqns[1] is inner.eqns[1]
