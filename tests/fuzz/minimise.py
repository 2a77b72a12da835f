"""Shrink a crashing program while it keeps its crash class (greedy: lines, then tokens).

    python -m tests.fuzz.minimise out/fuzz/<class>/<case>.meta [--kernels]

Runs in-process, so use it on crashes, not on hangs.
"""
from __future__ import annotations

import argparse
import sys

from tests.fuzz.mutate import spans
from tests.fuzz.oracle import classify, evaluate


def crash_class(text: str, kernels: bool) -> str | None:
    res = evaluate(text, kernels)
    return classify(res, text) if res["outcome"] == "crash" else None


def minimise(text: str, kernels: bool = True) -> str:
    target = crash_class(text, kernels)
    if target is None:
        return text
    changed = True
    while changed:
        changed = False
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            cand = "\n".join(lines[:i] + lines[i + 1:])
            if crash_class(cand, kernels) == target:
                lines, text, changed = lines[:i] + lines[i + 1:], cand, True
            else:
                i += 1
        sp = spans(text)
        i = len(sp) - 1
        while i >= 0:
            a, b = sp[i]
            cand = text[:a] + text[b:]
            if crash_class(cand, kernels) == target:
                text, changed = cand, True
                sp = spans(text)
                i = min(i, len(sp)) - 1
            else:
                i -= 1
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--kernels", action="store_true")
    args = ap.parse_args(argv)
    text = open(args.file, encoding="utf-8").read()
    print(minimise(text, args.kernels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
