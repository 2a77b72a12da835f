"""Issue 9, front end and compile: every user error is a MetaccError, located, in bounded time.

One test (or a parametrised family) per class of fault the fuzz campaign found: compile-time
values that grow without bound, nesting that exhausts Python's stack, checkpoint policies that
recurse, integer arguments of builtins, kernels that need a scalar, literals and sizes past
their dtype, CLI flags, every error of a file at once, empty programs, paths given to compile,
and the traceback a user sees. Front end only, except the checkpoint test (the IR interpreter)
and the traceback test (a subprocess, no kernel compile).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import metacc
import metacc.frontend
import metacc.runtime
from metacc.cli import main
from metacc.errors import MetaccError, MetaccErrors
from metacc.frontend import load_source
from tests.frontend.helpers import ROOT

MAML = str(ROOT / "examples" / "sinusoid_maml.meta")


def error_of(src: str, name: str = "h.meta") -> MetaccError:
    with pytest.raises(MetaccError) as info:
        load_source(src, name)
    return info.value


def fn1(expr: str, dtype: str = "f32") -> str:
    return f"fn f(x: {dtype}) -> {dtype} {{\n    return {expr}\n}}\n"


# ---- 1. compile-time values are bounded (no hang) ------------------------------------------

@pytest.mark.parametrize("expr, message, col", [
    ("x * (3 ^ 3 ^ 3 ^ 3)", "too large", 17),       # 3 ^ 3 ^ 3 folds; 3 ^ 7625597484987 would not end
    ("x * (9 ^ 9 ^ 9)", "too large", 17),
    ("x * (2 ^ 64)", "too large", 17),
    ("x * (2 ^ 40 * 2 ^ 40)", "no real, representable value", 17),
    ("x * (1e200 * 1e200)", "overflows", 17),
    ("x * exp(1000.0)", "no real, finite value", 16),
])
def test_constant_folding_is_bounded_and_located(expr, message, col):
    start = time.perf_counter()
    err = error_of(fn1(expr, "f64"))
    assert time.perf_counter() - start < 5
    assert message in err.message
    assert (err.line, err.col) == (2, col)


def test_constants_within_the_bounds_still_fold():
    program = load_source(fn1("x * (2 ^ 62) + 2 ^ -1", "f64"))
    assert "f" in program.functions


# ---- 2. deep nesting: a located MetaccError, never VisitError or RecursionError ----------------

DEEP = {
    "pow_chain": lambda n: "x ^ " + " ^ ".join(["1"] * n),
    "add_chain": lambda n: "x" + " + x" * n,
    "negations": lambda n: "-" * n + "x",
    "calls": lambda n: "exp(" * n + "x" + ")" * n,
    "slices": lambda n: "sum(x" + "[0:1]" * n + ")",
}


@pytest.mark.parametrize("shape", list(DEEP))
def test_too_deep_expressions_are_located_errors(shape):
    n = 500 if shape != "add_chain" else 3000
    src = fn1(DEEP[shape](n), "f32[1]" if shape == "slices" else "f32")
    if shape == "slices":
        src = src.replace("-> f32[1]", "-> f32")
    err = error_of(src)
    assert "nested too deeply" in err.message
    assert (err.line, err.col) == (2, 12)           # the start of the expression
    assert err.hint and "assignments" in err.hint


def test_moderately_deep_expressions_still_compile():
    load_source(fn1(DEEP["add_chain"](150)))
    load_source(fn1(DEEP["pow_chain"](150)))


def test_deep_expression_from_a_deep_caller_is_still_a_metacc_error():
    """The parser's bound leaves room, but a caller already deep in the stack can still run out:
    that is reported at the function, not as a RecursionError."""
    src = fn1(DEEP["calls"](95))

    def descend(k):
        return descend(k - 1) if k else load_source(src, "h.meta")

    limit = sys.getrecursionlimit()
    depth = limit - 150 - len(__import__("inspect").stack(0))
    with pytest.raises(MetaccError) as info:
        descend(depth)
    assert "nested too deeply" in info.value.message
    assert info.value.line is not None


def test_loops_nest_at_most_ten_deep():
    def prog(n):
        return ("params P { w: f32[2] = zeros }\nfn f(p: P, x: f32) -> f32 {\n    y = x\n"
                + "    " + "repeat 2 { " * n + "y = y * sum(p.w) + 1.0 " + "}" * n + "\n    return y\n}\n")
    load_source(prog(10))
    err = error_of(prog(11))
    assert "nest inside one another" in err.message
    assert err.line == 4 and err.col == 5 + 10 * len("repeat 2 { ")


def _chain(n, body):
    return "".join(f"fn g{i}(x: f32) -> f32 {{ return {body.format(i + 1)} }}\n" for i in range(n)) + \
        f"fn g{n}(x: f32) -> f32 {{ return x }}\n"


def test_long_call_chains_are_located_errors():
    load_source(_chain(39, "g{0}(x) * 1.5"))
    err = error_of(_chain(45, "g{0}(x) * 1.5"))
    first = err.errors[0] if isinstance(err, MetaccErrors) else err
    assert "function calls nest more than 40 deep" in first.message
    assert (first.line, first.col) == (40, 32)


def test_inlining_that_doubles_at_every_level_stops_in_bounded_time():
    start = time.perf_counter()
    err = error_of(_chain(30, "g{0}(x) * g{0}(x * 0.5)"))
    assert time.perf_counter() - start < 30
    assert "grows past" in err.message and "inlined" in err.message and err.line is not None


# ---- 3. @checkpoint policies -------------------------------------------------------------------

def _ckpt(k, annotation):
    return (f"params P {{ w: f64[2] = zeros }}\nfn f(p: P, x: f64[2]) -> f64 {{\n    q = p\n"
            f"    repeat {k} {annotation} {{ q = q - 0.1 * grad(sum(tanh(q.w * x) ^ 2), q) }}\n"
            f"    return sum(q.w * q.w * x)\n}}\n")


def test_checkpoint_with_one_snapshot_is_rejected_at_check_time():
    err = error_of(_ckpt(5, "@checkpoint(snapshots=1)"))
    assert "snapshots=1" in err.message and (err.line, err.col) == (4, 26)
    assert "snapshots=2" in err.hint
    load_source(_ckpt(1, "@checkpoint(snapshots=1)"))      # one step: nothing to split


@pytest.mark.parametrize("k, annotation", [
    (2, "@checkpoint(snapshots=2)"), (5, "@checkpoint(snapshots=2)"), (7, "@checkpoint(snapshots=3)"),
    (5, "@checkpoint(snapshots=9)"), (5, "@checkpoint(every=1)"), (7, "@checkpoint(every=3)"),
    (4, "@checkpoint(every=9)"), (6, "@truncate(4) @checkpoint(snapshots=2)"),
])
def test_every_checkpoint_policy_gives_the_plain_derivatives(k, annotation):
    from metacc.interp import evaluate
    from metacc.pipeline import kernel_ir
    rng = np.random.default_rng(k)
    w, x, v = rng.normal(size=2), rng.normal(size=2), rng.normal(size=2)
    plain = load_source(_ckpt(k, annotation.split("@checkpoint")[0])).functions["f"].ir
    ckpt = load_source(_ckpt(k, annotation)).functions["f"].ir
    for kind, args in (("grad", [w, x]), ("hvp", [w, x, v])):
        want = evaluate(kernel_ir(plain, kind, [0]), args)
        got = evaluate(kernel_ir(ckpt, kind, [0]), args)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# ---- 4. integer arguments of builtins ------------------------------------------------------------

@pytest.mark.parametrize("call, col", [
    ("one_hot(y, 99999999999999999999)", 27),
    ("one_hot(y, 9999999999999)", 27),
    ("one_hot(y, 2 ^ 40)", 27),
])
def test_huge_class_counts_are_errors_at_check_time(call, col):
    err = error_of(f"fn f(y: i64[n]) -> f32 {{\n    return sum({call})\n}}\n")
    assert "too large" in err.message
    assert (err.line, err.col) == (2, col)


def test_huge_axis_is_an_error():
    err = error_of(fn1("sum(softmax(x, axis=99999999999999))", "f32[3]").replace("-> f32[3]", "-> f32"))
    assert "too large" in err.message and err.line == 2


# ---- 5. grad and hvp kernels need a scalar ---------------------------------------------------

@pytest.mark.parametrize("kind", ["grad", "hvp", "meta_grad"])
def test_grad_kernels_of_a_non_scalar_fn_are_metacc_errors(kind):
    from metacc.pipeline import kernel_ir
    program = load_source(open(MAML).read(), MAML)
    f = program.functions["mlp"]
    with pytest.raises(MetaccError) as info:
        kernel_ir(f.ir, kind, [0])
    err = info.value
    assert "returns f32[n, 1]" in err.message and "scalar" in err.message
    assert "vjp" in err.hint and "jvp" in err.hint
    assert err.span is not None


@pytest.mark.parametrize("kind", ["grad", "hvp"])
def test_show_kernel_grad_of_a_non_scalar_fn(capsys, kind):
    assert main(["show", MAML, "--fn", "mlp", "--kernel", kind]) == 1
    _, err = capsys.readouterr()
    assert f"the {kind} kernel needs a function that returns a float scalar" in err
    assert "vjp" in err and "Traceback" not in err and "InternalError" not in err


# ---- 6. literals and sizes past their dtype; CLI flags -------------------------------------------

@pytest.mark.parametrize("src, message, where", [
    (fn1("x * 1e39"), "1e39 overflows f32", (2, 16)),
    (fn1("x * 1e999", "f64"), "too large for any float type", (2, 16)),
    (fn1("x * 1e-999", "f64"), "too small for any float type", (2, 16)),
    (fn1("x * 1e-50"), "underflows f32", (2, 16)),
    (fn1("x * 99999999999999999999", "f64"), "whole number 99999999999999999999 is too large", (2, 16)),
    ("fn f(x: f32 = 1e39) -> f32 { return x }\n", "the default 1e+39 overflows f32", (1, 15)),
    ("params P { w: f32[1000000, 1000000000] = zeros }\nfn f(p: P) -> f32 { return sum(p.w) }\n",
     "1e+15 elements", (1, 15)),
    ("params P { a: f32[40000, 40000] = zeros  b: f32[40000, 40000] = zeros }\n"
     "fn f(p: P) -> f32 { return sum(p.a) }\n", "3.2e+09 elements in all", (1, 1)),
    (fn1("sum(zeros([100000, 100000, 1000]))"), "1e+13 elements", (2, 16)),
    (fn1("x + sum(full([2], 1e39))"), "the value 1e+39 overflows f32", (2, 20)),
    ("task T { x: f32[n, 100000, 100000] }\nfn f(x: f32[100000, 100000]) -> f32 { return sum(x) }\n",
     "1e+10 elements", (2, 9)),
])
def test_values_and_sizes_past_their_dtype_are_errors(src, message, where):
    err = error_of(src)
    assert message in err.message
    assert (err.line, err.col) == where


@pytest.mark.parametrize("expr, value", [
    ("x * (f32(1e38) * 10.0)", "inf"), ("x * exp(f32(100.0))", "inf"), ("x + log(f32(0.0))", "-inf"),
])
def test_typed_constant_expressions_that_overflow_are_errors(expr, value):
    err = error_of(fn1(expr))
    assert f"this constant expression is {value} in f32" in err.message and err.line == 2


def test_literals_within_range_are_kept():
    program = load_source(fn1("x * 1e39 + 1e-300", "f64"))
    assert "f" in program.functions


@pytest.mark.parametrize("argv, needle", [
    (["residuals", MAML, "--fn", "maml", "--batch", "-1"], "--batch: must be at least 1, not -1"),
    (["residuals", MAML, "--fn", "maml", "--dims", "k=-5"], "size of dim k must be between 1"),
    (["gradcheck", MAML, "--fn", "mse", "--seed", "-3"], "--seed: must be at least 0, not -3"),
    (["gradcheck", MAML, "--fn", "mse", "--tol", "-1"], "--tol: must be a positive"),
])
def test_cli_rejects_bad_numbers(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle, hint", [
    (["residuals", MAML, "--fn", "maml", "--dims", "kk=5"], "meta maml has no dimension `kk`", "`k`"),
    (["gradcheck", MAML, "--fn", "mse", "--dims", "m=3"], "fn mse has no dimension `m`", "expected: n"),
    (["residuals", MAML, "--fn", "maml", "--const", "KK=5"], "the constant `KK` is not an int argument", "`K`"),
    (["show", MAML, "--const", "alpha=5"], "the constant `alpha` is not an int argument", "expected: K"),
])
def test_cli_rejects_unknown_names_and_lists_the_valid_ones(capsys, argv, needle, hint):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err and hint in err and "Traceback" not in err


def test_cli_suggests_the_function_meant(capsys):
    assert main(["explain", MAML, "--fn", "mamll"]) == 1
    err = capsys.readouterr().err
    assert "has no function `mamll`" in err and "did you mean `maml`?" in err


def test_unknown_constant_from_the_python_api():
    with pytest.raises(MetaccError, match="the constant `K2`"):
        load_source(open(MAML).read(), MAML, constants={"K2": 3})
    load_source(open(MAML).read(), MAML, constants={"K": 3})


# ---- 7. every independent error is reported -------------------------------------------------

def test_syntax_errors_in_three_functions_are_three_errors():
    src = textwrap.dedent("""\
        params Net { w: f32[2] = zeros }
        fn a(p: Net, x: f32) -> f32 { return x +* 2 }
        fn b(p: Net, x: f32) -> f32 {
            return x + a(p, x) +
        }
        fn c(p: Net, x: f32) -> f32 { return sqrtt(x) + a(p, x) + b(p, x) }
        fn d(x: f32) -> f32 { return x ** 2 }
        fn e(x: f32) -> f32 { return x + 1.0 }
        """)
    err = error_of(src)
    assert isinstance(err, MetaccErrors)
    where = [(e.line, e.message) for e in err.errors]
    assert [w[0] for w in where] == [2, 4, 6, 7]
    assert "unexpected `*`" in where[0][1]
    assert "unknown function `sqrtt`" in where[2][1]       # a semantic error after syntax errors
    assert "`**` is not an operator" in where[3][1]
    # the calls of a() and b(), which did not parse, add nothing
    assert not any("`a`" in m or "`b`" in m for _, m in where)


def test_a_broken_type_declaration_stays_quiet_in_its_uses():
    src = ("params Net { w: f32[2] = }\ntask T { x: f32[3] }\nmeta m(p: Net, t: T) -> f32 { return sum(p.w) }\n"
           "fn g(x: f32) -> f32 { return x + yy }\n")
    err = error_of(src)
    assert [e.line for e in err.errors] == [1, 4]           # nothing about Net in meta m
    assert "unknown name `yy`" in err.errors[1].message


def test_an_unclosed_brace_does_not_hide_the_next_functions():
    src = "fn a(x: f32) -> f32 {\n    return x\nfn b(x: f32) -> f32 { return x + zz }\n"
    err = error_of(src)
    assert [(e.line, e.message.split(":")[0]) for e in err.errors] == [(2, "unexpected end of file"),
                                                                        (3, "unknown name `zz`")]
    assert "never closed" in err.errors[0].notes[0][0]


def test_show_ast_reports_every_syntax_error(capsys, tmp_path):
    path = tmp_path / "two.meta"
    path.write_text("fn a(x: f32) -> f32 { return x +* 2 }\nfn b(x: f32) -> f32 { return x ** 2 }\n")
    assert main(["show", str(path), "--stage", "ast"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:33" in err and f"{path}:2:33" in err


# ---- 8. empty programs ----------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "declares nothing"),
    ("# just a comment\n\n", "declares nothing"),
    ("params P { w: f32[2] = zeros }\n", "declares no fn or meta function"),
])
def test_programs_without_functions_are_errors(tmp_path, capsys, text, message):
    path = tmp_path / "empty.meta"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: error: {path} {message}" in err
    assert "hint:" in err
    with pytest.raises(MetaccError, match=message):
        metacc.compile(str(path), cache_dir=tmp_path / "cache")


# ---- 9. what compile() takes for a path ---------------------------------------------------------

def test_compile_of_a_missing_path_names_it(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(MetaccError) as info:
        metacc.compile("examples/nope", cache_dir=cache)
    assert "cannot read examples/nope: no such file" in info.value.message
    assert ".meta" in info.value.hint
    with pytest.raises(MetaccError) as info:
        metacc.compile(str(ROOT / "examples" / "sinusoid_maml"), cache_dir=cache)
    assert "did you mean" in info.value.hint and "sinusoid_maml.meta" in info.value.hint
    with pytest.raises(MetaccError, match="it is a directory"):
        metacc.compile(str(ROOT / "examples"), cache_dir=cache)


def test_compile_still_takes_program_text_and_paths(tmp_path):
    cache = tmp_path / "cache"
    m = metacc.compile("fn f(x: f32) -> f32 { return x * x }", cache_dir=cache)
    assert m.f.fn.name == "f"
    m = metacc.compile(MAML, cache_dir=cache)
    assert m.maml.is_meta


# ---- 10. tracebacks show the user's frames ------------------------------------------------------

USER_SCRIPT = """\
import metacc
import metacc.frontend

def build_my_model():
    return metacc.compile("fn f(x: f32) -> f32 {{ return exx(x) }}", cache_dir={cache!r})

build_my_model()
"""


def _run_user_script(tmp_path, full: bool):
    script = tmp_path / "my_script.py"
    script.write_text(USER_SCRIPT.format(cache=str(tmp_path / "cache")))
    env = {k: v for k, v in os.environ.items() if k != "METACC_FULL_TRACEBACK"}
    if full:
        env["METACC_FULL_TRACEBACK"] = "1"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    return proc.stderr


def test_an_uncaught_error_shows_the_user_frames_and_the_message(tmp_path):
    import metacc.runtime
    err = _run_user_script(tmp_path, full=False)
    frames = [line for line in err.splitlines() if line.lstrip().startswith("File ")]
    assert frames and all("my_script.py" in f for f in frames), frames
    assert any("build_my_model" in f for f in frames)
    assert "<string>:1:30: error: unknown function `exx`" in err
    assert "METACC_FULL_TRACEBACK=1" in err
    for package in (metacc, metacc.runtime):
        assert os.path.dirname(package.__file__) not in err


def test_the_environment_variable_gives_the_full_traceback(tmp_path):
    err = _run_user_script(tmp_path, full=True)
    assert os.path.join("metacc", "frontend") in err and "to_program.py" in err
    assert "unknown function `exx`" in err
    assert "internal frames are hidden" not in err


def test_frames_of_code_metacc_generates_are_hidden_too():
    """A dataclass's __init__ (runtime.optim.Adam) has no file: it is recognised by its module."""
    try:
        metacc.runtime.optim.Adam(lr=-1.0)
    except MetaccError as err:
        frames = [(f.filename, f.name) for f in __import__("traceback").extract_tb(err.__traceback__)]
    assert frames == [(__file__, "test_frames_of_code_metacc_generates_are_hidden_too")]


def test_errors_caught_in_python_keep_their_message_and_type():
    with pytest.raises(MetaccError) as info:
        metacc.compile("fn f(x: f32) -> f32 { return exx(x) }")
    assert info.value.line == 1 and "did you mean `exp`" in info.value.hint


def test_check_reports_the_derivative_problems_of_every_meta(tmp_path, capsys):
    bad = tmp_path / "cuts.meta"
    bad.write_text("params W { w: f64[3] = zeros }\ntask T { x: f64[3] }\n"
                   "meta m1(p: W, t: T) -> f64 { return sum(stop_gradient(p.w) * t.x) }\n"
                   "meta m2(p: W, t: T) -> f64 { return sum(t.x) }\n")
    # both compile and run forward, so check accepts them, warning about each
    assert main(["check", str(bad)]) == 0
    err = capsys.readouterr().err
    assert f"{bad}:3:6: warning:" in err and f"{bad}:4:6: warning:" in err


# ---- messages stay readable ---------------------------------------------------------------------

@pytest.mark.parametrize("char, name", [("\x00", "U+0000"), ("\u00a0", "U+00A0 (a no-break space)"),
                                        ("\u200b", "U+200B (a zero-width space)")])
def test_invisible_characters_are_named_by_code_point(char, name):
    err = error_of(f"fn f(x: f32) -> f32 {{ return x{char}+ 1.0 }}\n")
    assert f"unexpected character {name}" in err.message and (err.line, err.col) == (1, 31)
    assert "ordinary space" in err.hint


def test_a_byte_order_mark_is_not_part_of_the_program(tmp_path):
    path = tmp_path / "bom.meta"
    path.write_bytes(b"\xef\xbb\xbffn f(x: f32) -> f32 { return x }\n")
    assert "f" in metacc.frontend.load(path).functions


def test_excerpts_of_very_long_lines_are_a_window_around_the_column():
    src = "fn f(x: f32) -> f32 { y = x" + " + x" * 60 + " + zz" + " + x" * 60 + "  return y }\n"
    err = error_of(src)
    text, caret = err.span.excerpt().splitlines()
    assert len(text) < 140 and text.strip().startswith("...") and text.endswith("...")
    assert text[caret.index("^"):caret.index("^") + 2] == "zz" and caret.count("^") == 2


def test_checkpoint_snapshot_schedules_nest_a_bounded_number_of_levels():
    # fuzz case s0-10713: snapshots=2 over 2^31 - 1 steps nests 29 recomputation loops
    # (seconds of transforms per check on an idle machine, more than a 20-block Python function)
    from metacc.frontend.loops import MAX_CHECKPOINT_LEVELS, snapshot_levels
    err = error_of(_ckpt(2 ** 31 - 1, "@checkpoint(snapshots=2)"))
    assert "29 levels" in err.message and (err.line, err.col) == (4, 35)
    assert "snapshots=6" in err.hint and "every=" in err.hint
    assert snapshot_levels(2 ** 31 - 1, 6) <= MAX_CHECKPOINT_LEVELS < snapshot_levels(2 ** 31 - 1, 5)
    assert snapshot_levels(4096, 2) == MAX_CHECKPOINT_LEVELS       # the deepest accepted with 2
    load_source(_ckpt(4096, "@checkpoint(snapshots=2)"))
    load_source(_ckpt(2 ** 31 - 1, "@checkpoint(every=1000)"))     # one level whatever K
