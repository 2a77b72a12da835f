"""The README's walkthrough (a new inner-loop rule) works as written."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from metacc.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks():
    return re.findall(r"```(\w*)\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    meta = next(body for lang, body in _blocks() if "meta clipped(" in body)
    code = next(body for lang, body in _blocks() if lang == "python" and "clipped_sgd.meta" in body)
    d = tmp_path_factory.mktemp("walkthrough")
    (d / "clipped_sgd.meta").write_text(meta)
    return d, code


def test_walkthrough_program_checks_and_gradchecks(walkthrough, capsys):
    d, _ = walkthrough
    assert main(["check", str(d / "clipped_sgd.meta")]) == 0
    assert main(["gradcheck", str(d / "clipped_sgd.meta"), "--fn", "clipped"]) == 0
    assert "OK at tol" in capsys.readouterr().out


def test_walkthrough_training_loop_runs(walkthrough, capsys, monkeypatch):
    d, code = walkthrough
    assert "iterations=2000" in code
    monkeypatch.chdir(d)
    exec(compile(code.replace("iterations=2000", "iterations=20"), "README walkthrough", "exec"), {})
    out = capsys.readouterr().out
    assert "'lr'" in out and "'clip'" in out
    assert os.path.exists(d / "clipped_sgd.meta")


def test_walkthrough_evaluate_callback_runs_as_documented(walkthrough, capsys, monkeypatch):
    """The README's train(evaluate=...) example: (params, iteration), results in log.evals."""
    d, code = walkthrough
    snippet = next(body for lang, body in _blocks() if lang == "python" and "evaluate=evaluate" in body)
    assert "(params, iteration)" in snippet and "eval_every=500" in snippet
    monkeypatch.chdir(d)
    scope: dict = {}
    exec(compile(code.replace("iterations=2000", "iterations=4"), "README walkthrough", "exec"), scope)
    exec(compile(snippet.replace("iterations=2000", "iterations=20").replace("eval_every=500", "eval_every=5"),
                 "README evaluate", "exec"), scope)
    evals = scope["log"].evals
    assert [it for it, _ in evals] == [5, 10, 15, 20]
    assert all(isinstance(v, float) and v > 0 for _, v in evals)
    assert str(evals) in capsys.readouterr().out
