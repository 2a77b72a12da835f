"""Generators (b) and (c): token mutation and semantic mutation of seed programs.

Seeds are the example programs (examples/*.meta) and, for semantic mutation,
well-typed programs of the grammar generator. Token mutation knows only the
lexical structure: it deletes, inserts, replaces, swaps and duplicates tokens
and lines. Semantic mutation edits a program that checks in ways a checker must
judge: a different shape, dim or dtype, swapped or missing call arguments, a
wrong field name, trip counts 0/-1/huge, extreme literals, deep nesting,
unused parameters, self-calls, shadowing, annotations, duplicate declarations.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.meta"))
SOURCES = [p.read_text(encoding="utf-8") for p in EXAMPLES]

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|->|[<>=!]=|#[^\n]*|\S")
EXTRA = ["$", "(", ")", "{", "}", "[", "]", "@", ",", ":", ";", "-", "^", ".", "=", "->", "**", "'", '"', "\\",
         "-1", "0", "1e9", "1e999", "99999999999999999999", "grad", "repeat", "return", "argmin", "from", "by",
         "implicit", "true", "false", "not", "and", "or", "x", "p", "Net", "f64", "i64", "bool", "key", "int",
         "params", "task", "fn", "meta", "if", "def", "lambda", "\t", "\n", "#", "é", "\x00", "…"]
VOCAB = sorted({t for s in SOURCES for t in TOKEN.findall(s) if not t.startswith("#")} | set(EXTRA))


def spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(text)]


def token_mutant(rng: random.Random, text: str | None = None) -> str:
    text = text if text is not None else rng.choice(SOURCES)
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        sp = spans(text)
        if not sp:
            return text
        op = rng.choice(["delete", "insert", "replace", "replace", "swap", "dup", "line", "truncate"])
        a, b = sp[rng.randrange(len(sp))]
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "insert":
            text = text[:a] + rng.choice(VOCAB) + " " + text[a:]
        elif op == "replace":
            text = text[:a] + rng.choice(VOCAB) + text[b:]
        elif op == "swap":
            c, d = sp[rng.randrange(len(sp))]
            if d <= a:
                text = text[:c] + text[a:b] + text[d:a] + text[c:d] + text[b:]
            elif b <= c:
                text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
        elif op == "dup":
            j = min(len(sp) - 1, sp.index((a, b)) + rng.randint(0, 6))
            text = text[:a] + text[a:sp[j][1]] + " " + text[a:]
        elif op == "line":
            lines = text.splitlines()
            if lines:
                del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
        else:
            text = text[:a]
    return text


# ---- semantic mutation ---------------------------------------------------------------------

TYPE = re.compile(r"\b(f32|f64|i64|bool)\[([^\]]*)\]")
DTYPE = re.compile(r"(?<=: )(f32|f64|i64|bool|key|int)\b")
CALL = re.compile(r"\b([a-z_][A-Za-z0-9_]*)\(")
FIELD = re.compile(r"\b([a-z_][A-Za-z0-9_]*)\.([a-z_][A-Za-z0-9_]*)\b")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
INTARG = re.compile(r"\b([A-Za-z_]\w*): int = (\d+)")
REPEAT = re.compile(r"\brepeat (\w+)")
FNHEAD = re.compile(r"\b(fn|meta) (\w+)\(([^)]*)\)")
ASSIGN = re.compile(r"^(\s*)(\w+) = (.+)$", re.M)
RETURN = re.compile(r"^(\s*)return (.+)$", re.M)

EXTREME_INTS = ["0", "-1", "1", "2147483647", "2147483648", "99999999999999999999", "10 ^ 10", "2 ^ 62", "3 ^ 3 ^ 3"]
EXTREME_FLOATS = ["1e39", "1e999", "1e-400", "0.0", "-0.0", "1e308", "340282366920938463463374607431768211456",
                  "1e-45", "123456789.123456789"]


def _call_args(text: str, open_paren: int) -> tuple[list[tuple[int, int]], int] | None:
    """Spans of the top-level arguments of the call whose '(' is at open_paren, and the ')' index."""
    depth, start, out = 0, open_paren + 1, []
    for i in range(open_paren, len(text)):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                if text[start:i].strip():
                    out.append((start, i))
                return out, i
        elif ch == "," and depth == 1:
            out.append((start, i))
            start = i + 1
    return None


def _pick(rng, pattern: re.Pattern, text: str):
    ms = list(pattern.finditer(text))
    return rng.choice(ms) if ms else None


def _sub(text: str, a: int, b: int, new: str) -> str:
    return text[:a] + new + text[b:]


def m_shape(rng, text):
    m = _pick(rng, TYPE, text)
    if not m:
        return text
    dims = [d.strip() for d in m.group(2).split(",")]
    op = rng.random()
    i = rng.randrange(len(dims))
    if op < 0.35:
        dims[i] = rng.choice(["1", "2", "3", "7", "40", "41", "n", "k", "q", "zz", "0", "100000", "2147483648",
                              "99999999999999999999"])
    elif op < 0.55:
        del dims[i]
    elif op < 0.75:
        dims.insert(i, rng.choice(["1", "2", "n", "k"]))
    else:
        rng.shuffle(dims)
    new = f"{m.group(1)}[{', '.join(dims)}]" if dims else m.group(1)
    return _sub(text, m.start(), m.end(), new)


def m_dtype(rng, text):
    m = _pick(rng, DTYPE, text) if rng.random() < 0.5 else _pick(rng, TYPE, text)
    if not m:
        return text
    return _sub(text, m.start(1), m.end(1), rng.choice(["f32", "f64", "i64", "bool", "key", "int", "Net", "f16"]))


def _a_call(rng, text):
    calls = [m for m in CALL.finditer(text) if m.group(1) not in ("fn", "meta")]
    if not calls:
        return None
    m = rng.choice(calls)
    got = _call_args(text, m.end() - 1)
    return (m, *got) if got else None


def m_swap_args(rng, text):
    c = _a_call(rng, text)
    if not c or len(c[1]) < 2:
        return text
    _, args, _ = c
    i, j = rng.sample(range(len(args)), 2)
    (a1, b1), (a2, b2) = sorted([args[i], args[j]])
    return text[:a1] + text[a2:b2] + text[b1:a2] + text[a1:b1] + text[b2:]


def m_arity(rng, text):
    c = _a_call(rng, text)
    if not c:
        return text
    _, args, close = c
    if args and rng.random() < 0.5:
        a, b = rng.choice(args)
        # drop an argument and the comma after it (or before it, for the last one)
        if b < close:
            return text[:a] + text[b + 1:]
        return text[:a].rstrip().rstrip(",") + text[b:]
    extra = rng.choice(["x", "1", "p", "t", "axis=0", "keepdims=true", "dtype=f64", "theta", "0.5", "K=3", "zz=1"])
    return text[:close] + (", " if args else "") + extra + text[close:]


def m_field(rng, text):
    m = _pick(rng, FIELD, text)
    if not m:
        return text
    new = rng.choice(["w9", "support", "query", "x", "y", "b1", "w1", "lam", "zz", m.group(2) + "_", "shape",
                      "T", m.group(2).upper()])
    return _sub(text, m.start(2), m.end(2), new)


def m_count(rng, text):
    pick = rng.random()
    if pick < 0.4 and INTARG.search(text):
        m = _pick(rng, INTARG, text)
        return _sub(text, m.start(2), m.end(2), rng.choice(EXTREME_INTS[:6] + ["1000000"]))
    if pick < 0.7 and REPEAT.search(text):
        m = _pick(rng, REPEAT, text)
        return _sub(text, m.start(1), m.end(1), rng.choice(EXTREME_INTS + ["K + 1", "-K", "0.5", "true", "n", "k"]))
    return m_annotation(rng, text)


def m_annotation(rng, text):
    m = _pick(rng, REPEAT, text)
    if not m:
        return text
    n = rng.choice(["0", "1", "2", "-1", "K", "99999999999999999999", "2147483647", "1.5", "true", "k"])
    ann = rng.choice([f"@truncate({n})", f"@checkpoint(every={n})", f"@checkpoint(snapshots={n})", "@first_order",
                      "@checkpoint", "@checkpoint(every=2, snapshots=2)", "@truncate", "@first_order(1)",
                      f"@checkpoint({n})", f"@unknown({n})", "@truncate(K) @checkpoint(every=1)"])
    return _sub(text, m.end(), m.end(), " " + ann)


def m_literal(rng, text):
    m = _pick(rng, NUMBER, text)
    if not m:
        return text
    return _sub(text, m.start(), m.end(), rng.choice(EXTREME_FLOATS + EXTREME_INTS))


def m_nesting(rng, text):
    m = _pick(rng, RETURN, text)
    if not m:
        return text
    depth = rng.choice([5, 20, 50, 100, 200, 400])
    e = m.group(2)
    kind = rng.random()
    if kind < 0.3:
        new = "(" * depth + e + ")" * depth
    elif kind < 0.6:
        f = rng.choice(["relu", "stop_gradient", "tanh", "exp"])
        new = f"{f}(" * depth + e + ")" * depth
    elif kind < 0.8:
        new = e + " + 0.0" * depth
    elif kind < 0.9:
        new = "-" * min(depth, 100) + f"({e})"
    else:
        new = f"({e})" + " * 1.0" * depth
    return _sub(text, m.start(2), m.end(2), new)


def m_unused(rng, text):
    pick = rng.random()
    m = _pick(rng, FNHEAD, text)
    if pick < 0.5 and m:
        extra = rng.choice(["unused: f32", "u: f32[3, 3]", "u: f64 = 2.0", "u: int = 7", "u: key", "u: i64[m]",
                            "u: Net", "u: f32[zz]", "t2: Sinusoid"])
        sep = ", " if m.group(3).strip() else ""
        return _sub(text, m.end(3), m.end(3), sep + extra)
    if pick < 0.75:
        return text + rng.choice(["\nparams Unused { u: f32[2, 2] = he_normal }\n", "\ntask Unused { z: f32[m] }\n",
                                  "\nfn unused(x: f32) -> f32 { return x }\n", "\nparams Empty { }\n",
                                  "\ntask Empty { }\n"])
    a = _pick(rng, ASSIGN, text)
    if not a:
        return text
    return _sub(text, a.start(), a.start(), f"{a.group(1)}unused_{rng.randrange(99)} = {a.group(3)}\n")


def m_selfcall(rng, text):
    heads = list(FNHEAD.finditer(text))
    if not heads:
        return text
    h = rng.choice(heads)
    body_start = text.find("{", h.end())
    if body_start < 0:
        return text
    other = rng.choice(heads)
    n_args = len([a for a in h.group(3).split(",") if a.strip()])
    argnames = [a.split(":")[0].strip() for a in other.group(3).split(",") if a.strip()]
    call = f"{other.group(2)}({', '.join(argnames)})"
    if rng.random() < 0.3:
        call = f"{other.group(2)}({', '.join(['x'] * n_args)})"
    return _sub(text, body_start + 1, body_start + 1, f"\n    rec = {call}\n")


def m_shadow(rng, text):
    a = _pick(rng, ASSIGN, text)
    if not a:
        return text
    name = rng.choice(["n", "k", "q", "K", "relu", "grad", "mean", "f32", "Net", "Sinusoid", "theta", "t", "p",
                       "mlp", "mse", "true", "key", "eye", "alpha", "return", "zeros"])
    value = rng.choice([a.group(3), "1.0", "t", "theta", "zeros([3])", "eye(2)"])
    return _sub(text, a.start(), a.start(), f"{a.group(1)}{name} = {value}\n")


def m_grad(rng, text):
    m = re.search(r"grad\(", text)
    if not m:
        return text
    got = _call_args(text, m.end() - 1)
    if not got or len(got[0]) != 2:
        return text
    (a1, b1), (a2, b2) = got[0]
    wrt = rng.choice(["p.w1", "t.support.x", "2 * p", "theta", "alpha", "K", "t", "x", "(p)", "p - p", "zz",
                      "grad(mse(p, t.support.x, t.support.y), p)", "p.w1.w1"])
    if rng.random() < 0.3:
        return _sub(text, a1, b1, rng.choice(["p", "mlp(p, t.support.x)", "t.support.x", "1.0", "K",
                                              f"grad({text[a1:b1]}, {text[a2:b2].strip()})"]))
    return _sub(text, a2, b2, " " + wrt)


def m_duplicate(rng, text):
    blocks = re.split(r"\n(?=(?:params|task|fn|meta) )", text)
    if len(blocks) < 2:
        return text
    if rng.random() < 0.5:
        b = rng.choice(blocks[1:])
        return text + "\n" + b
    rng.shuffle(blocks)
    return "\n".join(blocks)


def m_return(rng, text):
    m = _pick(rng, RETURN, text)
    if not m:
        return text
    pick = rng.random()
    if pick < 0.4:
        return _sub(text, m.start(), m.end(), "")
    if pick < 0.7:
        return _sub(text, m.end(), m.end(), f"\n{m.group(1)}return {m.group(2)}")
    return _sub(text, m.start(2), m.end(2), rng.choice(["theta", "t", "p", "t.support", "1", "true", "x", "K",
                                                         "zeros_like(theta)", "grad"]))


def m_builtin(rng, text):
    calls = [m for m in CALL.finditer(text)]
    if not calls:
        return text
    m = rng.choice(calls)
    new = rng.choice(["sum", "mean", "softmax", "transpose", "reshape", "concat", "stack", "one_hot", "solve",
                      "cross_entropy", "argmax", "eye", "zeros", "full", "fold_in", "normal", "categorical", "sqnorm",
                      "dot", "where", "maximum", "grad", "straight_through", "i64", "f64", "log_softmax", "logsumexp",
                      "zeros_like", "step", "uniform", "undefined_fn"])
    return _sub(text, m.start(1), m.end(1), new)


SEMANTIC = [m_shape, m_shape, m_dtype, m_swap_args, m_arity, m_field, m_count, m_count, m_annotation, m_literal,
            m_nesting, m_unused, m_selfcall, m_shadow, m_grad, m_duplicate, m_return, m_builtin]


def semantic_mutant(rng: random.Random, seed_text: str) -> tuple[str, list[str]]:
    text = seed_text
    applied = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        m = rng.choice(SEMANTIC)
        text = m(rng, text)
        applied.append(m.__name__)
    return text, applied
