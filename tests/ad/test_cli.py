"""The derivative-facing commands: show --kernel, residuals, explain, check."""
from __future__ import annotations

import re
from pathlib import Path

from metacc.cli import main

EX = Path(__file__).resolve().parents[2] / "examples"
MAML, CK, TR = str(EX / "sinusoid_maml.meta"), str(EX / "sinusoid_checkpointed.meta"), str(EX / "sinusoid_truncated.meta")


def test_show_meta_grad_ir_and_simplified(capsys):
    assert main(["show", MAML, "--fn", "maml", "--kernel", "meta_grad", "--stage", "ir"]) == 0
    raw = capsys.readouterr().out
    assert main(["show", MAML, "--fn", "maml", "--kernel", "meta_grad", "--stage", "simplified"]) == 0
    simple = capsys.readouterr().out
    for text in (raw, simple):
        assert text.startswith("func maml_grad(theta.w1: f32[1, 40]")
        assert "reverse=True" in text and "# sinusoid_maml.meta:" in text and "_bar" in text
    assert simple.count("\n") < raw.count("\n")     # simplification removed equations


def test_show_hvp_of_fn(capsys):
    assert main(["show", MAML, "--fn", "mse", "--kernel", "hvp", "--stage", "simplified"]) == 0
    out = capsys.readouterr().out
    assert "hv_p_w1" in out and "v_p_w1" in out


def test_show_numba_stage(capsys):
    assert main(["show", MAML, "--fn", "mse", "--kernel", "grad", "--stage", "numba"]) == 0
    out = capsys.readouterr().out
    assert "def " in out and "sinusoid_maml.meta:" in out


def test_show_numba_prints_what_the_runtime_compiles(capsys):
    """A meta function's meta-gradient is shown as the task-range kernel the runtime runs."""
    import metacc
    assert main(["show", MAML, "--fn", "maml", "--kernel", "meta_grad", "--stage", "numba"]) == 0
    out = capsys.readouterr().out
    assert "def maml_grad(task_lo, task_hi," in out and "for task in range(task_lo, task_hi):" in out
    assert out.strip() == metacc.compile(MAML).maml.source("grad").strip()


def test_show_numba_of_a_program_with_solvers(capsys):
    """argmin's convergence figures are kernel outputs, listed for the runtime (no traceback)."""
    assert main(["show", str(EX / "imaml.meta"), "--fn", "imaml", "--kernel", "meta_grad",
                 "--stage", "numba"]) == 0
    out = capsys.readouterr().out
    assert "DIAGNOSTICS = [{'kind': 'argmin', 'where': " in out and "imaml.meta:" in out


def test_meta_grad_of_a_fn_is_a_user_error(capsys):
    assert main(["show", MAML, "--fn", "mse", "--kernel", "meta_grad"]) == 1
    assert "use --kernel grad" in capsys.readouterr().err


def _total(text: str) -> int:
    return int(re.search(r"peak residual memory: ([\d,]+) bytes", text).group(1).replace(",", ""))


def test_residuals_checkpointing_uses_less_memory(capsys):
    assert main(["residuals", MAML, "--fn", "maml", "--const", "K=100", "--batch", "25", "--dims", "k=10,q=10"]) == 0
    full = capsys.readouterr().out
    assert main(["residuals", CK, "--fn", "maml_long", "--batch", "25", "--dims", "k=10,q=10"]) == 0
    ck = capsys.readouterr().out
    assert "f32[100, k, 40]" in full and "f32[10, k, 40]" in ck
    assert "(recomputed per segment)" in ck
    assert _total(ck) * 3 < _total(full)


def test_residuals_grow_with_K(capsys):
    sizes = []
    for K in (5, 20):
        assert main(["residuals", MAML, "--fn", "maml", "--const", f"K={K}"]) == 0
        sizes.append(_total(capsys.readouterr().out))
    assert sizes[1] > 3 * sizes[0]


def test_explain_truncate(capsys):
    assert main(["explain", TR, "--fn", "truncated_maml"]) == 0
    out = capsys.readouterr().out
    assert "3 iterations — first-order" in out and "2 iterations — exact" in out


def test_explain_checkpoint_changes_nothing(capsys):
    assert main(["explain", CK, "--fn", "maml_long"]) == 0
    assert "does not change the gradient" in capsys.readouterr().out


def test_check_reports_disconnected_parameters(tmp_path, capsys):
    bad = tmp_path / "cut.meta"
    bad.write_text("params W { w: f64[3] = zeros }\ntask T { x: f64[3] }\n"
                   "meta m(p: W, t: T) -> f64 {\n    return sum(stop_gradient(p.w) * t.x)\n}\n")
    # compile accepts it and its forward call runs (test_forward_only.py): check too, warning
    # with the message value_and_grad gives
    assert main(["check", str(bad)]) == 0
    err = capsys.readouterr().err
    assert "cut.meta:3:6: warning:" in err and "identically zero" in err and "stop_gradient" in err


LOPT, STE = str(EX / "learned_optimizer.meta"), str(EX / "straight_through.meta")


def test_gradcheck_passes_on_a_compiled_program(capsys):
    assert main(["gradcheck", LOPT, "--fn", "learned_optimizer"]) == 0
    out = capsys.readouterr().out
    worst = float(re.search(r"worst relative error: ([0-9.e+-]+)", out).group(1))
    assert worst < 1e-6 and "direction 1" in out and "phi." in out


def test_gradcheck_refuses_a_surrogate_gradient(capsys):
    assert main(["gradcheck", STE, "--fn", "ste"]) == 1
    err = capsys.readouterr().err
    assert "not the derivative of its value" in err and "straight_through.meta:16:9" in err
