"""The sinusoid demo end to end in a tiny configuration, writing to a temporary folder."""
from __future__ import annotations

import json
import sys

import pytest

from tests.e2e.test_drivers import load_driver

# --inner-steps 5 and float64: the kernels test_meta_gradients.py builds for sinusoid_maml
TINY = ["--iterations", "30", "--eval-tasks", "12", "--dtype", "f64", "--inner-steps", "5", "--no-progress"]


@pytest.fixture(scope="module")
def demo():
    return load_driver("sinusoid_demo")


def test_demo_runs_and_reports_every_shot_and_step(demo, tmp_path, capsys):
    results = demo.main(TINY + ["--out", str(tmp_path)])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["iterations"] == 30 and saved["config"]["method"] == "MAML"
    assert set(saved["mse"]) == {"MAML", "pretrained", "pretrained, alpha=0.001"}
    for rows in saved["mse"].values():
        assert set(rows) == {"5-shot", "10-shot", "20-shot"}
        for row in rows.values():
            assert set(row) == {"before", "1 steps", "10 steps"}
            for mean, ci, diverged in row.values():
                assert diverged or (mean >= 0 and 0 <= ci < float("inf"))
    assert results["mse"] == saved["mse"]
    assert f"wrote {tmp_path / 'results.json'}" in out and "mean ± 95% CI" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        for png in ("tasks.png", "learning_curve.png"):
            assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"wrote {tmp_path / png}" in out


def test_demo_without_matplotlib_says_so_and_skips_the_plots(demo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib now fails
    monkeypatch.delitem(sys.modules, "sinusoid_plots", raising=False)
    demo.main(["--iterations", "2", "--eval-tasks", "3", "--dtype", "f64", "--inner-steps", "5",
               "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out and "skipping the plots" in out
    assert (tmp_path / "results.json").exists() and not (tmp_path / "tasks.png").exists()


def test_meta_sgd_refuses_several_inner_steps(demo):
    with pytest.raises(SystemExit, match="one inner step"):
        demo.main(["--meta-sgd", "--inner-steps", "3"])


@pytest.mark.slow
def test_demo_meta_sgd(demo, tmp_path):
    results = demo.main(["--meta-sgd", "--iterations", "30", "--eval-tasks", "12", "--dtype", "f64",
                         "--no-progress", "--out", str(tmp_path)])
    assert results["config"]["method"] == "Meta-SGD" and "Meta-SGD" in results["mse"]


def test_demo_shows_kernel_builds_and_evaluation_progress(demo, tmp_path, capsys):
    demo.main(["--iterations", "2", "--eval-tasks", "3", "--dtype", "f64", "--inner-steps", "5",
               "--out", str(tmp_path)])
    err = capsys.readouterr().err
    # every kernel's first call in this process is announced with its time (built or loaded)
    assert "metacc: compiling maml meta_grad (f64)…" in err
    assert any(w in err for w in ("maml meta_grad (f64) compiled in ", "maml meta_grad (f64) loaded from cache in "))
    # 3 learners x 3 shot counts x 3 tasks: the held-out evaluation has its own bar
    assert "evaluate held-out tasks" in err and "27/27" in err
