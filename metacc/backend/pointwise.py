"""Scalar expressions for every primitive that computes one element at a time.

Each rule maps one equation and the loop indices of its output element to a
Python expression for that element, reading operands through `read(j, idx)`
(operand j at index list idx). The fusion planner strings these expressions
together inside one loop nest, so a chain `relu(x @ w + b)` costs one pass over
memory after the matmul.

Families:
  ELEMENTWISE  operands read at the broadcast of the output index (these may
               read a value computed earlier in the same loop nest)
  INDEXED      transpose, slice, pad, concatenate, one_hot: operands read at a
               transformed index, so they must already be in memory
  GENERATORS   full, iota, eye, dim_size, rng_*: no array operands
"""
from __future__ import annotations

from typing import Callable

from metacc.backend.literals import NP_NAME, cast, lit
from metacc.ir.core import Eqn
from metacc.ir.prims import BINARY, COMPARE, UNARY
from metacc.ir.types import Dim

Read = Callable[[int, list[str]], str]

ELEMENTWISE = frozenset(UNARY) | frozenset(BINARY) | frozenset(COMPARE) | {
    "ipow", "logical_and", "logical_or", "logical_not", "select", "cast", "stop_gradient",
    "straight_through", "broadcast_to", "key_fold"}
INDEXED = frozenset({"transpose", "slice", "pad", "concatenate", "one_hot"})
GENERATORS = frozenset({"full", "iota", "eye", "dim_size", "rng_uniform", "rng_normal"})
POINTWISE = ELEMENTWISE | INDEXED | GENERATORS


def bcast_index(in_shape: tuple[Dim, ...], out_shape: tuple[Dim, ...], idx: list[str]) -> list[str]:
    """Index of an operand broadcast (NumPy rules, decided statically) to out_shape at idx."""
    lead = len(out_shape) - len(in_shape)
    return ["0" if d == 1 and out_shape[lead + a] != 1 else idx[lead + a] for a, d in enumerate(in_shape)]


def _np(fn: str) -> Callable[[str, str], str]:
    return lambda x, dt: f"np.{fn}({x})"


_UNARY: dict[str, Callable[[str, str], str]] = {
    "neg": lambda x, dt: f"(-{x})",
    "exp": _np("exp"), "log": _np("log"), "log1p": _np("log1p"), "sqrt": _np("sqrt"),
    "abs": _np("abs"), "tanh": _np("tanh"), "sin": _np("sin"), "cos": _np("cos"), "sign": _np("sign"),
    # np.maximum (not a comparison) so that NaN propagates as in NumPy
    "relu": lambda x, dt: f"np.maximum({x}, {lit(0, dt)})",
    "sigmoid": lambda x, dt: f"sigmoid_{dt}({x})",
    "softplus": lambda x, dt: f"softplus_{dt}({x})",
}
UNARY_HELPERS = {"sigmoid", "softplus"}

_BINARY: dict[str, Callable[[str, str], str]] = {
    "add": lambda x, y: f"({x} + {y})", "sub": lambda x, y: f"({x} - {y})",
    "mul": lambda x, y: f"({x} * {y})", "div": lambda x, y: f"({x} / {y})",
    "pow": lambda x, y: f"np.power({x}, {y})",
    "maximum": lambda x, y: f"np.maximum({x}, {y})", "minimum": lambda x, y: f"np.minimum({x}, {y})",
    "lt": lambda x, y: f"({x} < {y})", "le": lambda x, y: f"({x} <= {y})",
    "gt": lambda x, y: f"({x} > {y})", "ge": lambda x, y: f"({x} >= {y})",
    "eq": lambda x, y: f"({x} == {y})", "ne": lambda x, y: f"({x} != {y})",
    "logical_and": lambda x, y: f"({x} & {y})", "logical_or": lambda x, y: f"({x} | {y})",
}


def _ipow(x: str, n: int, dt: str) -> str:
    if n == 0:
        return lit(1, dt)
    if abs(n) <= 4:                   # repeated products: exact and vectorisable
        prod = " * ".join([x] * abs(n))
        return f"({prod})" if n > 0 else f"({lit(1, dt)} / ({prod}))"
    return f"np.power({x}, {lit(n, dt)})"


def _flat(idx: list[str], shape_code: list[str]) -> str:
    """Row-major flat position of idx (the counter of a random draw)."""
    if not idx:
        return "0"
    expr = idx[0]
    for i, d in zip(idx[1:], shape_code[1:]):
        expr = f"({expr}) * {d} + {i}"
    return expr


def expr(e: Eqn, idx: list[str], read: Read, dim: Callable[[Dim], str], helpers: set[str]) -> str:
    """The value of e's (single) output at loop indices idx."""
    p = e.prim
    out = e.outs[0].type
    dt = out.dtype

    def operand(j: int) -> str:
        return read(j, bcast_index(e.ins[j].type.shape, out.shape, idx))

    if p in _UNARY:
        if p in UNARY_HELPERS:
            helpers.add(f"{p}_{dt}")
        return _UNARY[p](operand(0), dt)
    if p == "ipow":
        return _ipow(operand(0), e.params["n"], dt)
    if p in _BINARY:
        return _BINARY[p](operand(0), operand(1))
    if p == "logical_not":
        return f"(not {operand(0)})"
    if p == "select":
        return f"({operand(1)} if {operand(0)} else {operand(2)})"
    if p == "cast":
        src = e.ins[0].type.dtype
        if src == dt:
            return operand(0)
        if dt == "bool":
            return f"({operand(0)} != {lit(0, src)})"
        return cast(operand(0), dt)
    if p in ("stop_gradient", "broadcast_to"):
        return operand(0)
    if p == "straight_through":
        return operand(0)                      # the value is the hard one
    if p == "key_fold":
        helpers.add("fold")
        return f"fold({operand(0)}, {operand(1)})"
    if p == "transpose":
        perm = e.params["perm"]
        src = [""] * len(perm)
        for i, a in enumerate(perm):
            src[a] = idx[i]
        return read(0, src)
    if p == "slice":
        src = [_affine(e.params["starts"][a], e.params["steps"][a], i) for a, i in enumerate(idx)]
        return read(0, src)
    if p == "pad":
        return _pad(e, idx, read, dt)
    if p == "concatenate":
        return _concat(e, idx, read)
    if p == "one_hot":
        return f"({lit(1, dt)} if {read(0, idx[:-1])} == {idx[-1]} else {lit(0, dt)})"
    if p == "full":
        return lit(e.params["value"], dt)
    if p == "iota":
        return idx[0] if dt == "i64" else cast(idx[0], dt)
    if p == "eye":
        return f"({lit(1, dt)} if {idx[0]} == {idx[1]} else {lit(0, dt)})"
    if p == "dim_size":
        dims = e.params["dims"]
        n = " * ".join(dim(d) for d in dims) if dims else "1"
        return cast(n, dt)
    if p in ("rng_uniform", "rng_normal"):
        kind = p[4:]
        helpers.add(f"{kind}_{dt}")
        flat = _flat(idx, [dim(d) for d in out.shape])
        return f"{kind}_{dt}({read(0, [])}, {flat})"
    raise KeyError(p)


def _affine(start: int, step: int, i: str) -> str:
    term = i if step == 1 else f"{step} * {i}"
    return term if start == 0 else f"{start} + {term}"


def _pad(e: Eqn, idx: list[str], read: Read, dt: str) -> str:
    conds, src = [], []
    x_shape = e.ins[0].type.shape
    for a, i in enumerate(idx):
        start, stop, step = e.params["starts"][a], e.params["stops"][a], e.params["steps"][a]
        if isinstance(stop, str):              # a whole symbolic axis: always inside
            src.append(i)
            continue
        last = start + step * (x_shape[a] - 1) if x_shape[a] else start - 1
        if step == 1:
            conds.append(f"{start} <= {i} <= {last}")
            src.append(i if start == 0 else f"{i} - {start}")
        else:
            conds.append(f"{start} <= {i} <= {last} and ({i} - {start}) % {step} == 0")
            src.append(f"({i} - {start}) // {step}")
    inner = read(0, src)
    if not conds:
        return inner
    return f"({inner} if {' and '.join(conds)} else {lit(0, dt)})"


def _concat(e: Eqn, idx: list[str], read: Read) -> str:
    axis = e.params["axis"] % len(idx)
    i = idx[axis]
    pieces, offset = [], 0
    for j, x in enumerate(e.ins):
        at = list(idx)
        at[axis] = i if offset == 0 else f"{i} - {offset}"
        offset += x.type.shape[axis]
        pieces.append((offset, read(j, at)))
    code = pieces[-1][1]
    for end, piece in reversed(pieces[:-1]):
        code = f"({piece} if {i} < {end} else {code})"
    return code


def dtype_name(dt: str) -> str:
    return NP_NAME[dt]
