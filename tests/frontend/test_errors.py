"""Bad programs: every error has a message, an exact line:col and (mostly) a hint.

Each case is a program with one `$` marking where the error must point; the
`$` is removed before checking. Each program has exactly one mistake, so each
must produce exactly one error (no follow-on noise).
"""
from __future__ import annotations

import pytest

from metacc.errors import MetaccError, MetaccErrors
from metacc.frontend import load_source

PRELUDE = """\
params Net {
    w1: f32[1, 40] = he_normal   b1: f32[40] = zeros
    w2: f32[40, 40] = he_normal  b2: f32[40] = zeros
    w3: f32[40, 1] = he_normal   b3: f32[1] = zeros
}
params Other { a: f32[3] = zeros }
task Sinusoid { support: (x: f32[k, 1], y: f32[k, 1])  query: (x: f32[q, 1], y: f32[q, 1]) }
task Labels { x: f32[n, 4]  y: i64[n] }
fn mlp(p: Net, x: f32[n, 1]) -> f32[n, 1] {
    h = relu(x @ p.w1 + p.b1)
    h = relu(h @ p.w2 + p.b2)
    return h @ p.w3 + p.b3
}
fn mse(p: Net, x: f32[n, 1], y: f32[n, 1]) -> f32 { return mean((mlp(p, x) - y) ^ 2) }
"""


def meta(body: str, args: str = "") -> str:
    return PRELUDE + f"meta m(theta: Net, t: Sinusoid, alpha: f32 = 0.01{args}) -> f32 {{\n{body}\n}}\n"


def fn(body: str, sig: str = "x: f32[n, 1]", result: str = "f32") -> str:
    return PRELUDE + f"fn f({sig}) -> {result} {{\n{body}\n}}\n"


CASES = [
    # ---- syntax ----
    ("top_level_statement", "$x = 1\n", "expected a declaration", "statements belong inside"),
    ("power_star", fn("    return sum(x *$* 2)"), "`**` is not an operator", "write powers with ^"),
    ("missing_arrow", PRELUDE + "fn f(x: f32) $f32 { return x }\n", "expected `->`", "declare what the function"),
    ("arg_without_type", PRELUDE + "fn f(x$) -> f32 { return 1.0 }\n", "an argument needs a type", "x: f32[n, 1]"),
    ("tuple_assign", fn("    a$, b = x\n    return 1.0"), "tuple assignment is not supported", "one name per"),
    ("call_statement", fn("    mlp$(x)\n    return 1.0"), "cannot stand alone", "assign the value"),
    ("unclosed_brace", PRELUDE + "fn f(x: f32) -> f32 {\n    return x$\n", "unexpected end of file",
     "close the `{` with `}`"),
    ("double_ampersand", fn("    m = x > 0 $&& x < 1\n    return 1.0"), "unexpected character `&`",
     "write logical and as `and`"),
    ("foreign_if", fn("    $if x > 0 { return 1.0 }\n    return 1.0"), "`if` is not part of the .meta language",
     "where(cond, a, b)"),
    ("foreign_def", "$def f(x):\n    return x\n", "`def` is not part of the .meta language", "declared with `fn`"),
    ("repeat_without_count", meta("    p = theta\n    repeat $@first_order { p = p }\n    return 1.0"),
     "`repeat` needs a trip count", "repeat K { ... }"),
    ("annotation_without_at", meta("    p = theta\n    repeat 5 $first_order { p = p }\n    return 1.0"),
     "expected an @annotation or the loop body", "annotations start with @"),
    ("argmin_without_solver", meta("    q = argmin(p from theta: sqnorm(p))$\n    return 1.0"),
     "argmin needs a solver", "implicit cg"),
    ("field_assign", meta("    theta$.w1 = theta.w2\n    return 1.0"), "cannot assign to a field",
     "parameter groups are values"),
    ("params_field_without_type", "params P { w $= zeros }\n", "a params field needs a type", "w1: f32[1, 40]"),
    ("empty_dims", PRELUDE + "fn f(x: f32[$]) -> f32 { return 1.0 }\n", "expected a dimension",
     "a tensor type is written"),
    ("empty_return", fn("    return$\n"), "`return` needs a value", "every fn and meta returns"),
    ("fractional_dim", PRELUDE + "fn f(x: f32[$1.5]) -> f32 { return 1.0 }\n", "a dimension must be a whole number",
     None),
    # ---- declarations ----
    ("unknown_type", PRELUDE + "fn f(p: $Nte) -> f32 { return 1.0 }\n", "unknown type `Nte`",
     "did you mean `Net`"),
    ("declared_twice", PRELUDE + "$params Net { w: f32 = zeros }\n", "`Net` is declared twice", "one namespace"),
    ("symbolic_param_shape", "params P { w: f32[$n, 3] = zeros }\n", "needs a concrete shape",
     "parameters have fixed sizes"),
    ("broken_group_stays_quiet", "params P { w: f32[$n] = zeros }\ntask T { x: f32[2] }\n"
     "meta m(p: P, t: T) -> f32 { return sum(p.w) }\n", "needs a concrete shape", "parameters have fixed sizes"),
    ("broken_task_stays_quiet", "params P { w: f32[2] = zeros }\ntask T { x: $f31[2] }\n"
     "meta m(p: P, t: T) -> f32 { return sum(t.x) }\n", "unknown element type `f31`", "did you mean `f32`"),
    ("integer_params", "params P { w: $i64[3] = zeros }\n", "must be f32 or f64", "integer data belongs in a task"),
    ("unknown_initialiser", "params P { w: f32[3, 3] = $he_norma }\n", "unknown initialiser `he_norma`",
     "did you mean `he_normal`"),
    ("initialiser_arity", "params P { w: f32[3, 3] = $normal }\n", "normal takes 1 argument", "normal(std)"),
    ("he_normal_on_bias", "params P { b: f32[4] = $he_normal }\n", "needs a weight matrix", "usually start at zeros"),
    ("redefine_builtin", PRELUDE + "fn $relu(x: f32) -> f32 { return x }\n", "is a builtin", "choose another name"),
    ("int_without_default", meta("    return 1.0", ", $K: int"), "needs a default value", "compile-time constants"),
    ("default_of_array", PRELUDE + "fn f(x: f32[n] = $1.0) -> f32 { return 1.0 }\n", "cannot have the default",
     "defaults are numbers"),
    ("meta_result_not_scalar", PRELUDE + "meta m(p: Net, t: Sinusoid) -> $f32[3] { return zeros([3]) }\n",
     "must return a float scalar", "reduce the loss"),
    ("meta_without_task", PRELUDE + "meta $m(p: Net) -> f32 { return 1.0 }\n", "exactly one task argument",
     "declare the episode's data"),
    ("meta_without_params", PRELUDE + "meta $m(t: Sinusoid) -> f32 { return 1.0 }\n", "takes no params group",
     "meta-gradient is taken"),
    ("unbound_result_dim", PRELUDE + "fn f(x: f32[n]) -> $f32[m] { return x }\n",
     "result dimension `m` is not the dimension of any argument", "must appear in an argument"),
    # ---- names and calls ----
    ("unknown_name", meta("    return mse($thta, t.query.x, t.query.y)"), "unknown name `thta`",
     "did you mean `theta`?"),
    ("unknown_function", fn("    return sum($rleu(x))"), "unknown function `rleu`", "did you mean `relu`?"),
    ("unknown_field", meta("    return sum($theta.w4)"), "Net has no field `w4`", "did you mean"),
    ("unknown_task_field", meta("    return mse(theta, $t.suport.x, t.query.y)"), "has no field `suport`",
     "did you mean `support`?"),
    ("function_as_value", meta("    f = $mse\n    return 1.0"), "`mse` is a function, not a value", "call it"),
    ("arg_shape_mismatch", meta("    return mse(theta, $concat([t.query.x, t.query.x], axis=1), t.query.y)"),
     "argument `x` of mse must be f32[n, 1], not f32[q, 2]", "sizes in the signature"),
    ("dim_conflict", meta("    return mse(theta, t.support.x, $t.query.y)"),
     "dim `n` of mse is k from argument `x`, but argument `y` has q", "must agree in that dim"),
    ("missing_argument", meta("    return sum($mlp(theta))"), "missing the argument `x`", "mlp(p: Net, x:"),
    ("recursion", PRELUDE + "fn f(x: f32) -> f32 { return $f(x) }\n", "recursive call of f", "cannot call themselves"),
    ("builtin_keyword", fn("    return sum(sum(x, $axs=0))"), "sum has no argument `axs`", "did you mean `axis`"),
    # ---- shapes and types ----
    ("matmul_inner_dims", fn("    return sum($x @ Net_w2(x))", "x: f32[n, 1]").replace(
        "$x @ Net_w2(x)", "$x @ ones([40, 40])"), "inner dims", "check the order"),
    ("broadcast", meta("    h = relu(t.query.x @ theta.w1)\n    return sum($h + zeros([41]))"),
     "do not broadcast", "shapes broadcast from the right"),
    ("dtype_mix", fn("    return sum($x + f64(x))"), "different dtypes", "cast one operand"),
    ("int_meets_float_literal", meta("    return 1.0", "").replace("t: Sinusoid", "t: Labels").replace(
        "return 1.0", "l = $t.y * 0.5\n    return mse(theta, zeros([2, 1]), zeros([2, 1]))"),
     "cannot meet an i64 value", "cast the integer operand"),
    ("return_type", fn("    return $x", result="f32"), "f must return f32, but this is f32[n, 1]",
     "reduce it to a scalar"),
    ("transpose_vector", meta("    return sum($transpose(theta.b1))"), "needs a matrix", "reshape(x, [1, n])"),
    ("sum_of_group", meta("    return $sum(theta)"), "must be a tensor", "sqnorm(p)"),
    ("slice_symbolic_axis", fn("    return sum(x[$0:3])"), "can only be taken whole", "slice a fixed-size axis"),
    ("one_hot_of_floats", fn("    return sum($one_hot(x, 3))"), "must be an i64 tensor", "class labels are i64"),
    ("random_key", fn("    return sum($uniform(3, [2]))"), "must be a random key", "fold_in(rng, i)"),
    ("task_arithmetic", meta("    return sum($t + 1)"), "cannot take part in arithmetic", "use one of its fields"),
    # ---- parameter groups ----
    ("groups_with_other_fields", PRELUDE + "fn f(p: Net, o: Other) -> Net { return $p - o }\n",
     "Net and Other do not have the same fields", "need the same field names"),
    ("group_op_changes_shape", meta("    q = $theta * ones([3, 1, 1])\n    return 1.0"), "does not give a Net",
     "keep every field's type"),
    # ---- grad, repeat, argmin ----
    ("grad_of_vector", meta("    g = grad($mlp(theta, t.query.x), theta)\n    return 1.0"),
     "must be a float scalar", "reduce it first"),
    ("grad_wrt_expression", meta("    g = grad(mse(theta, t.query.x, t.query.y), $theta - 1)\n    return 1.0"),
     "must name a variable", "assign the value to a name first"),
    ("grad_wrt_constant", meta("    z = 2.0\n    g = grad(z * z, $z)\n    return 1.0"), "it is a constant",
     "gradients are taken with respect to"),
    ("grad_arity", meta("    g = $grad(mse(theta, t.query.x, t.query.y))\n    return 1.0"), "grad takes 2 arguments",
     "wrt names what to differentiate"),
    ("repeat_changes_nothing", meta("    $repeat 3 { y = 1.0 }\n    return 1.0"), "changes nothing outside",
     "carries the variables defined before it"),
    ("carried_type_changes", meta("    h = t.query.x\n    repeat 3 { h = $sum(h) }\n    return sum(h)"),
     "type changes from f32[q, 1] to f32", "keeps its type"),
    ("return_in_repeat", meta("    p = theta\n    repeat 3 { p = p  $return 1.0 }\n    return 1.0"),
     "`return` inside a repeat body", "return after the loop"),
    ("no_return", PRELUDE + "fn $f(x: f32) -> f32 { y = x }\n", "has no `return`", "end the body with"),
    ("statement_after_return", fn("    return 1.0\n    $y = x"), "never run", "must be the last statement"),
    ("unknown_annotation", meta("    p = theta\n    repeat 3 $@first_ordr { p = p }\n    return 1.0"),
     "unknown annotation @first_ordr", "did you mean `first_order`?"),
    ("first_order_and_truncate",
     meta("    p = theta\n    repeat 3 @first_order $@truncate(1) { p = p }\n    return 1.0"),
     "@first_order and @truncate together", "Keep one of them"),
    ("checkpoint_setting", meta("    p = theta\n    repeat 3 $@checkpoint(evry=2) { p = p }\n    return 1.0"),
     "@checkpoint takes one of every=c or snapshots=s", "every=c stores the carried values"),
    ("repeat_count_tensor", meta("    p = theta\n    repeat $alpha { p = p }\n    return 1.0"),
     "must be a compile-time whole number", "K: int = 5"),
    ("argmin_unknown_solver",
     meta("    q = argmin(p from theta: sqnorm(p)) by $adam(lr=0.1)\n    return 1.0"),
     "unknown solver `adam`", "sgd(lr=..., steps=...)"),
]


def _locate(marked: str) -> tuple[str, int, int]:
    assert marked.count("$") == 1, "each case marks exactly one position"
    i = marked.index("$")
    before = marked[:i]
    return marked.replace("$", "", 1), before.count("\n") + 1, i - (before.rfind("\n") + 1) + 1


def test_there_are_plenty_of_cases():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,marked,message,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_program(name, marked, message, hint):
    text, line, col = _locate(marked)
    with pytest.raises(MetaccError) as info:
        load_source(text, "bad.meta")
    errors = info.value.errors if isinstance(info.value, MetaccErrors) else [info.value]
    assert len(errors) == 1, "\n\n".join(e.render() for e in errors)
    err = errors[0]
    assert message in err.message, err.render()
    assert (err.line, err.col) == (line, col), err.render()
    if hint is None:
        assert err.hint is None, err.render()
    else:
        assert err.hint is not None and hint in err.hint, err.render()
    rendered = err.render()
    assert rendered.startswith(f"bad.meta:{line}:{col}: error: ")
    assert "^" in rendered.splitlines()[2]


def test_every_independent_error_is_reported_in_source_order():
    text = meta("    a = $rleu(t.query.x)\n    b = theta.w9\n    c = sum(t.query.x @ theta.w2)\n"
                "    return mse(theta, t.query.x, t.query.y)").replace("$", "")
    with pytest.raises(MetaccErrors) as info:
        load_source(text, "many.meta")
    errors = info.value.errors
    assert [e.message.split("`")[0] for e in errors] == ["unknown function ", "Net has no field ", "`@`: inner dims of "
                                                         .split("`")[0]]
    assert [e.line for e in errors] == sorted(e.line for e in errors)
    assert all(e.render() in str(info.value) for e in errors)


def test_an_error_in_a_callee_is_reported_once_not_at_every_call():
    text = PRELUDE + ("fn g(x: f32[n, 1]) -> f32 { return sum(x @ ones([2, 2])) }\n"
                      "meta m(theta: Net, t: Sinusoid) -> f32 {\n"
                      "    return g(t.support.x) + g(t.query.x) + mse(theta, t.query.x, t.query.y)\n}\n")
    with pytest.raises(MetaccError) as info:
        load_source(text, "callee.meta")
    assert not isinstance(info.value, MetaccErrors)
    assert "inner dims" in info.value.message and info.value.line == PRELUDE.count("\n") + 1


def test_shape_errors_name_both_operands_and_where_they_come_from():
    text = fn("    h = x @ ones([1, 40])\n    return sum(h + zeros([41]))")
    with pytest.raises(MetaccError) as info:
        load_source(text, "shapes.meta")
    err = info.value
    notes = [n for n, _ in err.notes]
    assert any("`h` is f32[n, 40]" in n for n in notes) and any("is f32[41]" in n for n in notes)
    assert err.found == "f32[n, 40] and f32[41]"
    h_note = next(span for n, span in err.notes if "`h`" in n)
    assert h_note.line == err.line - 1          # h was computed on the line before


def test_missing_file_is_a_user_error_with_a_hint(tmp_path):
    from metacc.frontend import load
    with pytest.raises(MetaccError) as info:
        load(tmp_path / "nope.meta")
    assert "no such file" in info.value.message and info.value.hint
    with pytest.raises(MetaccError) as info:
        load(tmp_path)
    assert "directory" in info.value.message


def test_absurdly_long_expressions_are_an_error_not_a_crash():
    text = "fn f(x: f32) -> f32 { return " + "x + " * 5000 + "x }"
    with pytest.raises(MetaccError) as info:
        load_source(text, "long.meta")
    assert "nested too deeply" in info.value.message and info.value.hint
