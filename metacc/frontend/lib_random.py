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
from metacc.frontend.lib_math import emit1
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


@builtin("categorical", "logits, key", "a class index per row drawn with probabilities softmax(logits), as i64 "
                                       "(Gumbel-max: argmax of logits plus Gumbel noise)")
def _categorical(ctx: Ctx, node, logits, key):
    x = as_tensor(ctx, logits, None, node.span, "the logits of categorical") if not isinstance(logits, Tensor) \
        else logits
    if x.type.rank == 0 or not x.type.is_float:
        raise MetaccError(f"categorical needs float logits with a class axis (the last), not {x.type}", node.span)
    k = _key(ctx, node, key)
    span, dtype = node.span, x.type.dtype
    u = emit1(ctx, "rng_uniform", [k], span, shape=x.type.shape, dtype=dtype)
    u = emit1(ctx, "maximum", [u, literal(ctx, Number(_TINY, span, "tiny"), dtype, span)], span)
    gumbel = emit1(ctx, "neg", [emit1(ctx, "log", [emit1(ctx, "neg", [emit1(ctx, "log", [u], span)], span)], span)],
                   span)
    return emit1(ctx, "argmax", [emit1(ctx, "add", [x, gumbel], span)], span, axis=x.type.rank - 1)
