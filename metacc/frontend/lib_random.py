"""Builtins for explicit randomness: keys are values, draws are functions of keys.

A `key` argument seeds everything; fold_in(key, i) derives independent keys
(one per step, per task, per use), so runs are reproducible and the same in
the interpreter and every backend (metacc.ir.rng).
"""
from __future__ import annotations

from metacc.errors import MetaccError
from metacc.frontend.builtins import builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, literal
from metacc.frontend.lib_math import emit1, softmax_of
from metacc.frontend.values import DimValue, Number, Tensor

_TINY = 1e-20     # keeps log(u) finite when a uniform draw is exactly 0 (representable in f32)


def _key(ctx: Ctx, node, key) -> Tensor:
    if not (isinstance(key, Tensor) and key.type.dtype == "key" and key.type.rank == 0):
        reject(key, node, f"the key of {node.func}", "a random key",
               hint="take an argument `rng: key` and derive keys with fold_in(rng, i)")
    return key


@builtin("fold_in", "key, i", "a new key from a key and a whole number (e.g. the step or task index)")
def _fold_in(ctx: Ctx, node, key, i):
    k = _key(ctx, node, key)
    if isinstance(i, DimValue) and isinstance(i.dim, int):
        i = Number(i.dim, i.origin, i.desc)
    if isinstance(i, Number):
        if not i.is_int:
            raise MetaccError(f"fold_in needs a whole number, not {i.value}", node.span)
        data = literal(ctx, i, "i64", node.span)
    elif isinstance(i, Tensor) and i.type.dtype == "i64" and i.type.rank == 0:
        data = i
    else:
        reject(i, node, "the data of fold_in", "a whole number or an i64 scalar")
    return emit1(ctx, "key_fold", [k, data], node.span)


@builtin("uniform normal", "key, shape:shape, dtype?:dtype", "draws from U[0, 1) / N(0, 1), fixed by the key")
def _draw(ctx: Ctx, node, key, shape, dtype=None):
    dtype = dtype or ctx.default_float
    if dtype not in ("f32", "f64"):
        raise MetaccError(f"{node.func} draws floats, not {dtype}", node.span)
    prim = "rng_uniform" if node.func == "uniform" else "rng_normal"
    return emit1(ctx, prim, [_key(ctx, node, key)], node.span, shape=tuple(shape), dtype=dtype)


def _logits(ctx: Ctx, node, logits, what: str) -> Tensor:
    x = logits if isinstance(logits, Tensor) else as_tensor(ctx, logits, None, node.span, f"the logits of {what}")
    if x.type.rank == 0 or not x.type.is_float:
        raise MetaccError(f"{what} needs float logits with a class axis (the last), not {x.type}", node.span)
    return x


def gumbel_noise(ctx: Ctx, key: Tensor, like: Tensor, span) -> Tensor:
    """-log(-log(u)), u ~ U[0, 1) of like's shape from the key: categorical and
    gumbel_softmax draw the same noise from the same key, so the hard sample of
    gumbel_softmax(k, z, tau, hard=true) is one_hot(categorical(z, k))."""
    dtype = like.type.dtype
    u = emit1(ctx, "rng_uniform", [key], span, shape=like.type.shape, dtype=dtype)
    u = emit1(ctx, "maximum", [u, literal(ctx, Number(_TINY, span, "tiny"), dtype, span)], span)
    return emit1(ctx, "neg", [emit1(ctx, "log", [emit1(ctx, "neg", [emit1(ctx, "log", [u], span)], span)], span)],
                 span)


@builtin("categorical", "logits, key", "a class index per row drawn with probabilities softmax(logits), as i64 "
                                       "(Gumbel-max: argmax of logits plus Gumbel noise)")
def _categorical(ctx: Ctx, node, logits, key):
    x = _logits(ctx, node, logits, "categorical")
    k = _key(ctx, node, key)
    perturbed = emit1(ctx, "add", [x, gumbel_noise(ctx, k, x, node.span)], node.span)
    return emit1(ctx, "argmax", [perturbed], node.span, axis=x.type.rank - 1)


def _temperature(ctx: Ctx, node, tau, dtype: str) -> Tensor:
    if isinstance(tau, Number):
        if not tau.value > 0:
            raise MetaccError(f"the temperature of gumbel_softmax must be positive, not {tau.value}",
                              node.span, hint="e.g. tau=0.5; small values approach one-hot samples")
        return literal(ctx, tau, dtype, node.span)
    if not (isinstance(tau, Tensor) and tau.type.rank == 0 and tau.type.is_float):
        reject(tau, node, "the temperature of gumbel_softmax", "a positive number or a float scalar")
    return tau if tau.type.dtype == dtype else emit1(ctx, "cast", [tau], node.span, dtype=dtype)


@builtin("gumbel_softmax", "key, logits, tau, hard?:flag",
         "a relaxed one-hot sample softmax((logits + g) / tau) along the last axis, g Gumbel noise from the key; "
         "hard=true: the one-hot argmax forward, the relaxed sample's derivative backward (straight-through)")
def _gumbel_softmax(ctx: Ctx, node, key, logits, tau, hard=False):
    if isinstance(logits, Tensor) and logits.type.dtype == "key":
        raise MetaccError("gumbel_softmax takes the key first", node.span,
                          hint="write gumbel_softmax(key, logits, tau), as uniform(key, shape) "
                               "(categorical(logits, key) is the other way round)")
    k = _key(ctx, node, key)
    x = _logits(ctx, node, logits, "gumbel_softmax")
    span, last = node.span, x.type.rank - 1
    perturbed = emit1(ctx, "add", [x, gumbel_noise(ctx, k, x, span)], span)
    scaled = emit1(ctx, "div", [perturbed, _temperature(ctx, node, tau, x.type.dtype)], span)
    soft = softmax_of(ctx, scaled, (last,), span)
    if not hard:
        return soft
    classes = x.type.shape[last]
    if not isinstance(classes, int):
        raise MetaccError(f"gumbel_softmax(hard=true) needs a fixed number of classes, not `{classes}`", span,
                          hint="give the logits' last axis a size, or use the relaxed sample (hard=false)")
    # argmax of the perturbed logits (not of the scaled ones: tau > 0 does not move it, and
    # this is categorical's draw exactly); the relaxed sample carries the derivative
    picked = emit1(ctx, "argmax", [perturbed], span, axis=last)
    one_hot = emit1(ctx, "one_hot", [picked], span, n=classes, dtype=x.type.dtype)
    return emit1(ctx, "straight_through", [one_hot, soft], span)
