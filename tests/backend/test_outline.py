"""Outlined loop nests (metacc.backend.outline, metacc.runtime.nests).

What the outlined kernels compute is checked by every backend and e2e test against the
reference interpreter; here: which loops are taken out and which stay, that nests differing
only in buffers, offsets and sizes become one function, that a nest's name is the hash of
its text, and that the nest cache is shared, checked and rebuilt when damaged."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import metacc
from metacc.backend.outline import PLACEHOLDER, nest_name, outline
from metacc.errors import InternalError
from metacc.runtime import nests as nest_runtime

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"ws_f32": "a:f32", "x": "a:f32", "y": "a:i64", "n": "i", "alpha": "s:f32"}


def kernel(body: str) -> str:
    return "def k(x, y, ws_f32, n, alpha):\n" + textwrap.indent(textwrap.dedent(body), "    ")


def test_nests_that_differ_in_buffers_offsets_and_sizes_are_one_function():
    src = kernel("""
        a = 0
        b = a + 16 * n
        c = b + 8 * n
        for i0 in range(16 * n):
            t = ld(ws_f32, a + i0) * alpha
            st(ws_f32, b + i0, np.maximum(t, np.float32(0.0)))
        for i0 in range(8 * n):
            u = ld(ws_f32, b + i0) * alpha
            st(ws_f32, c + i0, np.maximum(u, np.float32(0.0)))
    """)
    out, nests = outline(src, KINDS)
    assert len(nests) == 1
    calls = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("nest_")]
    name = nests[0].name
    # the literal 16 and 8 are parameters, as are the offsets, the buffer and the scalar
    assert calls == [f"{name}(16, n, ws_f32, a, alpha, b)   # writes b", f"{name}(8, n, ws_f32, b, alpha, c)   # writes c"]
    assert nests[0].kinds == ("i", "i", "a:f32", "i", "s:f32", "i")
    ast.parse(out)
    ast.parse(nests[0].source)
    assert "for i0" not in out


def test_a_running_total_started_right_before_its_loop_is_returned_by_the_nest():
    src = kernel("""
        acc = np.float64(0)
        for i0 in range(n):
            acc += ld(x, i0)
        st(ws_f32, 0, np.float32(acc))
    """)
    out, (nest,) = outline(src, KINDS)
    assert nest.kinds[0] == "r:f64" and f"acc = {nest.name}(n, x)" in out
    assert "    t0 = np.float64(0)\n" in nest.source and nest.source.rstrip().endswith("return t0")
    assert "st(ws_f32, 0, np.float32(acc))" in out


def test_a_nest_whose_locals_outlive_it_otherwise_stays_in_the_kernel():
    src = kernel("""
        lo = np.float64(0)
        hi = np.float64(0)
        for i0 in range(n):
            lo = np.minimum(lo, ld(x, i0))
            hi = np.maximum(hi, ld(x, i0))
        st(ws_f32, 0, np.float32(hi - lo))
        total = np.float32(0.0)
        for i0 in range(n):
            total += ld(x, i0) * 0.5
        st(ws_f32, 1, total)
        for i0 in range(n):
            st(ws_f32, 2 + i0, ld(x, i0) + alpha)
    """)
    out, nests = outline(src, KINDS)
    # two totals; a float32 total whose loop has a float64 constant (its dtype would be the
    # constant's, not its start's): both stay, the plain nest goes
    assert len(nests) == 1 and out.count("for i0") == 2
    assert "hi = np.maximum(hi, ld(x, i0))" in out and "total += ld(x, i0) * 0.5" in out


def test_the_locals_of_a_body_emitted_twice_are_each_copy_s_own():
    body = """
        for i0 in range(n):
            t = ld(ws_f32, i0) * alpha
            st(ws_f32, n + i0, t)
    """
    out, nests = outline(kernel(body + body), KINDS)
    assert len(nests) == 1 and out.count(f"{nests[0].name}(") == 2 and "for i0" not in out


def test_a_nest_reading_a_name_of_unknown_type_stays():
    src = kernel("""
        mystery = some_call()
        for i0 in range(n):
            st(ws_f32, i0, ld(x, i0) * mystery)
        for i0 in range(n):
            fill_n(ws_f32, i0, 1, np.float32(0.0))
    """)
    out, nests = outline(src, KINDS)
    assert nests == [] and out.count("for i0") == 2      # and a call of a non-pure helper stays too


def test_offsets_swapped_between_loop_iterations_are_ints():
    src = kernel("""
        p = 0
        q = p + n
        for k in range(3):
            for i0 in range(n):
                st(ws_f32, q + i0, ld(ws_f32, p + i0) * alpha)
            p, q = q, p
    """)
    out, nests = outline(src, KINDS)
    assert len(nests) == 1 and nests[0].kinds.count("i") == 3
    assert "p, q = q, p" in out


def test_the_name_is_the_hash_of_kinds_and_text():
    src = kernel("""
        for i0 in range(n):
            st(ws_f32, i0, ld(x, i0) * alpha)
    """)
    (nest,) = outline(src, KINDS)[1]
    body = nest.source.replace(nest.name, PLACEHOLDER)
    assert nest_name(nest.kinds, body) == nest.name
    assert " * " in body and nest_name(nest.kinds, body.replace(" * ", " + ")) != nest.name
    table = {nest.name: (" ".join(nest.kinds), nest.source.replace(" * ", " + "))}
    with pytest.raises(InternalError, match="does not match its name"):
        nest_runtime.link_nests(table, {})


def test_the_conv4_meta_gradient_is_a_few_shared_nests():
    """Most of the 288 loop nests of Conv4 MAML's meta-gradient repeat across its four blocks
    and the inner and outer passes: outlined, the kernel keeps a handful of loops."""
    src = (ROOT / "examples" / "conv4_maml.meta").read_text()
    mod = metacc.compile(re.sub(r"\b64\b", "3", src).replace("28, 28", "16, 16"), dtype="f32")
    text = mod.maml.source("grad")
    table = text[text.index("NESTS = {"):text.index("globals().update(link_nests")]
    n_nests = table.count('"nest_')
    calls = sum(1 for ln in text.splitlines() if ln.lstrip().startswith("nest_"))
    kernel_text = text[text.index("def maml_grad("):]
    loops_left = sum(1 for ln in kernel_text.splitlines() if ln.lstrip().startswith("for i0"))
    assert calls > 3 * n_nests and n_nests < 80, (calls, n_nests)
    assert loops_left <= 5, loops_left


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


PROGRAM = """
params P { w: f64[4, 3] = glorot_normal   b: f64[3] = zeros }
fn f(p: P, x: f64[n, 4]) -> f64 { return mean(tanh(x @ p.w + p.b) ^ 2) }
fn g(p: P, x: f64[n, 4]) -> f64 { return mean(tanh(x @ p.w + p.b) ^ 2) + mean(p.b ^ 2) }
"""
SCRIPT = """
import json, numpy as np, warnings, metacc
mod = metacc.compile({program!r}, dtype="f64")
p = mod.P.init(seed=0)
x = np.random.default_rng(0).normal(size=(6, 4))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = [float(mod.f.value_and_grad(p, x)[0]), float(mod.g.value_and_grad(p, x)[0])]
print(json.dumps({{"out": out, "warnings": [str(w.message) for w in caught]}}))
"""


def test_nests_are_cached_by_content_shared_and_rebuilt_when_damaged(tmp_path):
    env = dict(os.environ, METACC_CACHE_DIR=str(tmp_path))
    code = SCRIPT.format(program=PROGRAM)
    first = _run(code, env)
    assert first.returncode == 0, first.stderr
    got = json.loads(first.stdout.splitlines()[-1])
    nest_dir = tmp_path / "nests"
    entries = sorted(p for p in nest_dir.iterdir() if not p.name.startswith("."))
    stored = set()
    for e in entries:
        stored.add(json.loads((e / "entry.json").read_text())["parts"]["nest"])
        assert any(n.endswith(".nbc") for n in os.listdir(e / "__pycache__")), e
    # what each kernel calls: f's nests are g's too, and each nest is one entry, compiled once
    listed = []
    for k in tmp_path.glob("*/kernels.py"):
        if k.parent.parent == tmp_path and "NESTS = {" in k.read_text():
            listed.append(set(re.findall(r'^    "(nest_[0-9a-f]+)"', k.read_text(), re.M)))
    assert len(listed) == 2 and listed[0] & listed[1], listed
    assert stored == listed[0] | listed[1] and len(entries) == len(stored)
    # damage one nest's source: the next process says so, rebuilds it, and gets the same numbers
    victim = entries[0] / "kernels.py"
    victim.write_text(victim.read_text().replace("ld(", "ld( ", 1))
    again = json.loads(_run(code, env).stdout.splitlines()[-1])
    assert again["out"] == got["out"]
    assert any("is broken" in w and "rebuilding" in w for w in again["warnings"]), again["warnings"]
    assert json.loads(_run(code, env).stdout.splitlines()[-1])["warnings"] == []


P1 = """
import json, numpy as np, metacc
from metacc.runtime.tasks import sinusoid_tasks
mod = metacc.compile({path!r}, dtype="f64")
tasks = sinusoid_tasks(np.random.default_rng(0), 3, k=5, q=5, dtype="f64")
loss, g = mod.maml.value_and_grad(mod.Net.init(seed=0), tasks)
print(json.dumps([float(loss)] + [float(np.sum(v)) for v in g.values()]))
"""


def test_worker_processes_build_the_same_nests(tmp_path):
    """With workers (the default on a machine with more than one CPU; P1's meta-gradient has
    enough nests to use them) and without, the same entries and the same numbers."""
    code = P1.format(path=str(ROOT / "examples" / "sinusoid_maml.meta"))
    outs = []
    for workers in ("0", "2"):
        env = dict(os.environ, METACC_CACHE_DIR=str(tmp_path / workers), METACC_COMPILE_WORKERS=workers)
        r = _run(code, env)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout.splitlines()[-1]))
        listing = sorted(p.name for p in (tmp_path / workers / "nests").iterdir() if not p.name.startswith("."))
        outs.append(listing)
    assert outs[0] == outs[2] and outs[1] == outs[3] and len(outs[1]) >= nest_runtime.MIN_PARALLEL
    assert np.isfinite(outs[0]).all()


def test_the_kernel_compiles_while_workers_build_and_a_dead_worker_costs_only_time(tmp_path):
    """With workers the module's task kernel is a stand-in until its first call, which
    compiles the kernel, links the nests the workers built and runs it; a worker that
    dies before building anything leaves every nest to this process, with the same numbers."""
    code = P1.format(path=str(ROOT / "examples" / "sinusoid_maml.meta"))
    probe = code + textwrap.dedent("""
        import metacc.runtime.nests as N
        print(json.dumps(sorted(N._linked) == sorted(N._slots)
                         and all(N._slots[n].value == N._linked[n].address for n in N._linked)))
        """)
    dead = ("import subprocess, sys, metacc.runtime.nests as N\n"
            "N._spawn = lambda: subprocess.Popen([sys.executable, '-c', 'import sys; sys.exit(3)'], "
            "stdin=subprocess.PIPE)\n") + probe
    outs = []
    for name, text in (("live", probe), ("dead", dead)):
        env = dict(os.environ, METACC_CACHE_DIR=str(tmp_path / name), METACC_COMPILE_WORKERS="2")
        r = _run(text, env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert json.loads(lines[-1]) is True, "a nest's slot does not hold its address"
        outs.append(json.loads(lines[-2]))
        kernels = [k for k in (tmp_path / name).glob("*/kernels.py") if "NESTS = {" in k.read_text()]
        assert kernels and all("= compile_then_link(" in k.read_text() for k in kernels)
    assert outs[0] == outs[1] and np.isfinite(outs[0]).all()


def test_an_idle_worker_exits_cleanly_and_a_bad_worker_count_means_none(monkeypatch):
    """A worker started ahead and never needed gets an empty job at exit: it exits at once."""
    r = subprocess.run([sys.executable, "-c", "from metacc.runtime.nests import worker_main; worker_main()"],
                       input=b"", capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("METACC_COMPILE_WORKERS", "lots")
    assert nest_runtime._workers() == 0
    monkeypatch.setenv("METACC_COMPILE_WORKERS", "3")
    assert nest_runtime._workers() == 3
