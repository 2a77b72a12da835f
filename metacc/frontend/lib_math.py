"""Builtins for math: elementwise functions, reductions, the stable composites, batch norm.

logsumexp, softmax and log_softmax subtract the (stop_gradient of the) max
before exponentiating: the shift cancels exactly in value and derivative, and
keeps exp from overflowing. mean is a sum divided by the number of elements,
which is a `dim_size` equation when an axis is symbolic.
"""
from __future__ import annotations

from math import prod

from metacc.errors import MetaccError, Span
from metacc.frontend.arith import elementwise, fold_unary
from metacc.frontend.builtins import builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, dim_tensor, literal, normalize_axes
from metacc.frontend.trees import tree_map, tree_unary
from metacc.frontend.values import DimValue, Number, Record, Tensor, Tree
from metacc.ir.core import Lit
from metacc.ir.prims import PRIMS
from metacc.ir.prims import UNARY as _UNARY_PRIMS
from metacc.ir.types import scalar

# the builtins that are a unary primitive of the same name (declared with surface=(name,))
UNARY = " ".join(n for n in _UNARY_PRIMS if n in PRIMS[n].surface)


def emit1(ctx: Ctx, prim: str, ins, span: Span | None, **params) -> Tensor:
    # the type rules' messages already name the operation; the caret shows the call
    return ctx.tensor(ctx.emit(prim, ins, span, **params), span)


@builtin(UNARY, "x", "elementwise; maps over every field of a params group")
def _unary(ctx: Ctx, node, x):
    prim = node.func
    if isinstance(x, DimValue):
        x = dim_tensor(ctx, x, ctx.default_float, node.span)
    if isinstance(x, Number):
        return fold_unary(prim, x, node.span)
    if isinstance(x, Tree):
        return tree_unary(ctx, prim, x, node.span)
    if isinstance(x, Record):
        reject(x, node, f"the argument of {prim}", "a tensor or a params group")
    return emit1(ctx, prim, [x], node.span)


def step_of(ctx: Ctx, x: Tensor, span) -> Tensor:
    mask = ctx.emit("gt", [x, literal(ctx, Number(0, span, "0"), x.type.dtype, span)], span, what="step")
    return ctx.tensor(ctx.emit("cast", [mask], span, dtype=x.type.dtype), span)


@builtin("step", "x", "1 where x > 0, else 0 (no useful derivative: pair it with straight_through)")
def _step(ctx: Ctx, node, x):
    if isinstance(x, Number):
        return Number(1.0 if x.value > 0 else 0.0, node.span, "step")
    if isinstance(x, Tree):
        return tree_map(ctx, lambda leaf: step_of(ctx, leaf, node.span), x, node.span, "step")
    return step_of(ctx, as_tensor(ctx, x, None, node.span, "the argument of step"), node.span)


@builtin("maximum minimum", "a, b", "elementwise, broadcasting")
def _minmax(ctx: Ctx, node, a, b):
    return elementwise(ctx, node.func, a, b, node.span)


@builtin("where", "cond, a, b", "a where cond holds, else b (elementwise, broadcasting)")
def _where(ctx: Ctx, node, cond, a, b):
    for v in (a, b):
        if isinstance(v, (Tree, Record)):
            reject(v, node, "the branches of where", "tensors or numbers")
    c = as_tensor(ctx, cond, "bool", node.args[0].span, "the condition of where")
    dtype = next((v.type.dtype for v in (a, b) if isinstance(v, Tensor)), None)
    x = as_tensor(ctx, a, dtype, node.span, "a branch of where")
    y = as_tensor(ctx, b, x.type.dtype, node.span, "a branch of where")
    return ctx.tensor(ctx.emit("select", [c, x, y], node.span), node.span)


# ---- reductions ---------------------------------------------------------------------

def _reduced_input(ctx: Ctx, node, x, what: str) -> Tensor:
    if isinstance(x, Tree):
        reject(x, node, f"the argument of {what}", "a tensor",
               hint="reduce a whole params group with sqnorm(p) or dot(p, q), or pick a field")
    x = as_tensor(ctx, x, None, node.span, f"the argument of {what}")
    if what != "argmax" and not x.type.is_float:
        raise MetaccError(f"{what} needs a float tensor, not {x.type}", node.span,
                          hint="cast it first, e.g. f32(...)")
    return x


def axes_of(x: Tensor, axis, span, what: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.type.rank))
    return normalize_axes(axis, x.type.rank, span, what)


def mean_over(ctx: Ctx, x: Tensor, axes, keepdims: bool, span) -> Tensor:
    total = emit1(ctx, "reduce_sum", [x], span, axes=axes, keepdims=keepdims)
    dims = [x.type.shape[a] for a in axes]
    dtype = x.type.dtype
    if all(isinstance(d, int) for d in dims):
        n = prod(dims)
        if n == 1:
            return total
        count = Lit(float(n), scalar(dtype))
    else:
        count = ctx.emit("dim_size", [], span, dims=tuple(dims), dtype=dtype)
    return ctx.tensor(ctx.emit("div", [total, count], span), span)


@builtin("sum", "x, axis?:axes, keepdims?:flag", "sum over all axes, or over `axis`")
def _sum(ctx: Ctx, node, x, axis=None, keepdims=False):
    x = _reduced_input(ctx, node, x, "sum")
    return emit1(ctx, "reduce_sum", [x], node.span, axes=axes_of(x, axis, node.span, "sum"), keepdims=keepdims)


@builtin("mean", "x, axis?:axes, keepdims?:flag", "mean over all axes, or over `axis`")
def _mean(ctx: Ctx, node, x, axis=None, keepdims=False):
    x = _reduced_input(ctx, node, x, "mean")
    return mean_over(ctx, x, axes_of(x, axis, node.span, "mean"), keepdims, node.span)


@builtin("max", "x, axis?:axes, keepdims?:flag", "largest element over all axes, or over `axis`")
def _max(ctx: Ctx, node, x, axis=None, keepdims=False):
    x = _reduced_input(ctx, node, x, "max")
    return emit1(ctx, "reduce_max", [x], node.span, axes=axes_of(x, axis, node.span, "max"), keepdims=keepdims)


@builtin("min", "x, axis?:axes, keepdims?:flag", "smallest element: -max(-x)")
def _min(ctx: Ctx, node, x, axis=None, keepdims=False):
    x = _reduced_input(ctx, node, x, "min")
    neg = emit1(ctx, "neg", [x], node.span)
    m = emit1(ctx, "reduce_max", [neg], node.span, axes=axes_of(x, axis, node.span, "min"), keepdims=keepdims)
    return emit1(ctx, "neg", [m], node.span)


@builtin("argmax", "x, axis?:int", "index of the largest element along `axis` (default: the last), as i64")
def _argmax(ctx: Ctx, node, x, axis=-1):
    x = _reduced_input(ctx, node, x, "argmax")
    if x.type.rank == 0:
        raise MetaccError("argmax needs at least one axis", node.span)
    (ax,) = normalize_axes((axis,), x.type.rank, node.span, "argmax")
    return emit1(ctx, "argmax", [x], node.span, axis=ax)


def _keep_shape(x: Tensor, axes) -> tuple:
    return tuple(d for i, d in enumerate(x.type.shape) if i not in axes)


def logsumexp_of(ctx: Ctx, x: Tensor, axes, keepdims: bool, span) -> Tensor:
    m = emit1(ctx, "reduce_max", [x], span, axes=axes, keepdims=True)
    m = emit1(ctx, "stop_gradient", [m], span)
    e = emit1(ctx, "exp", [emit1(ctx, "sub", [x, m], span)], span)
    s = emit1(ctx, "log", [emit1(ctx, "reduce_sum", [e], span, axes=axes, keepdims=keepdims)], span)
    if not keepdims:
        m = emit1(ctx, "reshape", [m], span, shape=_keep_shape(x, axes))
    return emit1(ctx, "add", [s, m], span)


def _float_input(ctx: Ctx, node, x, what: str) -> Tensor:
    return _reduced_input(ctx, node, x, what)


@builtin("logsumexp", "x, axis?:axes, keepdims?:flag", "log(sum(exp(x))), computed stably")
def _logsumexp(ctx: Ctx, node, x, axis=None, keepdims=False):
    x = _float_input(ctx, node, x, "logsumexp")
    return logsumexp_of(ctx, x, axes_of(x, axis, node.span, "logsumexp"), keepdims, node.span)


def _one_axis(x: Tensor, axis: int, span, what: str) -> tuple[int]:
    if x.type.rank == 0:
        raise MetaccError(f"{what} needs at least one axis", span)
    return normalize_axes((axis,), x.type.rank, span, what)


@builtin("softmax", "x, axis?:int", "exp(x) normalised along `axis` (default: the last), computed stably")
def _softmax(ctx: Ctx, node, x, axis=-1):
    x = _float_input(ctx, node, x, "softmax")
    return softmax_of(ctx, x, _one_axis(x, axis, node.span, "softmax"), node.span)


def softmax_of(ctx: Ctx, x: Tensor, axes, span) -> Tensor:
    m = emit1(ctx, "stop_gradient", [emit1(ctx, "reduce_max", [x], span, axes=axes, keepdims=True)], span)
    e = emit1(ctx, "exp", [emit1(ctx, "sub", [x, m], span)], span)
    s = emit1(ctx, "reduce_sum", [e], span, axes=axes, keepdims=True)
    return emit1(ctx, "div", [e, s], span)


def log_softmax_of(ctx: Ctx, x: Tensor, axes, span) -> Tensor:
    return emit1(ctx, "sub", [x, logsumexp_of(ctx, x, axes, True, span)], span)


@builtin("log_softmax", "x, axis?:int", "x - logsumexp(x) along `axis` (default: the last)")
def _log_softmax(ctx: Ctx, node, x, axis=-1):
    x = _float_input(ctx, node, x, "log_softmax")
    return log_softmax_of(ctx, x, _one_axis(x, axis, node.span, "log_softmax"), node.span)


@builtin("cross_entropy", "logits, targets",
         "mean over rows of -sum(targets * log_softmax(logits)); targets are one-hot/probabilities "
         "of the logits' shape, or i64 class labels")
def _cross_entropy(ctx: Ctx, node, logits, targets):
    x = _float_input(ctx, node, logits, "cross_entropy")
    if x.type.rank == 0:
        raise MetaccError("cross_entropy needs logits with a class axis (the last)", node.span)
    last = x.type.rank - 1
    if isinstance(targets, Tensor) and targets.type.dtype == "i64":
        classes = x.type.shape[last]
        if not isinstance(classes, int):
            raise MetaccError("integer labels need a fixed number of classes (the logits' last dim)", node.span,
                              hint="pass one_hot(labels, C) instead")
        if targets.type.shape != x.type.shape[:-1]:
            raise MetaccError(f"labels {targets.type} do not match logits {x.type}", node.span,
                              hint="labels have the logits' shape without the class axis")
        targets = emit1(ctx, "one_hot", [targets], node.span, n=classes, dtype=x.type.dtype)
    t = as_tensor(ctx, targets, x.type.dtype, node.span, "the targets of cross_entropy")
    if t.type.shape != x.type.shape:
        raise MetaccError(f"cross_entropy: targets {t.type} do not match logits {x.type}", node.span,
                          found=f"{t.type} and {x.type}", hint="targets are one-hot rows: one_hot(labels, C)")
    picked = emit1(ctx, "mul", [t, log_softmax_of(ctx, x, (last,), node.span)], node.span)
    nll = emit1(ctx, "neg", [emit1(ctx, "reduce_sum", [picked], node.span, axes=(last,))], node.span)
    return mean_over(ctx, nll, tuple(range(last)), False, node.span)


@builtin("one_hot", "labels, n:int, dtype?:dtype", "rows of the identity picked by i64 labels (float by default)")
def _one_hot(ctx: Ctx, node, labels, n, dtype=None):
    if isinstance(labels, Number) and labels.is_int:
        labels = literal(ctx, labels, "i64", node.span)
    if not (isinstance(labels, Tensor) and labels.type.dtype == "i64"):
        reject(labels, node, "the labels of one_hot", "an i64 tensor", hint="class labels are i64 task fields")
    if n < 1:
        raise MetaccError(f"one_hot needs at least one class, not {n}", node.span)
    return emit1(ctx, "one_hot", [labels], node.span, n=n, dtype=dtype or ctx.default_float)


# ---- batch norm ----------------------------------------------------------------------
# A composite of the primitives above, so every derivative order comes from their rules
# (MAML's second order through a batch-normalised conv net needs nothing new).

def _channel_vector(ctx: Ctx, node, v, x: Tensor, what: str) -> Tensor:
    if isinstance(v, (Tree, Record)):
        reject(v, node, what, "a tensor of one value per channel")
    v = as_tensor(ctx, v, x.type.dtype, node.span, what)
    channels = x.type.shape[-1]
    if v.type.shape != (channels,):
        raise MetaccError(f"batch_norm: {what} is {v.type}, but x {x.type} has {channels} channels (its last axis)",
                          node.span, expected=f"{x.type.dtype}[{channels}]",
                          hint="gamma and beta hold one value per channel")
    return v


def batch_norm_of(ctx: Ctx, x: Tensor, gamma: Tensor, beta: Tensor, eps: float, span) -> Tensor:
    """(x - mean) / sqrt(var + eps) * gamma + beta, the statistics of this x over every axis
    but the last (the biased variance, as Finn et al.'s code and learn2learn use)."""
    axes = tuple(range(x.type.rank - 1))
    mu = mean_over(ctx, x, axes, True, span)
    centred = emit1(ctx, "sub", [x, mu], span)
    var = mean_over(ctx, emit1(ctx, "mul", [centred, centred], span), axes, True, span)
    eps_t = literal(ctx, Number(eps, span, "eps"), x.type.dtype, span)
    scale = emit1(ctx, "div", [gamma, emit1(ctx, "sqrt", [emit1(ctx, "add", [var, eps_t], span)], span)], span)
    return emit1(ctx, "add", [emit1(ctx, "mul", [centred, scale], span), beta], span)


@builtin("batch_norm", "x, gamma, beta, eps?:number",
         "normalise by the statistics of this batch over every axis but the last (channels), "
         "then scale by gamma and shift by beta; eps defaults to 1e-3")
def _batch_norm(ctx: Ctx, node, x, gamma, beta, eps=1e-3):
    if isinstance(x, (Tree, Record, Number)):
        reject(x, node, "the input of batch_norm", "a float tensor [..., channels]")
    x = as_tensor(ctx, x, None, node.span, "the input of batch_norm")
    if not x.type.is_float or x.type.rank < 2:
        raise MetaccError(f"batch_norm needs a float tensor with a batch axis and a channel axis, not {x.type}",
                          node.span, hint="x is [n, channels] or [n, h, w, channels] (NHWC)")
    if not eps > 0:
        raise MetaccError(f"batch_norm: eps must be positive, not {eps}", node.span,
                          hint="eps keeps 1 / sqrt(var + eps) finite for a constant channel; 1e-3 is usual")
    g = _channel_vector(ctx, node, gamma, x, "gamma")
    b = _channel_vector(ctx, node, beta, x, "beta")
    return batch_norm_of(ctx, x, g, b, float(eps), node.span)
