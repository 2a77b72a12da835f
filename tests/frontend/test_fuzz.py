"""Mutated example programs never crash the front end: only MetaccError escapes."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacc.errors import MetaccError
from metacc.frontend import load_source
from tests.frontend.helpers import EXAMPLES

SOURCES = [p.read_text(encoding="utf-8") for p in EXAMPLES]
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|->|[<>=!]=|\S")
VOCAB = sorted({t for s in SOURCES for t in TOKEN.findall(s)} |
               {"$", "(", ")", "{", "}", "[", "]", "@", ",", ":", ";", "-1", "0", "1e9", "grad", "repeat", "return",
                "argmin", "from", "by", "implicit", "true", "not", "x", "p", "Net", "f64", "key", "int"})


def _tokens(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(text)]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 3))):
        spans = _tokens(text)
        op = draw(st.sampled_from(["delete", "swap", "insert", "replace", "line"]))
        i = draw(st.integers(0, len(spans) - 1))
        a, b = spans[i]
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(st.sampled_from(VOCAB)) + " " + text[a:]
        elif op == "replace":
            text = text[:a] + draw(st.sampled_from(VOCAB)) + text[b:]
        elif op == "swap":
            c, d = spans[draw(st.integers(0, len(spans) - 1))]
            if d <= a:
                text = text[:c] + text[a:b] + text[d:a] + text[c:d] + text[b:]
            elif b <= c:
                text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
        else:
            lines = text.splitlines()
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_only_metacc_errors_escape(text):
    try:
        load_source(text, "mutant.meta")
    except MetaccError as err:
        rendered = err.render()
        assert rendered.startswith(("mutant.meta:", "error:"))
