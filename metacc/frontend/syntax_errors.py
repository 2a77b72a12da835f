"""Named syntax errors: lark's parse failures -> messages a person can act on.

A syntax error is classified by where the LALR parser stood (its state) and
what it saw (the token). Each named case below lists small programs that fail
in the same way; they are parsed once to learn their (state, token) keys, the
idea of lark's `match_examples` with a cached, exact lookup. Unnamed failures
still get a location, the token found and the tokens that would have fitted.
"""
from __future__ import annotations

from dataclasses import dataclass

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from metacc.errors import MetaccError, Source, Span


@dataclass(frozen=True)
class Case:
    message: str
    hint: str | None
    examples: tuple[str, ...]
    match: str = "token"      # 'value': same state and token text; 'token': same state and token kind;
                              # 'state': any token in that parser state


_FN = "fn f(x: f32) -> f32 {{ {} }}"

CASES: dict[str, Case] = {
    "top_level": Case(
        "expected a declaration (params, task, fn or meta)",
        "statements belong inside the body of a fn or meta",
        ("x = 1", "fn f() -> f32 { return 1 }\nreturn 2", "params P { w: f32 }\n}"), match="state"),
    "missing_arrow": Case(
        "expected `->` and the result type after the arguments",
        "declare what the function returns: `fn name(x: f32[n]) -> f32 { ... }`",
        ("fn f(x: f32) f32 { return x }", "fn f(x: f32) { return x }",
         "meta m(x: f32) f32 { return x }", "meta m(x: f32) { return x }"), match="state"),
    "arg_without_type": Case(
        "an argument needs a type",
        "write `x: f32[n, 1]`, `p: Net`, `alpha: f32 = 0.01` or `K: int = 5`",
        ("fn f(x) -> f32 { return 1 }", "fn f(x, y: f32) -> f32 { return 1 }",
         "meta m(x) -> f32 { return 1 }"), match="state"),
    "arg_default_expr": Case(
        "an argument's default must be a number",
        "write a literal such as `alpha: f32 = 0.01`",
        ("fn f(x: f32 = y) -> f32 { return 1 }", "fn f(x: f32 = (1)) -> f32 { return 1 }"), match="state"),
    "call_statement": Case(
        "a call cannot stand alone as a statement",
        "metacc functions have no side effects: assign the value, e.g. `y = f(x)`",
        (_FN.format("f(x) return x"),), match="value"),
    "unnamed_results": Case(
        "each result of a tuple result needs a name",
        "write `-> (loss: f32, acc: f32)`: the names label the outputs (the first is the one differentiated)",
        ("fn f(x: f32) -> (f32, f32) { return x, x }", "meta m(x: f32) -> (f32) { return x }"), match="state"),
    "compare_statement": Case(
        "`==` compares two values; assignment is a single `=`",
        None,
        (_FN.format("a == x return x"),), match="value"),
    "field_assign": Case(
        "cannot assign to a field",
        "parameter groups are values: build a new one, e.g. `p = p - alpha * g`",
        (_FN.format("p.w1 = x return x"),), match="value"),
    "index_assign": Case(
        "cannot assign to an element or a slice",
        "arrays are values: build a new one with where(...), concat(...) or arithmetic",
        (_FN.format("a[0] = x return x"),), match="value"),
    "statement": Case(
        "expected `=`: a statement is `name = expr`, `return expr` or `repeat K { ... }`",
        "is an operator missing between two expressions?",
        (_FN.format("y return x"), _FN.format("y x = 1 return x"), _FN.format("y + 1 return x")),
        match="state"),
    "power_star": Case(
        "`**` is not an operator",
        "write powers with ^, e.g. `x ^ 2`",
        (_FN.format("return x ** 2"),), match="value"),
    "empty_return": Case(
        "`return` needs a value",
        "every fn and meta returns exactly one value: `return expr`",
        (_FN.format("return"),), match="token"),
    "repeat_count": Case(
        "`repeat` needs a trip count",
        "write `repeat 5 { ... }`, or `repeat K { ... }` with an argument `K: int = 5`",
        (_FN.format("repeat { x = 1 } return x"), _FN.format("repeat (3) { x = 1 } return x"),
         _FN.format("repeat -1 { x = 1 } return x")),
        match="state"),
    "annotation_at": Case(
        "expected an @annotation or the loop body `{ ... }` after the trip count",
        "annotations start with @ and the body is a block: `repeat 5 @first_order { ... }`",
        (_FN.format("repeat 5 first_order { x = 1 } return x"),
         _FN.format("repeat 5 @first_order truncate(2) { x = 1 } return x"),
         _FN.format("repeat 5 @truncate(2) first_order { x = 1 } return x")), match="token"),
    "fn_body": Case(
        "expected the body `{ ... }` of the function",
        None,
        ("fn f(x: f32) -> f32 return x", "meta m(x: f32) -> f32 return x"), match="token"),
    "argmin_from": Case(
        "expected `from`: argmin is written `argmin(p from init: objective)`",
        "`p` names the variable being optimised and `init` is where the solver starts",
        (_FN.format("y = argmin(p x: p) by sgd(lr=0.1, steps=1) return y"),
         _FN.format("y = argmin(p: p) by sgd(lr=0.1, steps=1) return y")), match="state"),
    "argmin_by": Case(
        "argmin needs a solver: `... by sgd(lr=0.01, steps=100)`",
        "optionally follow it with `implicit cg(iters=20, tol=1e-8)` to differentiate the optimum implicitly",
        (_FN.format("y = argmin(p from x: p) return y"),
         _FN.format("y = argmin(p from x: p) implicit cg(iters=1) return y")), match="state"),
    "params_field_type": Case(
        "a params field needs a type",
        "write `w1: f32[1, 40] = he_normal`",
        ("params P { w = zeros }", "params P { w }", "params P { w: f32 = zeros  b = zeros }"), match="state"),
    "task_field_type": Case(
        "a task field needs a type or a record of fields",
        "write `x: f32[k, 1]` or `support: (x: f32[k, 1], y: f32[k, 1])`",
        ("task T { x }", "task T { x = 1 }", "task T { s: (x) }"), match="state"),
    "dims": Case(
        "expected a dimension: a whole number or a symbol such as `n`",
        "a tensor type is written `f32[n, 1]`",
        ("fn f(x: f32[]) -> f32 { return 1 }", "fn f(x: f32[n,]) -> f32 { return 1 }",
         "fn f(x: f32[-1]) -> f32 { return 1 }"), match="state"),
}

# words from other languages, and what metacc says instead
FOREIGN = {
    "def": "functions are declared with `fn` (or `meta` for a meta-objective)",
    "function": "functions are declared with `fn` (or `meta` for a meta-objective)",
    "for": "loops are written `repeat K { ... }`",
    "while": "loops have a static trip count: `repeat K { ... }`",
    "if": "there is no `if`: choose values elementwise with where(cond, a, b)",
    "else": "there is no `if`/`else`: choose values elementwise with where(cond, a, b)",
    "let": "assign with `name = expr`",
    "var": "assign with `name = expr`",
    "import": "a .meta program is one self-contained file",
    "lambda": "declare a helper with `fn name(args) -> type { ... }`",
}

CHARS = {
    "&": "write logical and as `and`",
    "|": "write logical or as `or`",
    "!": "write negation as `not` (and inequality as `!=`)",
    '"': "metacc has no strings",
    "'": "metacc has no strings; for a transpose write transpose(x)",
    "%": "there is no remainder operator",
    "$": None,
}

_EXPR_START = {"NAME", "NUMBER", "LPAR", "LSQB", "MINUS", "TRUE", "FALSE", "ARGMIN", "NOT"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "AT", "CIRCUMFLEX", "LESSTHAN", "MORETHAN",
              "AND", "OR", "DOT", "LSQB", "LPAR"}


def _keys(err: UnexpectedInput) -> tuple[tuple, tuple, tuple]:
    state = err.state.position if getattr(err, "state", None) is not None else None
    if isinstance(err, UnexpectedToken):
        kind, text = err.token.type, str(err.token)
    else:
        kind, text = "<char>", getattr(err, "char", "")
    return (state, kind, text), (state, kind), (state,)


class _Table:
    """The named cases, keyed by how their examples fail (built on first use)."""

    def __init__(self, parser: Lark):
        self.by_key: dict[tuple, str] = {}
        for label, case in CASES.items():
            for text in case.examples:
                try:
                    parser.parse(text)
                except UnexpectedInput as err:
                    value_key, token_key, state_key = _keys(err)
                    key = {"value": value_key, "token": token_key, "state": state_key}[case.match]
                    self.by_key.setdefault(key, label)
                else:
                    raise AssertionError(f"syntax example for {label!r} parses: {text!r}")

    def classify(self, err: UnexpectedInput) -> str | None:
        for key in _keys(err):
            if key in self.by_key:
                return self.by_key[key]
        return None


_tables: dict[int, _Table] = {}


def table(parser: Lark) -> _Table:
    if id(parser) not in _tables:
        _tables[id(parser)] = _Table(parser)
    return _tables[id(parser)]


def _terminal_text(parser: Lark, name: str) -> str:
    special = {"NAME": "a name", "NUMBER": "a number", "$END": "end of file"}
    if name in special:
        return special[name]
    term = next((t for t in parser.terminals if t.name == name), None)
    if term is not None and term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


def expected_text(parser: Lark, names) -> str:
    names = set(names)
    parts = []
    if len(names & _EXPR_START) >= 4:
        names -= _EXPR_START
        parts.append("an expression")
    if len(names & _OPERATORS) >= 4:
        names -= _OPERATORS | {"__ANON_1", "__ANON_2", "__ANON_3", "__ANON_4"}
        parts.append("an operator")
    parts += sorted(_terminal_text(parser, n) for n in names)
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    return parts[0] if parts else "nothing"


def _found_text(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            return "end of file"
        if tok.type == "NAME":
            return f"name `{tok}`"
        if tok.type == "NUMBER":
            return f"number {tok}"
        return f"`{tok}`"
    return f"character {_char_text(getattr(err, 'char', '?'))}"


# characters that look like nothing (or like a space) in an editor: named by their code point
_INVISIBLE = {"\ufeff": "a byte-order mark", "\u00a0": "a no-break space", "\u200b": "a zero-width space",
              "\u2009": "a thin space", "\u3000": "an ideographic space", "\t": "a tab"}


def _char_text(char: str) -> str:
    if len(char) == 1 and (char in _INVISIBLE or not char.isprintable() or (char.isspace() and char != " ")):
        name = _INVISIBLE.get(char, "an invisible character")
        return f"U+{ord(char):04X} ({name})"
    return f"`{char}`"


def _unclosed(source: Source) -> Span | None:
    """The innermost bracket left open at the end of the text (comments skipped)."""
    stack: list[tuple[str, int, int]] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for lineno, line in enumerate(source.text.splitlines(), 1):
        for col, ch in enumerate(line.split("#", 1)[0], 1):
            if ch in "([{":
                stack.append((ch, lineno, col))
            elif ch in pairs and stack and stack[-1][0] == pairs[ch]:
                stack.pop()
    if not stack:
        return None
    _, lineno, col = stack[-1]
    return Span(source, lineno, col, lineno, col + 1)


def _error_span(err: UnexpectedInput, source: Source) -> Span:
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        lines = source.text.splitlines() or [""]
        # point just past the last non-blank text: that is where something is missing
        lineno = max((i for i, l in enumerate(lines, 1) if l.split("#", 1)[0].strip()), default=1)
        text = lines[lineno - 1].split("#", 1)[0].rstrip()
        return Span(source, lineno, len(text) + 1)
    line, col = err.line, err.column
    if isinstance(err, UnexpectedToken):
        prev = _previous_end(err)
        if prev is not None and prev[0] < line:
            # the token is on a later line: what is missing belongs right after the previous one
            return Span(source, prev[0], prev[1])
    width = len(str(err.token)) if isinstance(err, UnexpectedToken) else 1
    return Span(source, line, col, line, col + max(width, 1))


def _previous_end(err: UnexpectedToken) -> tuple[int, int] | None:
    """Where the last successfully parsed token or subtree ends (line, column after it)."""
    stack = getattr(err.state, "value_stack", None) or []
    if not stack:
        return None
    last = stack[-1]
    if hasattr(last, "end_line") and last.end_line is not None:
        return last.end_line, last.end_column
    meta = getattr(last, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.end_line, meta.end_column
    return None


def _foreign_word(err: UnexpectedInput):
    """A word from another language at (or just before) the error, e.g. `if x > 0`: its token."""
    tokens = []
    if isinstance(err, UnexpectedToken):
        tokens.append(err.token)
        stack = getattr(err.state, "value_stack", None) or []
        if stack and hasattr(stack[-1], "type"):
            tokens.append(stack[-1])
    return next((t for t in tokens if getattr(t, "type", None) == "NAME" and str(t) in FOREIGN), None)


def describe_syntax_error(err: UnexpectedInput, source: Source, parser: Lark) -> MetaccError:
    span = _error_span(err, source)
    found = _found_text(err)
    names = getattr(err, "accepts", None) or getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
    expected = expected_text(parser, names)
    label = table(parser).classify(err)
    foreign = _foreign_word(err)
    notes = []
    if isinstance(err, UnexpectedCharacters):
        char = getattr(err, "char", "")
        message = f"unexpected character {_char_text(char)}"
        hint = CHARS.get(char)
        if hint is None and _char_text(char).startswith("U+"):
            hint = "delete it or replace it with an ordinary space (it may come from copying text)"
        return MetaccError(message, span, expected=expected, found=found, hint=hint)
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        open_at = _unclosed(source)
        message = "unexpected end of file"
        hint = None
        if open_at is not None:
            ch = source.line(open_at.line)[open_at.col - 1]
            notes.append((f"this `{ch}` is never closed", open_at))
            hint = f"close the `{ch}` with `{dict(zip('([{', ')]}'))[ch]}`"
        return MetaccError(message, span, expected=expected, found=found, hint=hint, notes=notes)
    if foreign is not None:
        word = str(foreign)
        at = Span(source, foreign.line, foreign.column, foreign.end_line, foreign.end_column)
        return MetaccError(f"`{word}` is not part of the .meta language", at, hint=FOREIGN[word])
    if label is not None:
        case = CASES[label]
        return MetaccError(case.message, span, expected=expected, found=found, hint=case.hint)
    return MetaccError(f"unexpected {found}", span, expected=expected, found=found)
