"""lark parse tree -> AST (metacc.frontend.ast).

One method per named rule of grammar/meta.lark. Rules that the grammar
inlines (`?rule`) never arrive here. Positions come from lark's
`propagate_positions`, turned into `Span`s over the source.
"""
from __future__ import annotations

from lark import Token, Transformer, v_args

from metacc.errors import MetaccError, Source, Span
from metacc.frontend import ast as A

_BINOPS = ("or_", "and_", "lt", "le", "gt", "ge", "eq", "ne", "add", "sub", "mul", "div", "matmul", "pow")


# whole-number literals stay within what compile-time arithmetic folds (metacc.frontend.arith)
_INT_LIMIT = 2 ** 62


def _number(tok: Token, span: Span) -> A.Num:
    text = str(tok)
    if any(c in text for c in ".eE"):
        value = float(text)
        if value == float("inf"):
            raise MetaccError(f"the number {text} is too large for any float type", span,
                              hint="the largest f64 is about 1.8e308, the largest f32 about 3.4e38")
        if value == 0.0 and any(c in "123456789" for c in text.lower().split("e")[0]):
            raise MetaccError(f"the number {text} is too small for any float type: it would be 0", span,
                              hint="the smallest positive f64 is about 4.9e-324; write 0.0 if zero is meant")
        return A.Num(value, span)
    if len(text.lstrip("0")) > 19 or int(text) > _INT_LIMIT:   # length first: int() of 10^6 digits is slow
        raise MetaccError(f"the whole number {text[:30]}{'...' if len(text) > 30 else ''} is too large", span,
                          hint="whole numbers are at most 2^62 (about 4.6e18); write a float such as 1e20 "
                               "if a float is meant")
    return A.Num(int(text), span)


@v_args(meta=True)
class ToAst(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    # -- spans --
    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 1, 1)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.source, tok.line, tok.column, tok.end_line, tok.end_column)

    # -- declarations --
    def start(self, meta, items):
        return A.SourceFile(tuple(items))

    def params_decl(self, meta, items):
        name, *fields = items
        return A.ParamsDecl(str(name), tuple(fields), self._span(meta))

    def param_field(self, meta, items):
        name, typ, *init = items
        return A.ParamField(str(name), typ, init[0] if init else None, self._span(meta))

    def init(self, meta, items):
        name, *args = items
        has_parens = meta.end_column > name.end_column or meta.end_line > name.end_line
        return A.InitExpr(str(name), tuple(a.value for a in args), has_parens, self._span(meta))

    def task_decl(self, meta, items):
        name, *fields = items
        return A.TaskDecl(str(name), tuple(fields), self._span(meta))

    def task_leaf(self, meta, items):
        name, typ = items
        return A.TaskField(str(name), typ, (), self._span(meta))

    def task_record(self, meta, items):
        name, *children = items
        return A.TaskField(str(name), None, tuple(children), self._span(meta))

    def _fn(self, kind, meta, items):
        name = items[0]
        rest = items[1:]
        params = rest.pop(0) if rest and isinstance(rest[0], tuple) else ()
        result, body = rest
        return A.FnDecl(kind, str(name), params, result, body, self._span(meta), self._tspan(name))

    def fn_decl(self, meta, items):
        return self._fn("fn", meta, items)

    def meta_decl(self, meta, items):
        return self._fn("meta", meta, items)

    def result_tuple(self, meta, items):
        return A.TupleType(tuple(items), self._span(meta))

    def result_item(self, meta, items):
        name, typ = items
        return A.ResultItem(str(name), typ, self._span(meta))

    def arg_list(self, meta, items):
        return tuple(items)

    def arg(self, meta, items):
        name, typ, *default = items
        return A.Param(str(name), typ, default[0] if default else None, self._span(meta))

    def type(self, meta, items):
        name, *dims = items
        span = self._span(meta)
        return A.TypeExpr(str(name), tuple(dims) if dims else None, span)

    def dim_int(self, meta, items):
        (tok,) = items
        num = _number(tok, self._tspan(tok))
        if not num.is_int:
            raise MetaccError(f"a dimension must be a whole number, not {tok}", num.span,
                              expected="an integer size or a symbol such as n", found=str(tok))
        return A.DimExpr(num.value, num.span)

    def dim_sym(self, meta, items):
        (tok,) = items
        return A.DimExpr(str(tok), self._tspan(tok))

    def pos_number(self, meta, items):
        (tok,) = items
        return _number(tok, self._span(meta))

    def neg_number(self, meta, items):
        (tok,) = items
        num = _number(tok, self._span(meta))
        return A.Num(-num.value, num.span)

    # -- statements --
    def block(self, meta, items):
        return tuple(items)

    def assign(self, meta, items):
        name, value = items
        return A.Assign(str(name), value, self._span(meta), self._tspan(name))

    def destructure(self, meta, items):
        *names, value = items
        spans = tuple(self._tspan(n) for n in names)
        return A.Destructure(tuple(str(n) for n in names), value, self._span(meta), spans,
                             self._comma_after(names[0]))

    def _comma_after(self, tok: Token) -> Span:
        """The span of the first `,` after tok (lark drops anonymous tokens from the tree)."""
        line, col = tok.end_line, tok.end_column
        while line <= len(self.source.text.splitlines()):
            at = self.source.line(line).find(",", col - 1)
            if at >= 0:
                return Span(self.source, line, at + 1, line, at + 2)
            line, col = line + 1, 1
        return self._tspan(tok)

    def return_stmt(self, meta, items):
        if len(items) == 1:
            return A.Return(items[0], self._span(meta))
        first, last = items[0].span, items[-1].span
        values = A.TupleExpr(tuple(items), Span(self.source, first.line, first.col, last.end_line, last.end_col),
                             parens=False)
        return A.Return(values, self._span(meta))

    def tuple(self, meta, items):
        return A.TupleExpr(tuple(items), self._span(meta), parens=True)

    def repeat_stmt(self, meta, items):
        count, *rest = items
        index = rest.pop(0) if rest and isinstance(rest[0], Token) else None
        *annotations, body = rest
        # the header ends where the body's '{' begins: point errors there, not at the whole loop
        last = annotations[-1].span if annotations else self._tspan(index) if index is not None else count.span
        header = Span(self.source, meta.line, meta.column, last.end_line, last.end_col)
        return A.Repeat(count, tuple(annotations), body, header,
                        str(index) if index is not None else None,
                        self._tspan(index) if index is not None else None)

    def count_int(self, meta, items):
        (tok,) = items
        return _number(tok, self._tspan(tok))

    def count_name(self, meta, items):
        (tok,) = items
        return A.Name(str(tok), self._tspan(tok))

    def annotation(self, meta, items):
        name, *rest = items
        args, kwargs = rest[0] if rest else ((), ())
        return A.Annotation(str(name), args, kwargs, self._span(meta))

    # -- expressions --
    def number(self, meta, items):
        (tok,) = items
        return _number(tok, self._span(meta))

    def true(self, meta, items):
        return A.Bool(True, self._span(meta))

    def false(self, meta, items):
        return A.Bool(False, self._span(meta))

    def name(self, meta, items):
        (tok,) = items
        return A.Name(str(tok), self._span(meta))

    def call(self, meta, items):
        name, *rest = items
        args, kwargs = rest[0] if rest else ((), ())
        return A.Call(str(name), args, kwargs, self._span(meta), self._tspan(name))

    def call_args(self, meta, items):
        args = tuple(a for a in items if not isinstance(a, A.Keyword))
        kwargs = tuple(a for a in items if isinstance(a, A.Keyword))
        return args, kwargs

    def keyword(self, meta, items):
        name, value = items
        return A.Keyword(str(name), value, self._span(meta))

    def list(self, meta, items):
        return A.ListExpr(tuple(items), self._span(meta))

    def field(self, meta, items):
        obj, name = items
        return A.FieldAccess(obj, str(name), self._span(meta))

    def index(self, meta, items):
        obj, *subs = items
        return A.Index(obj, tuple(subs), self._span(meta))

    def slice(self, meta, items):
        parts = {k: v for k, v in items}
        return A.SliceExpr(parts.get("lo"), parts.get("hi"), parts.get("step"), self._span(meta))

    def slice_lo(self, meta, items):
        return ("lo", items[0])

    def slice_hi(self, meta, items):
        return ("hi", items[0])

    def slice_step(self, meta, items):
        return ("step", items[0])

    def neg(self, meta, items):
        (x,) = items
        return A.UnaryOp("neg", x, self._span(meta))

    def not_(self, meta, items):
        (x,) = items
        return A.UnaryOp("not", x, self._span(meta))

    def argmin(self, meta, items):
        var, init, objective, solver, *implicit = items
        return A.Argmin(str(var), self._tspan(var), init, objective, solver,
                        implicit[0] if implicit else None, self._span(meta))

    def solver(self, meta, items):
        name, *rest = items
        args, kwargs = rest[0] if rest else ((), ())
        return A.SolverSpec(str(name), kwargs, args, self._span(meta))


def _binop(op):
    def method(self, meta, items):
        left, right = items
        return A.BinOp(op.rstrip("_"), left, right, self._span(meta))
    return v_args(meta=True)(method)


for _op in _BINOPS:
    setattr(ToAst, _op, _binop(_op))
