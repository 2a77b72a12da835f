"""The grammar: operator precedence, layout, the AST's shape, named syntax errors."""
from __future__ import annotations

import pytest

from metacc.errors import MetaccError, Source
from metacc.frontend import ast as A
from metacc.frontend.parse import grammar_text, parse, parser
from tests.frontend.helpers import ROOT


def sexpr(node) -> str:
    """A compact rendering of an expression tree, written here independently of the AST dump."""
    if isinstance(node, A.Num):
        return repr(node.value)
    if isinstance(node, A.Bool):
        return str(node.value).lower()
    if isinstance(node, A.Name):
        return node.id
    if isinstance(node, A.FieldAccess):
        return f"{sexpr(node.obj)}.{node.name}"
    if isinstance(node, A.BinOp):
        return f"({node.op} {sexpr(node.left)} {sexpr(node.right)})"
    if isinstance(node, A.UnaryOp):
        return f"({node.op} {sexpr(node.operand)})"
    if isinstance(node, A.Call):
        parts = [sexpr(a) for a in node.args] + [f"{k.name}={sexpr(k.value)}" for k in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, A.ListExpr):
        return "[" + ", ".join(sexpr(i) for i in node.items) + "]"
    if isinstance(node, A.SliceExpr):
        return ":".join("" if p is None else sexpr(p) for p in (node.start, node.stop, node.step))
    if isinstance(node, A.Index):
        return f"{sexpr(node.obj)}[{', '.join(sexpr(s) for s in node.subscripts)}]"
    raise AssertionError(node)


def expr(text: str):
    module = parse(Source("e.meta", f"fn f() -> f32 {{ return {text} }}"))
    return module.decls[0].body[0].value


@pytest.mark.parametrize("text,tree", [
    ("a + b * c", "(add a (mul b c))"),
    ("a - b - c", "(sub (sub a b) c)"),
    ("a / b / c", "(div (div a b) c)"),
    ("-x ^ 2", "(neg (pow x 2))"),
    ("a ^ b ^ c", "(pow a (pow b c))"),
    ("2 ^ -1", "(pow 2 (neg 1))"),
    ("a @ b * c", "(mul (matmul a b) c)"),
    ("-a @ b", "(matmul (neg a) b)"),
    ("not a < b and c or d", "(or (and (not (lt a b)) c) d)"),
    ("a + b >= c - d", "(ge (add a b) (sub c d))"),
    ("x == y != z" if False else "x != y", "(ne x y)"),
    ("p.w1 @ t.support.x", "(matmul p.w1 t.support.x)"),
    ("x[0:2, :, ::2, 1]", "x[0:2:, ::, ::2, 1]"),
    ("f(a, b=2)[0].w", "f(a, b=2)[0].w"),
    ("concat([a, b], axis=0)", "concat([a, b], axis=0)"),
    ("1e-8 + .5 + 3. + 2", "(add (add (add 1e-08 0.5) 3.0) 2)"),
    ("true or false", "(or true false)"),
])
def test_precedence_and_shape(text, tree):
    assert sexpr(expr(text)) == tree


def test_layout_is_free_with_comments_semicolons_and_optional_commas():
    text = """
    # a comment
    params P { a: f32 = zeros, b: f32[2] = ones   c: f32[2, 2] = normal(0.5) }   # trailing
    task T {
        s: (x: f32[n, 2],
            y: i64[n],)
    }
    fn f(p: P, x: f32[n, 2]) -> f32 { y = x; z = y
        return sum(z) }
    """
    module = parse(Source("l.meta", text))
    params, task, fn = module.decls
    assert [f.name for f in params.fields] == ["a", "b", "c"] and params.fields[2].init.args == (0.5,)
    assert [c.name for c in task.fields[0].children] == ["x", "y"]
    assert [type(s).__name__ for s in fn.body] == ["Assign", "Assign", "Return"]
    assert fn.body[1].span.line == 8 and fn.body[2].span.line == 9


def test_spans_cover_the_source_text():
    fn = parse(Source("s.meta", "fn f(x: f32) -> f32 {\n    return exp(x) + 1\n}")).decls[0]
    ret = fn.body[0].value
    assert (ret.span.line, ret.span.col, ret.span.end_col) == (2, 12, 22)
    assert (fn.name_span.line, fn.name_span.col) == (1, 4)


def test_repeat_annotations_parse_as_calls():
    fn = parse(Source("r.meta", "fn f(x: f32) -> f32 { repeat K @truncate(2) @checkpoint(every=10) { x = x } "
                                "return x }")).decls[0]
    rep = fn.body[0]
    assert isinstance(rep.count, A.Name) and rep.count.id == "K"
    assert [(a.name, len(a.args), [k.name for k in a.kwargs]) for a in rep.annotations] == \
        [("truncate", 1, []), ("checkpoint", 0, ["every"])]


def test_argmin_syntax():
    node = expr("argmin(p from theta: f(p) + 1) by sgd(lr=0.1, steps=3) implicit cg(iters=5)")
    assert isinstance(node, A.Argmin) and node.var == "p" and sexpr(node.init) == "theta"
    assert sexpr(node.objective) == "(add f(p) 1)"
    assert node.solver.name == "sgd" and [k.name for k in node.solver.kwargs] == ["lr", "steps"]
    assert node.implicit.name == "cg"


@pytest.mark.parametrize("text", ["a < b < c", "x ** 2", "f(,)", "[1, 2", "x.1"])
def test_malformed_expressions_are_syntax_errors(text):
    with pytest.raises(MetaccError):
        expr(text)


def test_the_grammar_ships_as_package_data():
    assert grammar_text() == (ROOT / "grammar" / "meta.lark").read_text(encoding="utf-8")


def test_every_named_syntax_case_is_recognised_by_its_own_examples():
    from lark.exceptions import UnexpectedInput
    from metacc.frontend.syntax_errors import CASES, table
    tab = table(parser())
    for label, case in CASES.items():
        for text in case.examples:
            with pytest.raises(UnexpectedInput) as info:
                parser().parse(text)
            assert tab.classify(info.value) == label, (label, text)
