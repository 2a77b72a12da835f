"""Parsing: .meta text -> AST, with syntax errors as MetaccErrors.

The grammar is grammar/meta.lark, shipped as package data of `metacc.grammar`
and compiled once per process into an LALR(1) parser.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark
from lark.exceptions import UnexpectedInput, VisitError

from metacc.errors import MetaccError, Source
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


def parse(source: Source) -> A.Module:
    try:
        tree = parse_tree(source.text)
    except UnexpectedInput as err:
        raise describe_syntax_error(err, source, parser()) from None
    try:
        return ToAst(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, MetaccError):
            raise err.orig_exc from None
        raise
