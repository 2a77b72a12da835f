"""The `metacc` command line: exit codes, what goes to stdout and stderr."""
from __future__ import annotations

import subprocess
import sys

import pytest

from metacc.cli import SHOW_STAGES, main
from tests.frontend.helpers import ROOT

MAML = str(ROOT / "examples" / "sinusoid_maml.meta")
STE = str(ROOT / "examples" / "straight_through.meta")


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "bad.meta"
    path.write_text("task T { x: f32[n] }\nparams P { w: f32[3] = zeros }\n"
                    "meta m(p: P, t: T) -> f32 {\n    a = sum(p.w + t.x)\n    b = rleu(1.0)\n    return 1.0\n}\n")
    return str(path)


def test_check_prints_one_ok_line_per_file(capsys):
    assert main(["check", MAML, STE]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{MAML}: OK (fn mlp, fn mse, meta maml)", f"{STE}: OK (meta ste)"]
    assert err == ""


def test_check_reports_every_error_and_exits_1(capsys, bad):
    assert main(["check", bad, STE]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == f"{STE}: OK (meta ste)"
    assert f"{bad}:4:13: error: `+`: shapes [3] and [n] do not broadcast" in err
    assert f"{bad}:5:9: error: unknown function `rleu`" in err
    assert "^" in err and "Traceback" not in err


def test_check_of_a_missing_file(capsys, tmp_path):
    assert main(["check", str(tmp_path / "missing.meta")]) == 1
    _, err = capsys.readouterr()
    assert "no such file" in err and "hint:" in err and "Traceback" not in err


def test_show_ir_prints_functions_with_meta_line_references(capsys):
    assert main(["show", MAML, "--stage", "ir", "--fn", "maml"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("func maml(theta.w1: f32[1, 40]")
    assert "scan[" in out and "grad[n_wrt=6]" in out and "# sinusoid_maml.meta:31" in out
    assert "func mlp(" not in out
    assert main(["show", MAML]) == 0                       # all functions, IR by default
    out, _ = capsys.readouterr()
    assert out.index("func mlp(") < out.index("func mse(") < out.index("func maml(")


def test_show_ast(capsys):
    assert main(["show", STE, "--stage", "ast", "--fn", "ste"]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "FnDecl meta ste result=f32  # line 14"
    assert any("Call func=straight_through" in line for line in lines)


def test_show_of_an_unknown_function_lists_the_available_ones(capsys):
    assert main(["show", MAML, "--fn", "nope"]) == 1
    _, err = capsys.readouterr()
    assert "has no function `nope`" in err and "mlp, mse, maml" in err


def test_show_of_a_bad_program_is_an_error_without_traceback(capsys, bad):
    assert main(["show", bad, "--stage", "ir"]) == 1
    _, err = capsys.readouterr()
    assert "unknown function `rleu`" in err and "Traceback" not in err


def test_the_show_stages_are_a_table_others_can_extend():
    assert {"ast", "ir"} <= set(SHOW_STAGES)


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "metacc.cli", "check", STE], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"{STE}: OK (meta ste)"
