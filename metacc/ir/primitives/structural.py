"""Structural primitives (reshape, transpose, broadcast_to, sum_to, slice, pad,
concatenate) and creation (full, eye, iota, dim_size, one_hot).

Structural primitives are linear: their JVP applies the same primitive to the
tangent, their VJP is the transpose primitive (slice <-> pad, broadcast_to <->
sum_to). An indexed lowering `scalar(c)` reads operand j at a transformed index
with `c.read(j, idx)` (`c.idx`: the output element's loop indices, `c.dim(d)`:
the code of a dim).
"""
from __future__ import annotations

from math import prod

import numpy as np

from metacc.ir.primitives.declare import ELEMENTWISE, GENERATOR, HOOK, INDEXED, SINK, declare
from metacc.ir.primitives.rulekit import broadcast, materialize, norm_axes, same_dtype, same_op, sum_to
from metacc.ir.types import NUMPY_DTYPE, Dim, ShapeError, TensorType, broadcast_shapes, fmt_shape, resolve_shape, scalar


@declare("reshape", "structural", 1, params=("shape",),
         impl=lambda x, *, shape, dims, **_: np.reshape(x, resolve_shape(tuple(shape), dims)),
         jvp=same_op("reshape"), vjp=lambda b, ins, outs, gs, **_: [b.reshape(gs[0], shape=ins[0].type.shape)],
         lowering=HOOK, surface=("reshape",))
def _reshape(x, *, shape: tuple[Dim, ...]):
    ints_in = prod(d for d in x.shape if isinstance(d, int))
    ints_out = prod(d for d in shape if isinstance(d, int))
    syms_in = sorted(d for d in x.shape if isinstance(d, str))
    syms_out = sorted(d for d in shape if isinstance(d, str))
    if ints_in != ints_out or syms_in != syms_out:
        raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} to {fmt_shape(tuple(shape))}: "
                         "the number of elements differs")
    return (x.with_shape(shape),)


def _transpose_vjp(b, ins, outs, gs, perm, **_):
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return [b.transpose(gs[0], perm=inverse)]


def _transpose_scalar(c) -> str:
    perm = c.params["perm"]
    src = [""] * len(perm)
    for i, a in enumerate(perm):
        src[a] = c.idx[i]
    return c.read(0, src)


@declare("transpose", "structural", 1, params=("perm",), impl=lambda x, *, perm, **_: np.transpose(x, perm),
         jvp=same_op("transpose"), vjp=_transpose_vjp, lowering=INDEXED, scalar=_transpose_scalar,
         surface=("transpose",))
def _transpose(x, *, perm: tuple[int, ...]):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: {tuple(perm)} is not a permutation of the {x.rank} axes of {x}")
    return (x.with_shape(tuple(x.shape[i] for i in perm)),)


@declare("broadcast_to", "structural", 1, "NumPy broadcasting to a larger shape", params=("shape",),
         impl=lambda x, *, shape, dims, **_: np.broadcast_to(x, resolve_shape(tuple(shape), dims)).copy(),
         jvp=same_op("broadcast_to"), vjp=lambda b, ins, outs, gs, **_: [sum_to(b, gs[0], ins[0].type)],
         lowering=ELEMENTWISE, scalar=lambda c: c.x(0))
def _broadcast_to(x, *, shape: tuple[Dim, ...]):
    if broadcast_shapes(x.shape, tuple(shape)) != tuple(shape):
        raise ShapeError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(tuple(shape))}")
    return (x.with_shape(shape),)


def _sum_to_impl(x, *, shape, dims):
    target = resolve_shape(tuple(shape), dims)
    lead = x.ndim - len(target)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target) if d == 1 and x.shape[lead + i] != 1)
    return np.sum(x, axis=axes, keepdims=True).reshape(target) if axes else x.reshape(target)


@declare("sum_to", "structural", 1, "sum over the axes that broadcasting added (transpose of broadcast_to)",
         params=("shape",), impl=_sum_to_impl, jvp=same_op("sum_to"),
         vjp=lambda b, ins, outs, gs, **_: [broadcast(b, gs[0], ins[0].type.shape)], lowering=SINK)
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


def _slices(starts, stops, steps) -> tuple[slice, ...]:
    return tuple(slice(a, None if isinstance(b, str) else b, s) for a, b, s in zip(starts, stops, steps))


def _affine(start: int, step: int, i: str) -> str:
    term = i if step == 1 else f"{step} * {i}"
    return term if start == 0 else f"{start} + {term}"


def _slice_scalar(c) -> str:
    src = [_affine(c.params["starts"][a], c.params["steps"][a], i) for a, i in enumerate(c.idx)]
    return c.read(0, src)


@declare("slice", "structural", 1, "static slicing x[start:stop:step] per axis", params=("starts", "stops", "steps"),
         impl=lambda x, *, starts, stops, steps, **_: x[_slices(starts, stops, steps)].copy(),
         jvp=same_op("slice"), vjp=lambda b, ins, outs, gs, starts, stops, steps, **_: [
             b.pad(gs[0], shape=ins[0].type.shape, starts=starts, stops=stops, steps=steps)],
         lowering=INDEXED, scalar=_slice_scalar)
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


def _pad_impl(x, *, shape, starts, stops, steps, dims):
    out = np.zeros(resolve_shape(tuple(shape), dims), dtype=x.dtype)
    out[_slices(starts, stops, steps)] = x
    return out


def _pad_scalar(c) -> str:
    conds, src = [], []
    x_shape = c.e.ins[0].type.shape
    for a, i in enumerate(c.idx):
        start, stop, step = c.params["starts"][a], c.params["stops"][a], c.params["steps"][a]
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
    inner = c.read(0, src)
    if not conds:
        return inner
    return f"({inner} if {' and '.join(conds)} else {c.lit(0, c.dt)})"


@declare("pad", "structural", 1, "zeros of `shape` with x placed at the slice (transpose of slice)",
         params=("shape", "starts", "stops", "steps"), impl=_pad_impl, jvp=same_op("pad"),
         vjp=lambda b, ins, outs, gs, starts, stops, steps, **_: [
             b.slice(gs[0], starts=starts, stops=stops, steps=steps)],
         lowering=INDEXED, scalar=_pad_scalar)
def _pad(x, *, shape: tuple[Dim, ...], starts, stops, steps):
    (sliced,) = _slice(TensorType(x.dtype, tuple(shape)), starts=starts, stops=stops, steps=steps)
    if sliced.shape != x.shape:
        raise ShapeError(f"pad: {x} does not fit the slice of {fmt_shape(tuple(shape))}")
    return (x.with_shape(shape),)


def _concatenate_jvp(b, ins, outs, tans, axis, **_):
    if all(t is None for t in tans):
        return [None]
    parts = [materialize(b, t, x.type) for t, x in zip(tans, ins)]
    return [b.concatenate(*parts, axis=axis)]


def _concatenate_vjp(b, ins, outs, gs, axis, **_):
    (g,) = gs
    rank = g.type.rank
    ax = axis % rank
    bars, start = [], 0
    for x in ins:
        size = x.type.shape[ax]
        starts = tuple(start if i == ax else 0 for i in range(rank))
        stops = tuple(start + size if i == ax else g.type.shape[i] for i in range(rank))
        bars.append(b.slice(g, starts=starts, stops=stops, steps=(1,) * rank))
        start += size
    return bars


def _concatenate_scalar(c) -> str:
    axis = c.params["axis"] % len(c.idx)
    i = c.idx[axis]
    pieces, offset = [], 0
    for j, x in enumerate(c.e.ins):
        at = list(c.idx)
        at[axis] = i if offset == 0 else f"{i} - {offset}"
        offset += x.type.shape[axis]
        pieces.append((offset, c.read(j, at)))
    code = pieces[-1][1]
    for end, piece in reversed(pieces[:-1]):
        code = f"({piece} if {i} < {end} else {code})"
    return code


@declare("concatenate", "structural", None, params=("axis",),
         impl=lambda *xs, axis, **_: np.concatenate(xs, axis=axis), jvp=_concatenate_jvp, vjp=_concatenate_vjp,
         lowering=INDEXED, scalar=_concatenate_scalar, surface=("concat", "stack"))
def _concatenate(*xs, axis: int):
    if not xs:
        raise ShapeError("concat needs at least one tensor")
    dtype = same_dtype("concat", *xs)
    rank = xs[0].rank
    if any(x.rank != rank for x in xs):
        raise ShapeError(f"concat: all tensors need the same rank, got {', '.join(map(str, xs))}")
    (ax,) = norm_axes((axis,), rank, "concat")
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


# ---- creation: no derivative ---------------------------------------------------

@declare("full", "create", 0, params=("shape", "value", "dtype"), nondiff=True,
         impl=lambda *, shape, value, dtype, dims, **_: np.full(resolve_shape(tuple(shape), dims), value,
                                                                dtype=NUMPY_DTYPE[dtype]),
         lowering=GENERATOR, scalar=lambda c: c.lit(c.params["value"], c.dt), surface=("full", "zeros", "ones"))
def _full(*, shape: tuple[Dim, ...], value: float, dtype: str):
    return (TensorType(dtype, tuple(shape)),)


@declare("eye", "create", 0, params=("n", "dtype"), nondiff=True,
         impl=lambda *, n, dtype, dims, **_: np.eye(resolve_shape((n,), dims)[0], dtype=NUMPY_DTYPE[dtype]),
         lowering=GENERATOR, surface=("eye",),
         scalar=lambda c: f"({c.lit(1, c.dt)} if {c.idx[0]} == {c.idx[1]} else {c.lit(0, c.dt)})")
def _eye(*, n: Dim, dtype: str):
    return (TensorType(dtype, (n, n)),)


@declare("iota", "create", 0, "0, 1, ..., n-1", params=("n", "dtype"), nondiff=True,
         impl=lambda *, n, dtype="i64", dims, **_: np.arange(resolve_shape((n,), dims)[0]).astype(NUMPY_DTYPE[dtype]),
         lowering=GENERATOR, scalar=lambda c: c.idx[0] if c.dt == "i64" else c.cast(c.idx[0], c.dt))
def _iota(*, n: Dim, dtype: str = "i64"):
    return (TensorType(dtype, (n,)),)


def _dim_size_scalar(c) -> str:
    dims = c.params["dims"]
    n = " * ".join(c.dim(d) for d in dims) if dims else "1"
    return c.cast(n, c.dt)


def _dim_size_impl(*, dims, dtype, bindings):
    """The product of dims: `dims` is the parameter, so the interpreter passes its dim values as bindings."""
    return NUMPY_DTYPE[dtype](np.prod(resolve_shape(tuple(dims), bindings), dtype=np.float64))


@declare("dim_size", "create", 0, "product of dims as a scalar (mean over symbolic axes)", params=("dims", "dtype"),
         nondiff=True, impl=_dim_size_impl, lowering=GENERATOR, scalar=_dim_size_scalar)
def _dim_size(*, dims: tuple[Dim, ...], dtype: str):
    return (scalar(dtype),)


@declare("one_hot", "create", 1, params=("n", "dtype"), nondiff=True,
         impl=lambda idx, *, n, dtype, **_: (np.asarray(idx)[..., None] == np.arange(n)).astype(NUMPY_DTYPE[dtype]),
         lowering=INDEXED, surface=("one_hot",),
         scalar=lambda c: f"({c.lit(1, c.dt)} if {c.read(0, c.idx[:-1])} == {c.idx[-1]} else {c.lit(0, c.dt)})")
def _one_hot(idx, *, n: int, dtype: str):
    if idx.dtype != "i64":
        raise ShapeError(f"one_hot needs integer class indices, got {idx}")
    return (TensorType(dtype, idx.shape + (n,)),)
