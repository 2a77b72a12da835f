"""Outlining: the loop nests of a task kernel become functions compiled once and shared.

Numba's build time grows faster than the kernel: its data-flow analyses (reaching
definitions, liveness, SSA) cost about blocks x variables, and a Conv4 MAML
meta-gradient has 288 loop nests and some 1,400 locals in one function. Built as
one function it took minutes; its first 300 lines alone took 6 s, 600 lines 13 s,
1,200 lines 45 s. Most of its nests also repeat: the four blocks' batch norms,
the inner loop's and the query's, differ only in their sizes and buffers.

So each loop nest of the kernel (a `for i0 in ...:` statement that only reads and
writes buffers, does arithmetic and calls the pure scalar helpers) is taken out:

    def nest_9c1e...(a0, a0_n, n0, n1, n2, n3, s0):      # a0: float32 buffer
        a0 = carray(a0, a0_n)
        for i0 in range(n0):
            t0 = (ld(a0, n1 + i0 * n2) - ld(a0, n3 + i0)) * s0
            ...

with every buffer, offset, size, scalar and integer literal (but 0 and 1) a
parameter and every local renamed in order of appearance, so that nests that
differ only in those are one text, one hash, one function. It is compiled once
(a C-ABI cfunc; metacc.runtime.nests caches it by that hash, shared by every
kernel and program that has it) and the kernel calls it by address:

    nest_9c1e...(ws_f32, conv2d_2, 16, 48, div_2, mean_2)   # writes sub_7

A nest whose locals outlive it (a running total read after the loop) stays in the
kernel, as does one that reads a name whose type is not known here.
"""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

from metacc.backend.wrap import wrap_source

# what a nest may call: the element access, NumPy's scalar functions, the backend's
# pure scalar helpers (metacc.backend.helpers) and a few builtins
PURE_HELPERS = frozenset({
    "ld", "st", "sigmoid_f64", "sigmoid_f32", "softplus_f64", "softplus_f32", "mix", "fold",
    "uniform53", "uniform_f64", "uniform_f32", "normal_f64", "normal_f32"})
BUILTINS = frozenset({"range", "min", "max", "abs", "int", "float", "bool"})
KEEP = PURE_HELPERS | BUILTINS | {"np"}
_INDEX = re.compile(r"i\d+$")


@dataclass(frozen=True)
class Nest:
    """One outlined loop nest: its parameter kinds and its source (a `def`)."""
    name: str                  # nest_<hash of kinds and text>
    kinds: tuple[str, ...]     # per parameter: "a:f32" a buffer, "i" an int64, "s:f32" a scalar
    source: str


PLACEHOLDER = "nest_" + "X" * 20      # as long as a name, so that the text folds the same


def nest_name(kinds: tuple[str, ...], body: str) -> str:
    """The name that is the hash of a nest: its parameter kinds and its text with the
    name left out (the text names the function PLACEHOLDER)."""
    h = hashlib.sha256((" ".join(kinds) + "\n" + body).encode()).hexdigest()
    return f"nest_{h[:20]}"


_walked: dict[int, list[ast.AST]] = {}      # loop -> its nodes, during one outline()


def _walk(loop: ast.For) -> list[ast.AST]:
    """ast.walk(loop), walked once: each loop is looked through by several of the tests
    below, and Conv4's 288 loops made the walks most of outline's time."""
    nodes = _walked.get(id(loop))
    if nodes is None:
        nodes = _walked[id(loop)] = list(ast.walk(loop))
    return nodes


def outline(src: str, kinds: dict[str, str]) -> tuple[str, list[Nest]]:
    """The task kernel `src` (one unwrapped `def`) with its loop nests replaced by calls,
    and the nests, each once. kinds: what the caller knows of the kernel's names,
    "a:<dtype>" (a 1-D buffer) or "s:<dtype>" (a scalar local); ints are inferred."""
    try:
        return _outline(src, kinds)
    finally:
        _walked.clear()


def _outline(src: str, kinds: dict[str, str]) -> tuple[str, list[Nest]]:
    tree = ast.parse(src)
    fn = tree.body[-1]
    assert isinstance(fn, ast.FunctionDef)
    known = dict(kinds)
    for name in _ints(fn, known):
        known.setdefault(name, "i")
    uses: dict[str, int] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            uses[node.id] = uses.get(node.id, 0) + 1
    loops = list(_candidates(fn))
    # a name a loop assigns is its own local when every use of it anywhere is inside a loop
    # that assigns it too: a scan body emitted twice (a checkpointed sweep recomputes the
    # forward one) repeats its locals' names in both copies
    local_uses: dict[str, int] = {}
    for loop, _ in loops:
        stored, inside = _names(loop)
        for name in stored:
            local_uses[name] = local_uses.get(name, 0) + inside[name]
    own = {name for name, n in local_uses.items() if uses.get(name, 0) == n}
    lines = src.split("\n")
    nests: dict[str, Nest] = {}
    edits: list[tuple[int, int, list[str]]] = []       # (first line, last line, replacement), 0-based
    for loop, before in loops:
        acc = _accumulator(loop, before, own)
        made = _nest(loop, lines, known, own | {acc[0]} if acc else own, acc)
        if made is None:
            continue
        nest, call = made
        nests.setdefault(nest.name, nest)
        first = before.lineno if acc else loop.lineno
        edits.append((first - 1, loop.end_lineno - 1, [" " * loop.col_offset + call]))
    for first, last, new in sorted(edits, reverse=True):
        lines[first:last + 1] = new
    return "\n".join(lines), list(nests.values())


# ---- which names are ints ----------------------------------------------------------

def _ints(fn: ast.FunctionDef, known: dict[str, str]) -> set[str]:
    """Names only ever assigned integer expressions (offsets, sizes, counters) or bound
    by `for ... in range(...)`; the kernel's integer arguments are in `known` as "i",
    and names `known` as something else are not ints."""
    ints = {n for n, k in known.items() if k == "i"}
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    assigned.setdefault(t.id, []).append(node.value)
                elif isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for te, ve in zip(t.elts, node.value.elts):
                        if isinstance(te, ast.Name):
                            assigned.setdefault(te.id, []).append(ve)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            assigned.setdefault(node.target.id, []).append(node)
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            rng = node.iter
            is_range = isinstance(rng, ast.Call) and isinstance(rng.func, ast.Name) and rng.func.id == "range"
            assigned.setdefault(node.target.id, []).append(ast.Constant(0) if is_range else rng)
    # the greatest fixed point: carries swapped between two offsets (`a, b = b, a`) are
    # ints because each is, so start from "every assigned name is" and strike out
    ints |= {n for n in assigned if n not in known}
    changed = True
    while changed:
        changed = False
        for name, values in assigned.items():
            if name in ints and name not in known and not all(_is_int(v, ints) for v in values):
                ints.discard(name)
                changed = True
    return ints


def _is_int(e: ast.AST, ints: set[str]) -> bool:
    if isinstance(e, ast.Constant):
        return type(e.value) is int
    if isinstance(e, ast.Name):
        return e.id in ints
    if isinstance(e, ast.BinOp):
        return isinstance(e.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)) \
            and _is_int(e.left, ints) and _is_int(e.right, ints)
    if isinstance(e, ast.UnaryOp):
        return isinstance(e.op, ast.USub) and _is_int(e.operand, ints)
    if isinstance(e, ast.AugAssign):
        return isinstance(e.op, (ast.Add, ast.Sub, ast.Mult)) and _is_int(e.value, ints)
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ("min", "max"):
        return all(_is_int(a, ints) for a in e.args)
    return False


# ---- which loops are nests ---------------------------------------------------------

def _candidates(fn: ast.FunctionDef):
    """(loop, the statement before it) for every `for iN in ...` loop not inside another
    one: the nests of the body and of the scans' bodies (scan loops count with other names
    and are looked into)."""
    def visit(body):
        for j, s in enumerate(body):
            if isinstance(s, ast.For) and isinstance(s.target, ast.Name) and _INDEX.match(s.target.id):
                yield s, body[j - 1] if j else None
            elif isinstance(s, (ast.For, ast.While, ast.If)):
                yield from visit(s.body)
                yield from visit(s.orelse)
    yield from visit(fn.body)


_NP_DTYPES = {"float64": "f64", "float32": "f32", "int64": "i64", "uint64": "key"}


def _accumulator(loop: ast.For, before, own: set[str]) -> tuple[str, ast.Assign, str] | None:
    """(name, its initialisation, dtype) when the loop's one value read after it is a
    running total started on the line right before it (`acc = np.float64(0)`, a sum or a
    maximum): the nest then starts it itself and returns it. Its dtype is the starting
    value's, which the whole total keeps: the back end writes float32 code with float32
    constants only (literals.py), and a float32 total with any float64 in its loop stays."""
    stored, _ = _names(loop)
    out = stored - own
    if len(out) != 1 or not isinstance(before, ast.Assign) or before.end_lineno != loop.lineno - 1:
        return None
    (name,) = out
    if len(before.targets) != 1 or not (isinstance(before.targets[0], ast.Name) and before.targets[0].id == name):
        return None
    init = before.value
    if isinstance(init, ast.Call) and _np_attr(init.func) and init.func.attr in _NP_DTYPES \
            and len(init.args) == 1 and isinstance(init.args[0], ast.Constant):
        dt = _NP_DTYPES[init.func.attr]
    elif isinstance(init, ast.Constant) and type(init.value) in (int, float):
        dt = "f64" if isinstance(init.value, float) else "i64"
    elif _np_attr(init) and init.attr == "inf" or isinstance(init, ast.UnaryOp) and _np_attr(init.operand) \
            and init.operand.attr == "inf":
        dt = "f64"
    else:
        return None
    if dt == "f32" and any(isinstance(n, ast.Constant) and isinstance(n.value, float)
                           or _np_attr(n) and n.attr == "float64" for n in _walk(loop)):
        return None
    return name, before, dt


def _names(loop: ast.For) -> tuple[set[str], dict[str, int]]:
    """The names a loop assigns (its indices aside) and how often each name occurs in it."""
    stored, inside = set(), {}
    for n in _walk(loop):
        if isinstance(n, ast.Name):
            inside[n.id] = inside.get(n.id, 0) + 1
            if isinstance(n.ctx, ast.Store) and not _INDEX.match(n.id):
                stored.add(n.id)
    return stored, inside


def _nest(loop: ast.For, lines: list[str], known: dict[str, str], own: set[str], acc=None):
    """(the Nest, the call that replaces the loop), or None when the loop must stay.
    acc: a running total the nest starts and returns (_accumulator)."""
    names = [n for n in _walk(loop) if isinstance(n, ast.Name)]
    stored, _inside = _names(loop)
    if acc is not None:
        names += [n for n in ast.walk(acc[1]) if isinstance(n, ast.Name)]
        stored.add(acc[0])
    # its locals must be its own: a name assigned here and read elsewhere carries a value out
    if not stored <= own:
        return None
    for node in _walk(loop):
        if isinstance(node, (ast.While, ast.Break, ast.Continue, ast.Return, ast.Lambda, ast.Subscript,
                             ast.Attribute)) and not _np_attr(node):
            return None
        if isinstance(node, ast.Call):
            f = node.func
            if not ((isinstance(f, ast.Name) and f.id in PURE_HELPERS | BUILTINS) or _np_attr(f)) \
                    or node.keywords:
                return None
    # the parameters, in order of first appearance in the text
    literals = [c for c in _walk(loop) if _literal(c)]
    if acc is not None:
        literals += [c for c in ast.walk(acc[1]) if _literal(c)]
    order = sorted(names + literals, key=lambda n: (n.lineno, n.col_offset))
    params: dict[object, str] = {}
    kinds: list[str] = []
    args: list[str] = []
    rename: dict[tuple[int, int], tuple[int, str]] = {}    # (line, col) -> (end col, new text)
    locals_: dict[str, str] = {}
    for node in order:
        if isinstance(node, ast.Constant):
            key = ("lit", node.value)
            if key not in params:
                params[key] = f"n{len(params)}"
                kinds.append("i")
                args.append(str(node.value))
            new = params[key]
        else:
            name = node.id
            if name in KEEP or _INDEX.match(name):
                continue
            if name in stored:
                new = locals_.setdefault(name, f"t{len(locals_)}")
            else:
                kind = known.get(name)
                if kind is None:
                    return None
                key = ("name", name)
                if key not in params:
                    params[key] = (f"a{len(params)}" if kind.startswith("a:") else
                                   f"s{len(params)}" if kind.startswith("s:") else f"n{len(params)}")
                    kinds.append(kind)
                    args.append(name)
                new = params[key]
        rename[(node.lineno, node.col_offset)] = (node.end_col_offset, new)
    text = _rewrite(lines, loop, rename, acc[1].lineno if acc else loop.lineno)
    if acc is not None:
        text.append(f"return {locals_[acc[0]]}")
        kinds.insert(0, f"r:{acc[2]}")
    pnames = [params[k] for k in params]
    pkinds = kinds[1:] if acc is not None else kinds
    header = ", ".join(p for p, k in zip(pnames, pkinds) for p in ((p, f"{p}_n") if k.startswith("a:") else (p,)))
    body = [f"def {PLACEHOLDER}({header}):"]
    body += [f"    {p} = carray({p}, {p}_n)" for p, k in zip(pnames, pkinds) if k.startswith("a:")]
    body += ["    " + ln for ln in text]
    # folded as the module will be (metacc.backend.wrap), so the text hashed is the text shown
    source = wrap_source("\n".join(body)) + "\n"
    name = nest_name(tuple(kinds), source)
    writes = _writes(loop)
    note = f"   # writes {', '.join(writes)}" if writes else ""
    call = f"{name}({', '.join(args)}){note}"
    return Nest(name, tuple(kinds), source.replace(f"def {PLACEHOLDER}(", f"def {name}(", 1)), \
        f"{acc[0]} = {call}" if acc is not None else call


def _np_attr(node) -> bool:
    """`np.something` (NumPy's scalar functions and dtypes, `np.inf`)."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"


def _literal(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value not in (0, 1)


def _rewrite(lines: list[str], loop: ast.For, rename: dict, first: int) -> list[str]:
    """The loop's lines (from line `first`), dedented, with each renamed token replaced
    (right to left)."""
    out = []
    for ln in range(first, loop.end_lineno + 1):
        text = lines[ln - 1]
        for (l, c), (end, new) in sorted(rename.items(), key=lambda kv: -kv[0][1]):
            if l == ln:
                text = text[:c] + new + text[end:]
        out.append(text[loop.col_offset:])
    return out


def _writes(loop: ast.For) -> list[str]:
    """The buffers a nest stores into, by the offset name that starts each st() index."""
    out: list[str] = []
    for node in _walk(loop):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "st":
            idx = node.args[1]
            while isinstance(idx, ast.BinOp):
                idx = idx.left
            if isinstance(idx, ast.Name) and not _INDEX.match(idx.id) and idx.id not in out:
                out.append(idx.id)
    return out
