"""Messages on a kernel's first call: quiet by default, shown by log_compiles() and train().

One tiny program, one cache directory for this file: its forward kernel is
built once (the 'compiled' case); a second module of the same source loads
it (the 'loaded from cache' case); its grad kernel is built inside train().
"""
from __future__ import annotations

import types

import numpy as np
import pytest

import metacc
from metacc.runtime import progress
from metacc.runtime.optim import SGD
from metacc.runtime.progress import describe, log_compiles
from metacc.runtime.train import train

SOURCE = """
params Q {
    w: f64[2] = const(1.0)
}

fn f(p: Q, x: f64[2]) -> f64 {
    return sum((p.w - x) ^ 2) + 0.125
}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("progress-cache")


@pytest.fixture(autouse=True)
def no_env_logging(monkeypatch):
    # METACC_LOG_COMPILES=1 in the environment would make "quiet by default" untestable
    if progress._writers:
        pytest.skip("compile messages are switched on for the whole process (METACC_LOG_COMPILES)")


def test_quiet_by_default_then_compiled_then_loaded_from_cache(cache, capfd):
    x = np.array([0.5, 2.0])
    quiet = metacc.compile(SOURCE, cache_dir=cache)
    assert float(quiet.f(quiet.Q.init(), x)) == pytest.approx(0.25 + 1.0 + 0.125)
    assert "metacc:" not in capfd.readouterr().err          # a library call says nothing

    lines: list[str] = []
    again = metacc.compile(SOURCE, cache_dir=cache)           # a new module: its kernels load on first call
    with log_compiles(lines.append):
        again.f(again.Q.init(), x)
        again.f(again.Q.init(), x)                             # not a first call: no message
    assert lines[0] == "metacc: compiling f forward (f64)…"
    assert lines[1].startswith("metacc: f forward (f64) loaded from cache in ") and lines[1].endswith(" s")
    assert len(lines) == 2

    fresh = metacc.compile(SOURCE.replace("0.125", "0.25"), cache_dir=cache)   # another source: a build
    with log_compiles(lines.append):
        fresh.f(fresh.Q.init(), x)
    assert lines[2] == "metacc: compiling f forward (f64)…"
    assert lines[3].startswith("metacc: f forward (f64) compiled in ")
    float(lines[3].split(" in ")[1].rstrip(" s"))             # a number of seconds
    assert "metacc:" not in capfd.readouterr().err          # they went to the writer, not stderr
    with log_compiles(lines.append):
        pass
    assert len(lines) == 4 and not progress._writers and progress._HANDLER not in progress.logger.handlers


def test_train_shows_the_first_build_above_its_bar_and_only_once(cache, capsys):
    mod = metacc.compile(SOURCE.replace("0.125", "0.5"), cache_dir=cache)
    outer: list[str] = []
    with log_compiles(outer.append):                         # a driver's own log_compiles around train
        _, log = train(lambda p, t: mod.f.value_and_grad(p, t), mod.Q.init(), SGD(0.1),
                       lambda: np.zeros(2), iterations=3, progress=True)
    err = capsys.readouterr().err
    assert len(log.losses) == 3
    assert err.count("metacc: compiling f grad (f64)…") == 1 and "metacc: f grad (f64) compiled in " in err
    assert outer == []                                       # the innermost writer (train's bar) took it


def test_train_without_progress_is_quiet(cache, capsys):
    mod = metacc.compile(SOURCE.replace("0.125", "0.5"), cache_dir=cache)
    train(lambda p, t: mod.f.value_and_grad(p, t), mod.Q.init(), SGD(0.1), lambda: np.zeros(2),
          iterations=2, progress=False)
    assert "metacc:" not in capsys.readouterr().err


def test_a_batched_gradient_is_called_meta_grad_and_declared_precision_is_read_from_the_ir():
    f32 = types.SimpleNamespace(type=types.SimpleNamespace(is_float=True, dtype="f32"))
    i64 = types.SimpleNamespace(type=types.SimpleNamespace(is_float=False, dtype="i64"))
    k = types.SimpleNamespace(fn_name="maml", kind="grad", batched=(True,), dtype="declared",
                              base=types.SimpleNamespace(ins=(i64, f32)))
    assert describe(k) == "maml meta_grad (f32)"
    k.batched, k.kind, k.dtype = None, "hvp", "f64"
    assert describe(k) == "maml hvp (f64)"


def test_fallback_bar_prints_a_message_on_its_own_line_and_redraws():
    import io

    from metacc.runtime.train import _LineBar, bar_writer
    bar = _LineBar(5, "fit", stream=io.StringIO())
    bar.update(2)
    bar_writer(bar)("metacc: compiling f grad (f64)…")
    text = bar.stream.getvalue()
    before, after = text.split("metacc: compiling f grad (f64)…")
    assert before.endswith("\r") and after.startswith(" ") and "\n" in after
    assert after.split("\n", 1)[1].startswith("\rfit: 2/5")      # the bar again, below the message


def test_environment_variable_turns_messages_on_for_a_whole_process(cache):
    import os
    import subprocess
    import sys
    code = ("import numpy as np, metacc, sys; m = metacc.compile(sys.argv[1], cache_dir=sys.argv[2]); "
            "m.f(m.Q.init(), np.zeros(2))")
    env = dict(os.environ, METACC_LOG_COMPILES="1")
    r = subprocess.run([sys.executable, "-c", code, SOURCE, str(cache)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "metacc: compiling f forward (f64)…" in r.stderr and "metacc: f forward (f64) " in r.stderr
    env["METACC_LOG_COMPILES"] = "0"
    r = subprocess.run([sys.executable, "-c", code, SOURCE, str(cache)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "metacc:" not in r.stderr
