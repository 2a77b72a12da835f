"""Parsing: .meta text -> AST, with syntax errors as MetaccErrors.

The grammar is grammar/meta.lark, shipped as package data of `metacc.grammar`
and compiled once per process into an LALR(1) parser.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput, VisitError

from metacc.errors import MetaccError, Source, Span
from metacc.frontend import ast as A
from metacc.frontend.syntax_errors import describe_syntax_error
from metacc.frontend.to_ast import ToAst


def grammar_text() -> str:
    return resources.files("metacc.grammar").joinpath("meta.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse_tree(text: str):
    """The raw lark tree (raises lark's exceptions; used to classify syntax errors)."""
    return parser().parse(text)


# How deeply the parse tree may nest. Everything after the parser (the AST builder, lowering)
# recurses once or twice per level, so an unbounded chain (`x ^ 1 ^ 1 ^ ...` 500 times, or
# `x + x + ...` thousands of times) would exhaust Python's stack somewhere inside metacc. No
# hand-written program comes near this; the message says how to split what does.
MAX_DEPTH = 200


def _too_deep(tree, source: Source) -> MetaccError | None:
    """The first place where the tree nests more than MAX_DEPTH levels (walked without recursion)."""
    stack = [(tree, 1, None)]
    while stack:
        node, depth, outer = stack.pop()
        if not isinstance(node, Tree):
            continue
        # the outermost expression on the path: where the too-long chain or nesting starts
        if outer is None and node.data not in _NOT_EXPRESSIONS:
            outer = node
        if depth > MAX_DEPTH:
            span = _span_of(outer if outer is not None else node, source)
            return MetaccError(f"this is nested too deeply: more than {MAX_DEPTH} levels of operators, calls or "
                               "loops inside one another", span,
                               hint="split it into several assignments (a long chain such as a + b + c + ... "
                                    "nests one level per operator)")
        stack.extend((child, depth + 1, outer) for child in node.children)
    return None


# rules above the expressions: the location of a too-deep expression is its outermost expression node
_NOT_EXPRESSIONS = {"start", "params_decl", "task_decl", "fn_decl", "meta_decl", "block", "assign",
                    "return_stmt", "repeat_stmt", "arg_list", "arg", "type", "annotation", "call_args"}


def _span_of(tree, source: Source) -> Span | None:
    meta = getattr(tree, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return None
    return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


def parse(source: Source) -> A.Module:
    try:
        tree = parse_tree(source.text)
    except UnexpectedInput as err:
        raise describe_syntax_error(err, source, parser()) from None
    deep = _too_deep(tree, source)
    if deep is not None:
        raise deep
    try:
        return ToAst(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, MetaccError):
            raise err.orig_exc from None
        if isinstance(err.orig_exc, RecursionError):
            # only reachable when the caller already stands deep in Python's stack
            raise MetaccError("this is nested too deeply to compile", _span_of(err.obj, source),
                              hint="split it into several assignments") from None
        raise
