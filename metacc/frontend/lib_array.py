"""Builtins that build or rearrange arrays: constructors, casts, reshape,
transpose, concat/stack, and the linear solve."""
from __future__ import annotations

from math import prod

from metacc.errors import MetaccError
from metacc.frontend import ast as A
from metacc.frontend.builtins import builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, check_float_range, literal, static_dim
from metacc.frontend.lib_math import emit1
from metacc.frontend.trees import tree_map
from metacc.frontend.values import Number, Record, Tensor, Tree


def _tensor(ctx: Ctx, node, x, what: str) -> Tensor:
    if isinstance(x, (Tree, Record)):
        reject(x, node, what, "a tensor")
    return as_tensor(ctx, x, None, node.span, what)


# ---- constructors ------------------------------------------------------------------

def _full(ctx: Ctx, node, shape, value, dtype: str) -> Tensor:
    if dtype == "bool":
        value = bool(value)
    elif dtype == "i64":
        if not float(value).is_integer():
            raise MetaccError(f"an i64 array cannot hold {value}", node.span)
        value = int(value)
    else:
        value = float(value)
        check_float_range(value, dtype, node.span, what="the value")
    return emit1(ctx, "full", [], node.span, shape=tuple(shape), value=value, dtype=dtype)


@builtin("zeros ones", "shape:shape, dtype?:dtype", "an array of 0s / 1s (of the function's float type by default)")
def _zeros_ones(ctx: Ctx, node, shape, dtype=None):
    return _full(ctx, node, shape, 0 if node.func == "zeros" else 1, dtype or ctx.default_float)


@builtin("full", "shape:shape, value, dtype?:dtype", "an array filled with value (a number or a scalar tensor)")
def _full_builtin(ctx: Ctx, node, shape, value, dtype=None):
    if isinstance(value, Number):
        return _full(ctx, node, shape, value.value, dtype or ctx.default_float)
    v = _tensor(ctx, node, value, "the value of full")
    if v.type.rank != 0:
        raise MetaccError(f"full needs a scalar value, not {v.type}", node.span, hint="use broadcasting instead")
    if dtype and dtype != v.type.dtype:
        raise MetaccError(f"full: the value is {v.type.dtype} but dtype={dtype}", node.span,
                          hint=f"cast the value with {dtype}(...)")
    return emit1(ctx, "broadcast_to", [v], node.span, shape=tuple(shape))


@builtin("eye", "n:dim, dtype?:dtype", "the n x n identity matrix")
def _eye(ctx: Ctx, node, n, dtype=None):
    return emit1(ctx, "eye", [], node.span, n=n, dtype=dtype or ctx.default_float)


@builtin("zeros_like ones_like", "x", "0s / 1s of x's type; for a params group, of every field")
def _like(ctx: Ctx, node, x):
    value = 0 if node.func == "zeros_like" else 1
    if isinstance(x, Number):
        return Number(value, node.span, node.func)
    if isinstance(x, Tree):
        return tree_map(ctx, lambda leaf: _full(ctx, node, leaf.type.shape, value, leaf.type.dtype), x,
                        node.span, node.func)
    x = _tensor(ctx, node, x, f"the argument of {node.func}")
    return _full(ctx, node, x.type.shape, value, x.type.dtype)


# ---- casts --------------------------------------------------------------------------

@builtin("f32 f64 i64", "x", "convert to this element type (the only way f32 and f64 meet)")
def _cast(ctx: Ctx, node, x):
    dtype = ctx.unit.decls.dtype(node.func)
    if isinstance(x, Tree):
        reject(x, node, f"the argument of {node.func}", "a tensor", hint="cast single fields")
    if isinstance(x, Number):
        if dtype == "i64" and not float(x.value).is_integer():
            raise MetaccError(f"i64({x.value}) would drop the fraction", node.span, hint="write a whole number")
        return literal(ctx, Number(int(x.value) if dtype == "i64" else x.value, x.origin, x.desc), dtype, node.span)
    x = _tensor(ctx, node, x, f"the argument of {node.func}")
    if x.type.dtype == dtype:
        return x
    return emit1(ctx, "cast", [x], node.span, dtype=dtype)


# ---- structure -----------------------------------------------------------------------

@builtin("transpose", "x, perm?:axes", "swap the axes of a matrix, or permute axes by perm")
def _transpose(ctx: Ctx, node, x, perm=None):
    x = _tensor(ctx, node, x, "the argument of transpose")
    rank = x.type.rank
    if perm is None:
        if rank != 2:
            raise MetaccError(f"transpose(x) without a permutation needs a matrix, not {x.type}", node.span,
                              hint="for a vector use reshape(x, [1, n]); for other ranks pass the axes, "
                                   "e.g. transpose(x, [2, 0, 1])")
        perm = (1, 0)
    if len(perm) != rank or sorted(p % rank if rank else p for p in perm) != list(range(rank)) \
            or any(not -rank <= p < rank for p in perm):
        raise MetaccError(f"{list(perm)} is not a permutation of the {rank} axes of {x.type}", node.span)
    return emit1(ctx, "transpose", [x], node.span, perm=tuple(p % rank for p in perm))


def _reshape_dims(ctx: Ctx, node, x: Tensor):
    items = node.items if isinstance(node, A.ListExpr) else (node,)
    dims, infer = [], None
    for i, item in enumerate(items):
        if isinstance(item, A.UnaryOp) and item.op == "neg" and isinstance(item.operand, A.Num) \
                and item.operand.value == 1:
            if infer is not None:
                raise MetaccError("only one dim of a reshape can be -1", item.span)
            infer = i
            dims.append(-1)
        else:
            dims.append(static_dim(ctx, item, "each dim of the new shape"))
    if infer is not None:
        if not all(isinstance(d, int) for d in x.type.shape + tuple(dims)):
            raise MetaccError("-1 in a reshape needs fixed sizes on both sides", node.span,
                              hint="name the symbolic dims explicitly, e.g. reshape(x, [n, 4])")
        known = prod(d for d in dims if d != -1)
        total = prod(x.type.shape)
        if known == 0 or total % known:
            raise MetaccError(f"cannot reshape {x.type} to {dims}: {total} elements do not divide evenly",
                              node.span)
        dims[infer] = total // known
    return tuple(dims)


@builtin("reshape", "x, shape:node", "the same elements in a new shape; one dim may be -1")
def _reshape(ctx: Ctx, node, x, shape):
    x = _tensor(ctx, node, x, "the argument of reshape")
    return emit1(ctx, "reshape", [x], node.span, shape=_reshape_dims(ctx, shape, x))


@builtin("flatten", "x", "[n, a, b, ...] -> [n, a * b * ...]: keeps the first axis (it may be symbolic)")
def _flatten(ctx: Ctx, node, x):
    x = _tensor(ctx, node, x, "the argument of flatten")
    if x.type.rank < 2:
        raise MetaccError(f"flatten needs a leading axis and at least one more, not {x.type}", node.span,
                          hint="flatten keeps the first (batch) axis and joins the others")
    rest = x.type.shape[1:]
    symbolic = [d for d in rest if not isinstance(d, int)]
    if symbolic:
        raise MetaccError(f"flatten joins the axes after the first, which must have fixed sizes; "
                          f"{x.type} has {', '.join(map(str, symbolic))} there", node.span,
                          hint="only the first axis may be symbolic; or reshape with the dims named")
    if len(rest) == 1:
        return x
    return emit1(ctx, "reshape", [x], node.span, shape=(x.type.shape[0], prod(rest)))


def _pieces(ctx: Ctx, node, xs, what: str) -> list[Tensor]:
    dtype = next((v.type.dtype for v in xs if isinstance(v, Tensor)), None)
    return [as_tensor(ctx, v, dtype, node.span, f"each piece of {what}") if not isinstance(v, (Tree, Record))
            else reject(v, node, f"each piece of {what}", "a tensor") for v in xs]


@builtin("concat", "xs:values, axis?:int", "join tensors along an existing axis (default 0)")
def _concat(ctx: Ctx, node, xs, axis=0):
    pieces = _pieces(ctx, node, xs, "concat")
    return emit1(ctx, "concatenate", pieces, node.span, axis=axis)


@builtin("stack", "xs:values, axis?:int", "join tensors of one shape along a new axis (default 0)")
def _stack(ctx: Ctx, node, xs, axis=0):
    pieces = _pieces(ctx, node, xs, "stack")
    rank = pieces[0].type.rank
    if not -rank - 1 <= axis <= rank:
        raise MetaccError(f"stack: axis {axis} is out of range for pieces of rank {rank}", node.span)
    axis %= rank + 1
    first = pieces[0].type
    lifted = []
    for p in pieces:
        if p.type != first:
            raise MetaccError(f"stack needs pieces of one type, got {first} and {p.type}", node.span)
        shape = p.type.shape[:axis] + (1,) + p.type.shape[axis:]
        lifted.append(emit1(ctx, "reshape", [p], node.span, shape=shape))
    return emit1(ctx, "concatenate", lifted, node.span, axis=axis)


@builtin("solve", "a, b", "X with a @ X = b (a square, b a matrix); differentiable in a and b")
def _solve(ctx: Ctx, node, a, b):
    x = _tensor(ctx, node, a, "the matrix of solve")
    y = _tensor(ctx, node, b, "the right-hand side of solve")
    return emit1(ctx, "solve", [x, y], node.span)

