"""The kernel pipeline as data: its pass lists, the driver, and `metacc show --stage NAME` after each pass."""
from __future__ import annotations

import pytest

import metacc
from metacc.cli import main
from metacc.errors import InternalError, MetaccError
from metacc.frontend import load
from metacc.ir.core import Eqn, Func, Var
from metacc.ir.printer import format_func
from metacc.ir.verify import verify
from metacc.kinds import default_wrt
from metacc.passes.driver import Build, Fixpoint, Pass, ir_pass, run
from metacc.pipeline import DERIVATIVES, KINDS, kernel_ir, resolve, stages
from tests.frontend.helpers import ROOT

P1 = str(ROOT / "examples" / "sinusoid_maml.meta")
IMAML = str(ROOT / "examples" / "imaml.meta")

SIMPLIFY = ["fold", "passthrough", "licm", "cse", "dce"]
FORWARD = (["transform"] + SIMPLIFY + ["simplify", "lower_cg"] + [n + "2" for n in SIMPLIFY] + ["simplify2"]
           + ["expand", "hoist", "inline", "outer_products", "fusion", "plan", "lower"])


def _prims(fn: Func) -> set[str]:
    return {e.prim for e in fn.eqns} | {p for e in fn.eqns for s in e.subfuncs() for p in _prims(s)}


def _dead(fn: Func) -> list[Eqn]:
    """Top-level equations with outputs, none of which a later equation or the result reads."""
    read = {a for a in fn.outs if isinstance(a, Var)}
    dead = []
    for e in reversed(fn.eqns):
        if e.outs and not any(v in read for v in e.outs):
            dead.append(e)
            continue
        read.update(a for a in e.ins if isinstance(a, Var))
    return dead


def _show(capsys, *argv) -> str:
    assert main(["show", *argv]) == 0
    return capsys.readouterr().out


def test_the_pass_list_of_each_kind():
    assert stages("forward") == FORWARD
    for kind in DERIVATIVES:
        # derivative kernels poison their derivatives right after the transform
        assert stages(kind) == FORWARD[:1] + ["poison"] + FORWARD[1:]
    assert set(KINDS) == {"forward", *DERIVATIVES}


def test_the_old_stage_names_are_aliases():
    assert resolve("forward", "ir") == "transform" and resolve("grad", "ir") == "poison"
    assert resolve("vjp", "simplified") == "simplify2" and resolve("hvp", "numba") == "lower"
    assert resolve("jvp", "licm2") == "licm2"


def test_the_driver_verifies_after_each_ir_pass():
    fn = load(P1).functions["mse"].ir
    # drops the first equation but keeps every use of its outputs: the verifier names the pass
    broken = ir_pass("broken", lambda f: Func(f.name, f.ins, f.eqns[1:], f.outs, f.span), "a broken pass")
    with pytest.raises(InternalError, match="IR verification failed after broken"):
        run((ir_pass("fine", lambda f: f, "identity"), broken), Build(fn))


def test_until_stops_inside_a_fixpoint_after_the_first_round():
    fn = load(P1).functions["mse"].ir
    calls: list[str] = []

    def noting(name):
        def step(b: Build) -> Build:
            calls.append(name)
            return b
        return Pass(name, step, name)

    steps = (Fixpoint("group", (noting("a"), noting("b")), "a and b to a fixpoint"), noting("after"))
    run(steps, Build(fn), until="a")
    assert calls == ["a"]
    calls.clear()
    run(steps, Build(fn), until="group")
    assert calls == ["a", "b"]                   # nothing changed: one round


def test_show_after_every_pass_of_p1(capsys):
    f = load(P1).functions["maml"]
    wrt = default_wrt(f)
    args = [P1, "--fn", "maml", "--kernel", "meta_grad", "--stage"]
    text = {name: _show(capsys, *args, name) for name in stages("meta_grad")}
    ir = {name: kernel_ir(f.ir, "meta_grad", wrt, name) for name in stages("meta_grad")[:stages("meta_grad")
                                                                                        .index("simplify2") + 1]}
    for name, fn in ir.items():
        verify(fn, name)
        assert text[name] == format_func(fn) + "\n"
    # the aliases print the same as the passes they stand for
    assert _show(capsys, *args, "ir") == text["poison"]
    assert _show(capsys, *args, "simplified") == text["simplify2"]
    assert _show(capsys, *args, "numba") == text["lower"]
    # each pass did what it says
    assert "nonfinite" in text["poison"] and "nonfinite" not in text["transform"]
    assert _dead(ir["transform"]) and not _dead(ir["dce"]) and not _dead(ir["dce2"])
    assert len(ir["simplify"].eqns) < len(ir["poison"].eqns)
    assert "loop nest" in text["fusion"] and "workspace" in text["plan"]
    assert "@njit" in text["lower"] and "ENTRY_BATCHED" in text["lower"]


def test_lower_cg_leaves_no_cg_solve(capsys):
    args = [IMAML, "--fn", "imaml", "--kernel", "meta_grad", "--stage"]
    assert "cg_solve" in _show(capsys, *args, "simplify")
    assert "cg_solve" not in _show(capsys, *args, "lower_cg")
    f = load(IMAML).functions["imaml"]
    assert "cg_solve" not in _prims(kernel_ir(f.ir, "meta_grad", default_wrt(f), "lower_cg"))


def test_show_stages_lists_each_kind(capsys):
    out = _show(capsys, "--stages")
    flat = " ".join(out.split())                 # the pass lists are wrapped
    assert "forward: " + " -> ".join(stages("forward")) in flat
    assert ", ".join(DERIVATIVES) + ": " + " -> ".join(stages("grad")) in flat
    for name in stages("grad")[1:]:              # each pass with what it does
        assert f"\n  {name} " in out
    for kind in KINDS:                            # and the transform of each kind
        assert f"\n  {kind} " in out
    assert "[alias: simplified]" in out and "[alias: numba]" in out


def test_an_unknown_stage_lists_the_valid_ones(capsys):
    assert main(["show", P1, "--fn", "mse", "--stage", "dcd"]) == 1
    _, err = capsys.readouterr()
    assert "unknown stage 'dcd'" in err and "did you mean `dce`" in err
    assert "ir, simplified, numba, transform" in err and "lower_cg" in err and "Traceback" not in err
    with pytest.raises(MetaccError, match="unknown stage 'fusoin'") as info:
        resolve("grad", "fusoin")
    assert "fusion" in str(info.value.hint)


def test_poison_is_a_stage_of_derivative_kernels_only(capsys):
    assert main(["show", P1, "--fn", "mse", "--stage", "poison"]) == 1
    _, err = capsys.readouterr()
    assert "the forward kernel has no stage 'poison'" in err and "--kernel grad" in err
    assert "p.w1_bar" in _show(capsys, P1, "--fn", "mse", "--kernel", "grad", "--stage", "poison")


def test_module_source_takes_any_stage_name(tmp_path):
    mod = metacc.compile(P1, cache_dir=tmp_path)
    assert "loop nest" in mod.mse.source("grad", stage="fusion")
    assert mod.mse.source("grad", stage="simplify2") == mod.mse.source("grad", stage="simplified")
    with pytest.raises(MetaccError, match="unknown stage 'plna'") as info:
        mod.mse.source("grad", stage="plna")
    assert "plan" in str(info.value.hint)
