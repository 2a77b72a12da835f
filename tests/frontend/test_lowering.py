"""The lowering conventions the AD transforms and the runtime rely on."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.frontend import load, load_source
from metacc.interp import evaluate
from metacc.ir.verify import verify
from tests.frontend.helpers import ROOT, subprograms

EX = ROOT / "examples"

NET = """
params Net { w1: f32[1, 4] = he_normal  b1: f32[4] = zeros  w2: f32[4, 1] = he_normal  b2: f32[1] = zeros }
task Sin { support: (x: f32[k, 1], y: f32[k, 1])  query: (x: f32[q, 1], y: f32[q, 1]) }
fn mlp(p: Net, x: f32[n, 1]) -> f32[n, 1] { return tanh(x @ p.w1 + p.b1) @ p.w2 + p.b2 }
fn mse(p: Net, x: f32[n, 1], y: f32[n, 1]) -> f32 { return mean((mlp(p, x) - y) ^ 2) }
"""


def meta(body: str, extra_args: str = "") -> object:
    text = NET + f"meta m(theta: Net, t: Sin, alpha: f32 = 0.1{extra_args}) -> f32 {{\n{body}\n}}\n"
    return load_source(text, "conv.meta").functions["m"]


def eqns(fn, prim):
    return [e for e in fn.eqns if e.prim == prim]


# ---- functions and programs ----------------------------------------------------------

def test_program_holds_groups_tasks_and_flattened_signatures():
    program = load(EX / "sinusoid_maml.meta")
    net = program.groups["Net"]
    assert [f.path for f in net.fields] == ["w1", "b1", "w2", "b2", "w3", "b3"]
    assert net.fields[0].init.kind == "he_normal" and net.fields[1].init.kind == "zeros"
    assert [f.path for f in program.tasks["Sinusoid"].fields] == ["support.x", "support.y", "query.x", "query.y"]
    maml = program.functions["maml"]
    assert [(a.name, a.kind, a.n_leaves) for a in maml.args] == [
        ("theta", "params", 6), ("t", "task", 4), ("alpha", "tensor", 1), ("K", "static", 0)]
    assert maml.arg("alpha").default == 0.01 and maml.arg("K").default == 5
    assert maml.leaf_slices()["t"] == slice(6, 10)
    assert [v.name for v in maml.ir.ins][:7] == ["theta.w1", "theta.b1", "theta.w2", "theta.b2", "theta.w3",
                                                 "theta.b3", "t.support.x"]
    assert maml.ir.ins[-1].name == "alpha"
    assert maml.result.kind == "tensor" and maml.result.type_name == "f32"


def test_initialiser_arguments_are_kept():
    program = load_source("params P { a: f32[2, 2] = normal(0.5)  b: f32[2] = uniform(-1, 2)  c: f32 = const(3) }\n"
                          "task T { x: f32[2] }\nmeta m(p: P, t: T) -> f32 { return sum(p.a) }", "i.meta")
    inits = {f.path: (f.init.kind, f.init.args) for f in program.groups["P"].fields}
    assert inits == {"a": ("normal", (0.5,)), "b": ("uniform", (-1.0, 2.0)), "c": ("const", (3.0,))}


def test_user_functions_are_inlined_with_the_callers_dims():
    fn = meta("    return sum(mlp(theta, t.support.x)) + mse(theta, t.query.x, zeros([q, 1]))")
    assert not any(e.prim == "call" for e in subprograms(fn.ir))
    shapes = [e.outs[0].type.shape for e in eqns(fn.ir, "matmul")]
    assert shapes == [("k", 4), ("k", 1), ("q", 4), ("q", 1)]
    spans = {e.span.line for e in eqns(fn.ir, "tanh")}
    assert spans == {4}                          # the callee's line, not the call's


def test_a_fn_may_return_a_params_group():
    program = load_source(NET + "fn sgd_step(p: Net, g: Net, lr: f32) -> Net { return p - lr * g }\n"
                          "meta m(theta: Net, t: Sin) -> f32 {\n"
                          "    p = sgd_step(theta, grad(mse(theta, t.support.x, t.support.y), theta), 0.5)\n"
                          "    return mse(p, t.query.x, t.query.y)\n}", "g.meta")
    step = program.functions["sgd_step"]
    assert step.result.kind == "params" and len(step.ir.outs) == 4
    assert [v.name for v in step.ir.ins] == ["p.w1", "p.b1", "p.w2", "p.b2", "g.w1", "g.b1", "g.w2", "g.b2", "lr"]


def test_every_var_is_named_after_the_source():
    fn = meta("    h = t.query.x @ theta.w1\n    p = theta - alpha * theta\n    return sum(h) + sum(p.w1)")
    names = [v.name for e in fn.ir.eqns for v in e.outs]
    assert "h" in names and {"p.w1", "p.b1", "p.w2", "p.b2"} <= set(names)


def test_float_dtype_option_reads_the_program_in_float64():
    program = load(EX / "sinusoid_maml.meta", float_dtype="f64")
    for f in program.functions.values():
        assert {v.type.dtype for v in f.ir.ins} == {"f64"}
        assert all(v.type.dtype == "f64" for e in subprograms(f.ir) for v in e.outs)


def test_numbers_take_the_dtype_of_what_they_meet():
    program = load_source("fn f(x: f64[3]) -> f64[3] { return 2 * x + 0.5 }", "n.meta")
    lits = [a for e in program.functions["f"].ir.eqns for a in e.ins if not hasattr(a, "name")]
    assert lits and all(a.type.dtype == "f64" for a in lits)


def test_power_with_a_whole_exponent_is_ipow():
    fn = load_source("fn f(x: f32[3], y: f32[3]) -> f32[3] { return x ^ 2 + x ^ K + x ^ 0.5 + x ^ y }\n"
                     .replace("f(", "f(K: int = 3, "), "p.meta").functions["f"]
    assert [e.params.get("n") for e in fn.ir.eqns if e.prim == "ipow"] == [2, 3]
    assert len(eqns(fn.ir, "pow")) == 2


# ---- grad ---------------------------------------------------------------------------

def test_grad_is_a_closed_subfunction_with_wrt_leaves_first():
    fn = meta("    g = grad(mse(theta, t.support.x, t.support.y) * alpha, theta)\n    return sum(g.w1)")
    (e,) = eqns(fn.ir, "grad")
    sub = e.params["fn"]
    assert e.params["n_wrt"] == 4
    assert [v.name for v in sub.ins] == ["theta.w1", "theta.b1", "theta.w2", "theta.b2",
                                         "t.support.x", "t.support.y", "alpha"]
    assert [a.name for a in e.ins] == ["theta.w1", "theta.b1", "theta.w2", "theta.b2",
                                       "t.support.x", "t.support.y", "alpha"]
    assert e.ins[0] is fn.ir.ins[0] and e.ins[6] is fn.ir.ins[-1]
    assert [v.type for v in e.outs] == [v.type for v in fn.ir.ins[:4]]
    assert sub.out_types[0].rank == 0
    verify(sub)


def test_grad_varies_only_the_named_variable():
    """grad(f(p, q), p) with q = p: q is a constant of the sub-function (lambda semantics)."""
    fn = meta("    q = theta\n    p = theta\n    g = grad(mse(p, t.support.x, t.support.y) + sqnorm(q), p)\n"
              "    return sum(g.w1)")
    (e,) = eqns(fn.ir, "grad")
    assert e.params["n_wrt"] == 4
    assert len(e.ins) == 4 + 2 + 4             # wrt, the support data, and q's four leaves as constants


def test_grad_with_respect_to_one_field_or_task_data():
    fn = meta("    g = grad(mse(theta, t.support.x, t.support.y), theta.w2)\n"
              "    d = grad(mse(theta, t.support.x, t.support.y), t.support.x)\n    return sum(g) + sum(d)")
    g, d = eqns(fn.ir, "grad")
    assert g.params["n_wrt"] == 1 and g.outs[0].type.shape == (4, 1)
    assert d.params["n_wrt"] == 1 and d.outs[0].type.shape == ("k", 1)
    assert g.params["fn"].ins[0].name == "theta.w2"


def test_nested_grad_builds_nested_closed_functions():
    fn = meta("    g = grad(sqnorm(grad(mse(theta, t.support.x, t.support.y), theta)), theta)\n    return sum(g.w1)")
    (outer,) = eqns(fn.ir, "grad")
    (inner,) = [e for e in outer.params["fn"].eqns if e.prim == "grad"]
    assert outer.params["n_wrt"] == inner.params["n_wrt"] == 4
    assert inner.ins[0] is outer.params["fn"].ins[0]
    verify(fn.ir)


# ---- repeat ---------------------------------------------------------------------------

def test_repeat_is_a_scan_carrying_the_reassigned_outer_variables():
    fn = meta("    p = theta\n    c = 0.0\n    repeat 4 {\n        step = alpha * grad(mse(p, t.support.x, t.support.y), p)\n"
              "        p = p - step\n        c = c + 1\n    }\n    return mse(p, t.query.x, t.query.y) + c")
    (scan,) = eqns(fn.ir, "scan")
    prm = scan.params
    body = prm["body"]
    assert (prm["length"], prm["n_carry"], prm["reverse"]) == (4, 5, False)
    assert prm["n_consts"] == 3 and [a.name for a in scan.ins[:3]] == ["t.support.x", "t.support.y", "alpha"]
    assert [v.name for v in body.ins[3:]] == ["p.w1", "p.b1", "p.w2", "p.b2", "c"]
    assert [v.name for v in scan.outs] == ["p.w1", "p.b1", "p.w2", "p.b2", "c"]
    assert prm["label"] == "repeat at conv.meta:9" and "checkpoint" not in prm
    assert scan.ins[3] is fn.ir.ins[0]            # p = theta: the carry starts at theta itself
    assert scan.ins[-1].type.dtype == "f32"       # c = 0.0 became an f32 carry


def test_variables_first_assigned_in_the_body_are_local():
    text = NET + ("meta m(theta: Net, t: Sin) -> f32 {\n    p = theta\n    repeat 2 { g = grad(mse(p, t.support.x, "
                  "t.support.y), p)  p = p - g }\n    return sum(g.w1)\n}")
    with pytest.raises(Exception) as info:
        load_source(text, "local.meta")
    assert "unknown name `g`" in str(info.value)


def test_first_order_stops_every_inner_gradient():
    fn = load(EX / "sinusoid_fomaml.meta").functions["fomaml"]
    (scan,) = eqns(fn.ir, "scan")
    body = scan.params["body"]
    (g,) = eqns(body, "grad")
    stops = eqns(body, "stop_gradient")
    assert [s.ins[0] for s in stops] == list(g.outs)
    assert "first-order" in scan.params["label"]
    assert not eqns(load(EX / "sinusoid_maml.meta").functions["maml"].ir.eqns[0].params["body"], "stop_gradient")


def test_first_order_reaches_grads_inside_inlined_calls_and_nested_loops():
    text = NET + ("fn inner(p: Net, x: f32[n, 1], y: f32[n, 1]) -> Net { return p - 0.1 * grad(mse(p, x, y), p) }\n"
                  "meta m(theta: Net, t: Sin) -> f32 {\n    p = theta\n    repeat 2 @first_order {\n"
                  "        p = inner(p, t.support.x, t.support.y)\n        repeat 2 { p = inner(p, t.support.x, t.support.y) }\n"
                  "    }\n    return mse(p, t.query.x, t.query.y)\n}")
    fn = load_source(text, "fo.meta").functions["m"]
    grads = [e for e in subprograms(fn.ir) if e.prim == "grad"]
    stops = [e for e in subprograms(fn.ir) if e.prim == "stop_gradient"]
    assert len(grads) == 2 and len(stops) == 8


@pytest.mark.parametrize("k,t,lengths,first_order", [(5, 2, [3, 2], [True, False]), (5, 5, [5], [False]),
                                                      (5, 9, [5], [False]), (5, 0, [5], [True])])
def test_truncate_splits_the_loop(k, t, lengths, first_order):
    program = load(EX / "sinusoid_truncated.meta", constants={"K": k, "T": t})
    scans = eqns(program.functions["truncated_maml"].ir, "scan")
    assert [s.params["length"] for s in scans] == lengths
    assert [bool(eqns(s.params["body"], "stop_gradient")) for s in scans] == first_order
    if len(scans) == 2:
        assert list(scans[1].ins[scans[1].params["n_consts"]:]) == list(scans[0].outs)
        assert "first-order part of truncate(2)" in scans[0].params["label"]
        assert "differentiated part of truncate(2)" in scans[1].params["label"]


def test_checkpoint_is_a_scan_param_that_changes_nothing_else():
    plain = load(EX / "sinusoid_maml.meta", constants={"K": 100}).functions["maml"]
    ckpt = load(EX / "sinusoid_checkpointed.meta").functions["maml_long"]
    (a,), (b,) = eqns(plain.ir, "scan"), eqns(ckpt.ir, "scan")
    assert b.params["checkpoint"] == {"every": 10}
    assert {k: v for k, v in b.params.items() if k not in ("checkpoint", "body", "label")} == \
        {k: v for k, v in a.params.items() if k not in ("body", "label")}
    fn = meta("    p = theta\n    repeat 8 @checkpoint(snapshots=3) { p = p * 0.5 }\n    return sum(p.w1)")
    assert eqns(fn.ir, "scan")[0].params["checkpoint"] == {"snapshots": 3}


def test_constants_override_int_arguments_of_meta_functions():
    program = load(EX / "sinusoid_maml.meta", constants={"K": 3})
    maml = program.functions["maml"]
    assert eqns(maml.ir, "scan")[0].params["length"] == 3 and maml.arg("K").default == 3


def test_repeat_bodies_evaluate_like_a_python_loop():
    fn = load_source("task T { x: f64[3] }\nparams P { w: f64[3] = zeros }\n"
                     "meta m(p: P, t: T) -> f64 {\n    s = 0.0\n    y = t.x\n    repeat 4 { y = y * 0.5 + p.w  s = s + sum(y) }\n"
                     "    return s\n}", "loop.meta").functions["m"]
    w, x = np.array([0.1, 0.2, 0.3]), np.array([1.0, -2.0, 4.0])
    s, y = 0.0, x
    for _ in range(4):
        y = y * 0.5 + w
        s += y.sum()
    np.testing.assert_allclose(evaluate(fn.ir, [w, x])[0], s, rtol=1e-12)


# ---- groups --------------------------------------------------------------------------

def test_groups_pair_by_field_name_not_position():
    text = ("params Net { a: f64[2] = zeros  b: f64[3] = zeros }\n"
            "params Rates { b: f64 = const(0.1)  a: f64 = const(0.2) }\n"
            "task T { x: f64[2] }\n"
            "meta m(p: Net, r: Rates, t: T) -> f64 {\n    q = p - r * p\n    return sum(q.a) + 10 * sum(q.b)\n}")
    fn = load_source(text, "pair.meta").functions["m"]
    a, b, ra, rb = np.array([1.0, 2.0]), np.array([1.0, 1.0, 1.0]), 0.2, 0.1
    out = evaluate(fn.ir, [a, b, np.float64(rb), np.float64(ra), np.zeros(2)])[0]
    np.testing.assert_allclose(out, (a - ra * a).sum() + 10 * (b - rb * b).sum(), rtol=1e-12)


def test_group_reductions_and_zeros_like():
    fn = meta("    z = zeros_like(theta)\n    d = theta - z\n    return sqnorm(d) + dot(theta, d)")
    verify(fn.ir)
    vals = [np.full((1, 4), 1.0, np.float32), np.full(4, 2.0, np.float32), np.full((4, 1), 3.0, np.float32),
            np.full(1, 4.0, np.float32)]
    data = [np.zeros((2, 1), np.float32)] * 4 + [np.float32(0.1)]
    expected = 2 * sum((v.astype(np.float64) ** 2).sum() for v in vals)
    np.testing.assert_allclose(evaluate(fn.ir, vals + data)[0], expected, rtol=1e-6)


# ---- argmin, straight_through ----------------------------------------------------------

def test_argmin_equation_follows_the_convention():
    fn = load(EX / "imaml.meta").functions["imaml"]
    (e,) = eqns(fn.ir, "argmin")
    assert e.params["n_p"] == 6
    assert e.params["solver"] == {"kind": "sgd", "lr": 0.02, "steps": 1500, "tol": 1e-4}
    assert e.params["implicit"] == {"kind": "cg", "iters": 100, "tol": 1e-8}
    obj = e.params["objective"]
    assert [v.name for v in obj.ins[:6]] == ["p.w1", "p.b1", "p.w2", "p.b2", "p.w3", "p.b3"]
    assert list(e.ins[:6]) == list(fn.ir.ins[:6])
    assert len(e.ins) == len(obj.ins) and obj.out_types[0].rank == 0
    fn = meta("    q = argmin(p from theta: mse(p, t.support.x, t.support.y)) by sgd(lr=0.1, steps=3)\n"
              "    return mse(q, t.query.x, t.query.y)")
    assert eqns(fn.ir, "argmin")[0].params["implicit"] is None


def test_straight_through_and_stop_gradient_are_primitives():
    fn = load(EX / "straight_through.meta").functions["ste"]
    (st,) = eqns(fn.ir, "straight_through")
    assert st.ins[1].name == "z"
    assert any(e.prim == "cast" for e in fn.ir.eqns) and any(e.prim == "gt" for e in fn.ir.eqns)
