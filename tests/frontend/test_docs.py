"""docs/language.md covers what the grammar and the builtin table accept."""
from __future__ import annotations

import re

from metacc.frontend.lowering import BUILTINS
from metacc.frontend.declarations import INITS
from metacc.frontend.loops import ANNOTATIONS
from metacc.frontend.parse import parser
from tests.frontend.helpers import ROOT

DOC = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")


def test_every_builtin_is_documented():
    missing = [name for name in BUILTINS if not re.search(rf"`{name}[(`]|\b{name}\b", DOC)]
    assert not missing


def test_every_annotation_and_initialiser_is_documented():
    assert all(f"@{a}" in DOC for a in ANNOTATIONS)
    assert all(f"`{i}" in DOC for i in INITS)


def test_every_keyword_of_the_grammar_is_listed_as_reserved():
    keywords = {t.pattern.value for t in parser().terminals
                if t.pattern.type == "str" and t.pattern.value.isidentifier()}
    reserved_line = next(line for line in DOC.splitlines() if "Reserved words" in line)
    listed = set(re.findall(r"[a-z_]+", DOC[DOC.index(reserved_line):].split("\n\n")[0])) - {"reserved", "words"}
    assert keywords <= listed, keywords - listed
