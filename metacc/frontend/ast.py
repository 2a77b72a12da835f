"""The abstract syntax tree of a .meta program.

Frozen dataclasses built by `metacc.frontend.to_ast` from lark's parse tree.
Every node has the `Span` it came from, so every later error can point at
source text. The tree is syntax only: names are not resolved and nothing is
typed here (that is `metacc.frontend.to_program`'s job).
"""
from __future__ import annotations

from dataclasses import dataclass

from metacc.errors import Span


# ---- types and declarations -------------------------------------------------

@dataclass(frozen=True, slots=True)
class DimExpr:
    value: int | str             # a size or a symbol such as `n`
    span: Span


@dataclass(frozen=True, slots=True)
class TypeExpr:
    name: str                    # f32, f64, i64, bool, key, int, or a group / task name
    dims: tuple[DimExpr, ...] | None   # None: no brackets (a scalar, or a named type)
    span: Span


@dataclass(frozen=True, slots=True)
class InitExpr:
    name: str                    # he_normal, normal, const, ...
    args: tuple[float, ...]
    has_parens: bool
    span: Span


@dataclass(frozen=True, slots=True)
class ParamField:
    name: str
    type: TypeExpr
    init: InitExpr | None
    span: Span


@dataclass(frozen=True, slots=True)
class ParamsDecl:
    name: str
    fields: tuple[ParamField, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class TaskField:
    """A leaf (`x: f32[k, 1]`) when `type` is set, else a record of `children`."""
    name: str
    type: TypeExpr | None
    children: tuple["TaskField", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class TaskDecl:
    name: str
    fields: tuple[TaskField, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: TypeExpr
    default: "Num | None"
    span: Span


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One named result of a tuple result: `loss: f32` in `-> (loss: f32, acc: f32)`."""
    name: str
    type: TypeExpr
    span: Span


@dataclass(frozen=True, slots=True)
class TupleType:
    """`-> (loss: f32, acc: f32)`: the first result is the one differentiated."""
    items: tuple[ResultItem, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class FnDecl:
    kind: str                    # 'fn' or 'meta'
    name: str
    params: tuple[Param, ...]
    result: TypeExpr | TupleType
    body: tuple["Stmt", ...]
    span: Span                   # the whole declaration
    name_span: Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The root: every declaration of one .meta source, in order."""
    decls: tuple[ParamsDecl | TaskDecl | FnDecl, ...]


# ---- expressions ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    span: Span

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class FieldAccess:
    obj: "Expr"
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class SliceExpr:
    start: "Expr | None"
    stop: "Expr | None"
    step: "Expr | None"
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    obj: "Expr"
    subscripts: tuple["Expr | SliceExpr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    value: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...]
    span: Span
    func_span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str                      # add sub mul div pow matmul lt le gt ge eq ne and or
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str                      # neg or not
    operand: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class SolverSpec:
    name: str                    # sgd, cg
    kwargs: tuple[Keyword, ...]
    args: tuple["Expr", ...]     # positional arguments are an error, kept to report them
    span: Span


@dataclass(frozen=True, slots=True)
class Argmin:
    var: str                     # the bound variable `p`
    var_span: Span
    init: "Expr"                 # where the solver starts (`theta`)
    objective: "Expr"
    solver: SolverSpec
    implicit: SolverSpec | None
    span: Span


@dataclass(frozen=True, slots=True)
class TupleExpr:
    """`return a, b` (parens False); `(a, b)` anywhere is parsed too (parens True), to be
    rejected with a hint: tuples are only results and destructuring targets."""
    items: tuple["Expr", ...]
    span: Span
    parens: bool


Expr = Num | Bool | Name | FieldAccess | Index | Call | BinOp | UnaryOp | ListExpr | Argmin | TupleExpr


# ---- statements ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Assign:
    target: str
    value: Expr
    span: Span
    target_span: Span


@dataclass(frozen=True, slots=True)
class Destructure:
    """`a, b = g(...)`: the results of a call of a function with a tuple result."""
    targets: tuple[str, ...]
    value: Expr
    span: Span
    target_spans: tuple[Span, ...]
    comma_span: Span             # the first comma (where a destructured single value is reported)


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Annotation:
    name: str                    # first_order, truncate, checkpoint
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Repeat:
    count: Num | Name
    annotations: tuple[Annotation, ...]
    body: tuple["Stmt", ...]
    span: Span                   # the `repeat K @...` header
    index: str | None = None     # `repeat K as k`: the step index, an i64 scalar in the body
    index_span: Span | None = None


Stmt = Assign | Destructure | Return | Repeat


def assigned_names(stmts) -> list[str]:
    """Names assigned anywhere in stmts (nested repeats included), in first-assignment order."""
    out: list[str] = []
    for s in stmts:
        names = [s.target] if isinstance(s, Assign) else list(s.targets) if isinstance(s, Destructure) \
            else assigned_names(s.body) if isinstance(s, Repeat) else []
        out += [n for n in names if n not in out]
    return out
