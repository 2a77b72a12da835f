"""Parsing: .meta text -> AST, with syntax errors as MetaccErrors.

The grammar is grammar/meta.lark, shipped as package data of `metacc.grammar`
and compiled once per process into an LALR(1) parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput, VisitError

from metacc.errors import MetaccError, MetaccErrors, Source, Span
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


def _deepest(tree, stop_after: int | None = None):
    """(depth, node) of the deepest place in the tree, walked without recursion; the node is the
    outermost expression on the path there (where a too-long chain or nesting starts). With
    stop_after, the walk ends at the first place deeper than that."""
    stack = [(tree, 1, None)]
    best = (0, tree)
    while stack:
        node, depth, outer = stack.pop()
        if not isinstance(node, Tree):
            continue
        if outer is None and node.data not in _NOT_EXPRESSIONS:
            outer = node
        if depth > best[0]:
            best = (depth, outer if outer is not None else node)
            if stop_after is not None and depth > stop_after:
                break
        stack.extend((child, depth + 1, outer) for child in node.children)
    return best


def _too_deep(tree, source: Source, limit: int | None = MAX_DEPTH) -> MetaccError | None:
    """The error for a tree nesting deeper than `limit` (None: for its deepest place, whatever its depth)."""
    depth, node = _deepest(tree, limit)
    if limit is not None and depth <= limit:
        return None
    return MetaccError(f"this is nested too deeply: more than {min(depth - 1, MAX_DEPTH)} levels of operators, "
                       "calls or loops inside one another", _span_of(node, source),
                       hint="split it into several assignments (a long chain such as a + b + c + ... "
                            "nests one level per operator)")


# rules above the expressions: the location of a too-deep expression is its outermost expression node
_NOT_EXPRESSIONS = {"start", "params_decl", "task_decl", "fn_decl", "meta_decl", "block", "assign",
                    "destructure", "return_stmt", "result_tuple", "result_item", "repeat_stmt", "arg_list",
                    "arg", "type", "annotation", "call_args"}


def _span_of(tree, source: Source) -> Span | None:
    meta = getattr(tree, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return None
    return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


def _parse_text(source: Source, text: str) -> A.SourceFile:
    """Parse `text` (the source, or one declaration of it padded to its own lines) into an AST whose
    spans are in `source`; a syntax error is a MetaccError."""
    try:
        tree = parse_tree(text)
    except UnexpectedInput as err:
        # the error is described in the text parsed (its unclosed brackets), located in the file
        raise describe_syntax_error(err, source if text is source.text else Source(source.name, text),
                                    parser()) from None
    deep = _too_deep(tree, source)
    if deep is not None:
        raise deep
    try:
        return ToAst(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, MetaccError):
            raise err.orig_exc from None
        if isinstance(err.orig_exc, RecursionError):
            raise _too_deep(tree, source, limit=None) from None
        raise
    except RecursionError:
        # only reachable when the caller already stands deep in Python's stack: the deepest
        # place is the likely culprit
        raise _too_deep(tree, source, limit=None) from None


# where a declaration starts: its keyword and name at the beginning of a line
_DECL_START = re.compile(r"^[ \t]*(params|task|fn|meta)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


@dataclass
class Parsed:
    source_file: A.SourceFile         # every declaration that parsed
    errors: list[MetaccError]         # one per declaration that did not
    broken: dict[str, str]            # name -> kind (params, task, fn, meta) of each of those


def parse_all(source: Source) -> Parsed:
    """Parse, and after a syntax error go on declaration by declaration, so that one run reports
    the mistakes of every declaration (docs/language.md, errors). The rest of the checker skips
    uses of a declaration that did not parse, quietly."""
    try:
        return Parsed(_parse_text(source, source.text), [], {})
    except MetaccError as err:
        whole = err
    text = source.text
    starts = [m.start() for m in _DECL_START.finditer(text)]
    if not starts:
        raise whole
    bounds = ([(0, starts[0])] if text[:starts[0]].strip() else []) + list(zip(starts, starts[1:] + [len(text)]))
    decls, errors, broken = [], [], {}
    for lo, hi in bounds:
        # padded with the newlines before it, the piece keeps its line and column numbers
        piece = "\n" * text.count("\n", 0, lo) + text[lo:hi]
        try:
            decls.extend(_parse_text(source, piece).decls)
        except MetaccError as err:
            errors.append(err)
            m = _DECL_START.match(text, lo)
            if m is not None:
                broken[m.group(2)] = m.group(1)
    if not errors:
        raise whole         # the pieces parse alone but not together: report what the whole parse found
    return Parsed(A.SourceFile(tuple(decls)), errors, broken)


def parse(source: Source) -> A.SourceFile:
    """The AST of a source; its syntax errors, all of them, as a MetaccError (MetaccErrors)."""
    parsed = parse_all(source)
    if parsed.errors:
        errors = sorted(parsed.errors, key=lambda e: (e.line or 0, e.col or 0))
        raise errors[0] if len(errors) == 1 else MetaccErrors(errors)
    return parsed.source_file
