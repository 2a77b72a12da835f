"""The primitive set of the IR and each primitive's type rule.

A type rule maps input types (and the eqn's params) to output types, raising
`ShapeError` with a readable message when they do not fit. The same rules
serve the front end's checking, the builder and the verifier, so a shape is
decided in exactly one place.

Families:
  unary      float -> float, elementwise            (neg, exp, ..., ipow)
  binary     float x float -> float, broadcasting   (add, ..., pow, maximum)
  compare    x x y -> bool, broadcasting (no derivative: the path is cut)
  logic      bool ops
  structural reshape, transpose, broadcast_to, sum_to, slice, pad, concatenate
  reduce     reduce_sum, reduce_max, argmax
  linalg     matmul (2-D), solve
  conv       conv2d and its two adjoints, pooling (rules in conv_types.py)
  create     full, eye, iota, dim_size, one_hot
  special    select, cast, stop_gradient, straight_through
  random     rng_uniform, rng_normal, key_fold (counter-based, reproducible)
  control    scan, call, grad, argmin (hold closed sub-functions)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from metacc.ir.conv_types import CONV_PRIMS
from metacc.ir.types import (FLOAT_DTYPES, Dim, ShapeError, TensorType, broadcast_shapes,
                             fmt_shape, scalar)


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str
    family: str
    rule: Callable[..., tuple[TensorType, ...]]
    n_ins: int | None        # None: variadic
    doc: str = ""


PRIMS: dict[str, Primitive] = {}


def _register(name: str, family: str, n_ins: int | None, doc: str = ""):
    def wrap(rule):
        PRIMS[name] = Primitive(name, family, rule, n_ins, doc)
        return rule
    return wrap


def infer(prim: str, in_types: tuple[TensorType, ...], params: dict) -> tuple[TensorType, ...]:
    p = PRIMS[prim]
    if p.n_ins is not None and len(in_types) != p.n_ins:
        raise ShapeError(f"{prim} takes {p.n_ins} operand(s), got {len(in_types)}")
    return p.rule(*in_types, **params)


def _need_float(t: TensorType, what: str):
    if not t.is_float:
        raise ShapeError(f"{what} needs a float tensor, got {t}")


def _same_dtype(prim: str, *ts: TensorType) -> str:
    dtypes = {t.dtype for t in ts}
    if len(dtypes) != 1:
        raise ShapeError(f"{prim}: operands have different dtypes ({', '.join(str(t) for t in ts)}); "
                         "metacc never promotes silently: cast one with f32(...) or f64(...)")
    return dtypes.pop()


# ---- elementwise -----------------------------------------------------------

UNARY = ("neg", "exp", "log", "log1p", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus",
         "sin", "cos", "sign")
for _name in UNARY:
    def _unary(x, _n=_name):
        _need_float(x, _n)
        return (x,)
    _register(_name, "unary", 1)(_unary)


@_register("ipow", "unary", 1, "x ** n for a static integer n")
def _ipow(x, *, n: int):
    _need_float(x, "ipow")
    return (x,)


BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
for _name in BINARY:
    def _binary(x, y, _n=_name):
        dtype = _same_dtype(_n, x, y)
        if dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{_n} needs float operands, got {x} and {y}")
        return (TensorType(dtype, broadcast_shapes(x.shape, y.shape)),)
    _register(_name, "binary", 2)(_binary)

COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")
for _name in COMPARE:
    def _compare(x, y, _n=_name):
        _same_dtype(_n, x, y)
        return (TensorType("bool", broadcast_shapes(x.shape, y.shape)),)
    _register(_name, "compare", 2)(_compare)

for _name in ("logical_and", "logical_or"):
    def _logic(x, y, _n=_name):
        if x.dtype != "bool" or y.dtype != "bool":
            raise ShapeError(f"{_n} needs boolean operands, got {x} and {y}")
        return (TensorType("bool", broadcast_shapes(x.shape, y.shape)),)
    _register(_name, "logic", 2)(_logic)


@_register("logical_not", "logic", 1)
def _not(x):
    if x.dtype != "bool":
        raise ShapeError(f"not needs a boolean operand, got {x}")
    return (x,)


@_register("select", "special", 3, "where(c, a, b)")
def _select(c, a, b):
    if c.dtype != "bool":
        raise ShapeError(f"where's condition must be boolean (a comparison), got {c}")
    dtype = _same_dtype("where", a, b)
    return (TensorType(dtype, broadcast_shapes(c.shape, a.shape, b.shape)),)


@_register("cast", "special", 1)
def _cast(x, *, dtype: str):
    return (x.with_dtype(dtype),)


@_register("stop_gradient", "special", 1, "identity value, zero derivative at every order")
def _stop_gradient(x):
    return (x,)


@_register("straight_through", "special", 2, "value of hard, derivative of surrogate")
def _straight_through(hard, surrogate):
    if hard.dtype != surrogate.dtype:
        raise ShapeError(f"straight_through: hard value {hard} and surrogate {surrogate} "
                         "must have the same dtype")
    shape = broadcast_shapes(hard.shape, surrogate.shape)
    if shape != surrogate.shape:
        raise ShapeError(f"straight_through: the hard value {fmt_shape(hard.shape)} must broadcast "
                         f"to the surrogate's shape {fmt_shape(surrogate.shape)}")
    _need_float(surrogate, "straight_through")
    return (surrogate,)


# ---- structural ------------------------------------------------------------

def _norm_axes(axes, rank: int, what: str) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"{what}: axis {a} is out of range for a rank-{rank} tensor")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


@_register("reshape", "structural", 1)
def _reshape(x, *, shape: tuple[Dim, ...]):
    from math import prod
    ints_in = prod(d for d in x.shape if isinstance(d, int))
    ints_out = prod(d for d in shape if isinstance(d, int))
    syms_in = sorted(d for d in x.shape if isinstance(d, str))
    syms_out = sorted(d for d in shape if isinstance(d, str))
    if ints_in != ints_out or syms_in != syms_out:
        raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} to {fmt_shape(tuple(shape))}: "
                         "the number of elements differs")
    return (x.with_shape(shape),)


@_register("transpose", "structural", 1)
def _transpose(x, *, perm: tuple[int, ...]):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: {tuple(perm)} is not a permutation of the {x.rank} axes of {x}")
    return (x.with_shape(tuple(x.shape[i] for i in perm)),)


@_register("broadcast_to", "structural", 1, "NumPy broadcasting to a larger shape")
def _broadcast_to(x, *, shape: tuple[Dim, ...]):
    if broadcast_shapes(x.shape, tuple(shape)) != tuple(shape):
        raise ShapeError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(tuple(shape))}")
    return (x.with_shape(shape),)


@_register("sum_to", "structural", 1, "sum over the axes that broadcasting added (transpose of broadcast_to)")
def _sum_to(x, *, shape: tuple[Dim, ...]):
    if broadcast_shapes(x.shape, tuple(shape)) != x.shape:
        raise ShapeError(f"cannot sum {fmt_shape(x.shape)} down to {fmt_shape(tuple(shape))}")
    return (x.with_shape(shape),)


def _slice_len(dim: Dim, start: int, stop: Dim, step: int) -> Dim:
    if isinstance(dim, str) or isinstance(stop, str):
        if start == 0 and step == 1 and stop == dim:
            return dim
        raise ShapeError(f"a slice of a symbolic dim {dim} must be the whole axis (use ':')")
    return len(range(start, stop, step))


@_register("slice", "structural", 1, "static slicing x[start:stop:step] per axis")
def _slice(x, *, starts: tuple[int, ...], stops: tuple[Dim, ...], steps: tuple[int, ...]):
    if not len(starts) == len(stops) == len(steps) == x.rank:
        raise ShapeError(f"slice: need one start/stop/step per axis of {x}")
    shape = []
    for dim, a, b, s in zip(x.shape, starts, stops, steps):
        if s < 1:
            raise ShapeError("slice steps must be positive")
        if isinstance(dim, int) and isinstance(b, int) and not (0 <= a <= b <= dim):
            raise ShapeError(f"slice {a}:{b} is out of range for an axis of length {dim}")
        shape.append(_slice_len(dim, a, b, s))
    return (x.with_shape(shape),)


@_register("pad", "structural", 1, "zeros of `shape` with x placed at the slice (transpose of slice)")
def _pad(x, *, shape: tuple[Dim, ...], starts, stops, steps):
    (sliced,) = _slice(TensorType(x.dtype, tuple(shape)), starts=starts, stops=stops, steps=steps)
    if sliced.shape != x.shape:
        raise ShapeError(f"pad: {x} does not fit the slice of {fmt_shape(tuple(shape))}")
    return (x.with_shape(shape),)


@_register("concatenate", "structural", None)
def _concatenate(*xs, axis: int):
    if not xs:
        raise ShapeError("concat needs at least one tensor")
    dtype = _same_dtype("concat", *xs)
    rank = xs[0].rank
    if any(x.rank != rank for x in xs):
        raise ShapeError(f"concat: all tensors need the same rank, got {', '.join(map(str, xs))}")
    (ax,) = _norm_axes((axis,), rank, "concat")
    total = 0
    for x in xs:
        for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)):
            if i != ax and a != b:
                raise ShapeError(f"concat along axis {ax}: other axes must agree, got "
                                 f"{', '.join(str(t) for t in xs)}")
        if isinstance(x.shape[ax], str):
            raise ShapeError("concat along a symbolic axis is not supported; concatenate along a fixed-size axis")
        total += x.shape[ax]
    shape = list(xs[0].shape)
    shape[ax] = total
    return (TensorType(dtype, tuple(shape)),)


# ---- reductions ------------------------------------------------------------

def _reduced(x, axes, keepdims, what):
    ax = _norm_axes(axes, x.rank, what)
    if keepdims:
        return tuple(1 if i in ax else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in ax)


@_register("reduce_sum", "reduce", 1)
def _reduce_sum(x, *, axes: tuple[int, ...], keepdims: bool = False):
    _need_float(x, "sum")
    return (x.with_shape(_reduced(x, axes, keepdims, "sum")),)


@_register("reduce_max", "reduce", 1)
def _reduce_max(x, *, axes: tuple[int, ...], keepdims: bool = False):
    _need_float(x, "max")
    return (x.with_shape(_reduced(x, axes, keepdims, "max")),)


@_register("argmax", "reduce", 1)
def _argmax(x, *, axis: int):
    return (TensorType("i64", _reduced(x, (axis,), False, "argmax")),)


# ---- linear algebra --------------------------------------------------------

@_register("matmul", "linalg", 2, "2-D matrix product")
def _matmul(a, b):
    dtype = _same_dtype("@", a, b)
    if dtype not in FLOAT_DTYPES:
        raise ShapeError(f"@ needs float operands, got {a} and {b}")
    if a.rank != 2 or b.rank != 2:
        raise ShapeError(f"matmul takes 2-D operands, got {a} and {b}")
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"inner dims of {a} @ {b} differ ({a.shape[1]} vs {b.shape[0]})")
    return (TensorType(dtype, (a.shape[0], b.shape[1])),)


@_register("solve", "linalg", 2, "X with A @ X = B, A square, B 2-D")
def _solve(a, b):
    dtype = _same_dtype("solve", a, b)
    if dtype not in FLOAT_DTYPES:
        raise ShapeError("solve needs float operands")
    if a.rank != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"solve needs a square matrix, got {a}")
    if b.rank != 2 or b.shape[0] != a.shape[0]:
        raise ShapeError(f"solve(A, B): B must be 2-D with {a.shape[0]} rows, got {b}")
    return (b,)


# ---- convolution and pooling: rules in their own family module ----------------

for _name, (_n_ins, _doc, _rule) in CONV_PRIMS.items():
    _register(_name, "conv", _n_ins, _doc)(_rule)


# ---- creation --------------------------------------------------------------

@_register("full", "create", 0)
def _full(*, shape: tuple[Dim, ...], value: float, dtype: str):
    return (TensorType(dtype, tuple(shape)),)


@_register("eye", "create", 0)
def _eye(*, n: Dim, dtype: str):
    return (TensorType(dtype, (n, n)),)


@_register("iota", "create", 0, "0, 1, ..., n-1")
def _iota(*, n: Dim, dtype: str = "i64"):
    return (TensorType(dtype, (n,)),)


@_register("dim_size", "create", 0, "product of dims as a scalar (mean over symbolic axes)")
def _dim_size(*, dims: tuple[Dim, ...], dtype: str):
    return (scalar(dtype),)


@_register("one_hot", "create", 1)
def _one_hot(idx, *, n: int, dtype: str):
    if idx.dtype != "i64":
        raise ShapeError(f"one_hot needs integer class indices, got {idx}")
    return (TensorType(dtype, idx.shape + (n,)),)


# ---- randomness ------------------------------------------------------------

@_register("key_fold", "random", 2, "a new key from a key and an integer (split, per-step keys)")
def _key_fold(key, data):
    if key.dtype != "key" or key.rank != 0:
        raise ShapeError(f"expected a scalar random key, got {key}")
    if data.dtype != "i64" or data.rank != 0:
        raise ShapeError(f"fold_in needs a scalar integer, got {data}")
    return (key,)


for _name in ("rng_uniform", "rng_normal"):
    def _rng(key, *, shape, dtype, _n=_name):
        if key.dtype != "key" or key.rank != 0:
            raise ShapeError(f"{_n} needs a scalar random key, got {key}")
        return (TensorType(dtype, tuple(shape)),)
    _register(_name, "random", 1)(_rng)


# ---- control ---------------------------------------------------------------

@_register("scan", "control", None,
           "loop of static length: ins = consts + carry + xs, outs = carry + ys (stacked on axis 0)")
def _scan(*ins, body, length: int, n_consts: int, n_carry: int, reverse: bool = False, **_):
    consts, carry, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
    want = list(consts) + list(carry) + [x.with_shape(x.shape[1:]) for x in xs]
    for x in xs:
        if not x.shape or x.shape[0] != length:
            raise ShapeError(f"scan xs must have leading dim {length}, got {x}")
    if [v.type for v in body.ins] != want:
        raise ShapeError("scan body inputs do not match consts + carry + x slices")
    outs = body.out_types
    if list(outs[:n_carry]) != [c for c in carry]:
        raise ShapeError("scan body must return the carry with unchanged types: "
                         + ", ".join(f"{a} -> {b}" for a, b in zip(carry, outs[:n_carry]) if a != b))
    ys = tuple(t.with_shape((length,) + t.shape) for t in outs[n_carry:])
    return tuple(outs[:n_carry]) + ys


@_register("call", "control", None, "apply a closed sub-function; remat=True recomputes it in the backward pass")
def _call(*ins, fn, remat: bool = False, **_):
    if list(ins) != list(fn.in_types):
        raise ShapeError(f"call {fn.name}: argument types do not match")
    return fn.out_types


@_register("grad", "control", None,
           "gradients of fn's scalar output w.r.t. its first n_wrt inputs (expanded by metacc.ad)")
def _grad(*ins, fn, n_wrt: int, **_):
    if list(ins) != list(fn.in_types):
        raise ShapeError(f"grad of {fn.name}: argument types do not match")
    if len(fn.outs) != 1 or fn.outs[0].type.rank != 0 or not fn.outs[0].type.is_float:
        raise ShapeError("grad needs an expression with one float scalar value")
    for t in fn.in_types[:n_wrt]:
        if not t.is_float:
            raise ShapeError(f"cannot differentiate with respect to a {t.dtype} value")
    return tuple(fn.in_types[:n_wrt])


@_register("argmin", "control", None,
           "p* = argmin_p objective(p, *extra), solved from p_init; differentiated implicitly or unrolled")
def _argmin(*ins, objective, n_p: int, solver: dict, implicit: dict | None = None, **_):
    if list(ins) != list(objective.in_types):
        raise ShapeError("argmin: argument types do not match the objective's inputs")
    if len(objective.outs) != 1 or objective.outs[0].type.rank != 0:
        raise ShapeError("argmin objective must be a scalar")
    return tuple(objective.in_types[:n_p])


NONDIFF_FAMILIES = ("compare", "logic", "random")
NONDIFF_PRIMS = ("argmax", "iota", "one_hot", "dim_size", "full", "eye")


@_register("cg_solve", "control", None,
           "x = A^-1 b by conjugate gradients; A v = matvec(v, *consts) is symmetric positive definite. "
           "Differentiated as the exact linear solve in b; consts must carry no derivative")
def _cg_solve(*ins, matvec, n_b: int, iters: int, tol: float, **_):
    bs, consts = ins[:n_b], ins[n_b:]
    if list(matvec.in_types) != list(bs) + list(consts):
        raise ShapeError("cg_solve: matvec inputs must be the vector leaves then the constants")
    if list(matvec.out_types) != list(bs):
        raise ShapeError("cg_solve: matvec must return vectors of the right-hand side's types")
    return tuple(bs)


@_register("diagnostic", "effect", 1,
           "report a convergence figure (a float scalar) to the runtime: no outputs, no derivative. "
           "params: kind ('argmin' or 'cg'), tol, where (file:line:col), what, advice; the runtime "
           "warns when the figure is not <= tol (metacc.diagnostics)")
def _diagnostic(x, *, kind: str, tol: float, where: str, what: str, advice: str = "", **_):
    if x.rank != 0 or not x.is_float:
        raise ShapeError(f"diagnostic needs a float scalar, got {x}")
    return ()
