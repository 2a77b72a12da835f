"""Builtins for network layers written from existing primitives: batch norm.

Composites only, so every derivative order comes from the primitives' rules
(MAML's second order through a batch-normalised conv net needs nothing new).
"""
from __future__ import annotations

from metacc.errors import MetaccError
from metacc.frontend.builtins import builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, literal
from metacc.frontend.lib_math import emit1, mean_over
from metacc.frontend.values import Number, Record, Tensor, Tree


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
