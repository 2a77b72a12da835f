"""Builtins about derivatives: grad, stop_gradient, straight_through, magic (DiCE),
and the tree reductions (sqnorm, dot) that regularisers and implicit methods use."""
from __future__ import annotations

from metacc.errors import MetaccError
from metacc.frontend.builtins import builtin, raw_builtin, reject
from metacc.frontend.context import Ctx
from metacc.frontend.convert import as_tensor, literal
from metacc.frontend.differentiate import lower_grad
from metacc.frontend.lib_math import emit1
from metacc.frontend.trees import pair, total, tree_unary
from metacc.frontend.values import Number, Record, Tensor, Tree


@raw_builtin("grad", "expr, wrt:node", "the gradient of a float scalar expr with respect to the variable wrt")
def _grad(ctx: Ctx, node):
    return lower_grad(ctx, node)


@builtin("stop_gradient detach", "x", "the same value, with zero derivative at every order")
def _stop_gradient(ctx: Ctx, node, x):
    if isinstance(x, Number):
        return x
    if isinstance(x, Tree):
        return tree_unary(ctx, "stop_gradient", x, node.span)
    if isinstance(x, Record):
        reject(x, node, f"the argument of {node.func}", "a tensor or a params group")
    return emit1(ctx, "stop_gradient", [as_tensor(ctx, x, None, node.span, "the argument")], node.span)


@builtin("straight_through", "hard, surrogate",
         "the value of hard, differentiated as if it were surrogate (e.g. step(z) forward, sigmoid(z) backward)")
def _straight_through(ctx: Ctx, node, hard, surrogate):
    for v, what in ((hard, "the hard value"), (surrogate, "the surrogate")):
        if isinstance(v, (Tree, Record)):
            reject(v, node, f"{what} of straight_through", "a tensor", hint="apply it field by field")
    if not isinstance(surrogate, Tensor):
        raise MetaccError("the surrogate of straight_through must be a tensor that depends on the inputs",
                          node.args[1].span if len(node.args) > 1 else node.span,
                          hint="e.g. straight_through(step(z), sigmoid(z))")
    h = literal(ctx, hard, surrogate.type.dtype, node.span) if isinstance(hard, Number) else \
        as_tensor(ctx, hard, surrogate.type.dtype, node.span, "the hard value")
    return emit1(ctx, "straight_through", [h, surrogate], node.span)


@builtin("magic", "x",
         "DiCE's operator exp(x - stop_gradient(x)): the value 1, the derivative magic(x) * dx at every order; "
         "magic(sum(log_p)) * reward differentiates to the score-function estimator")
def _magic(ctx: Ctx, node, x):
    # Built from exp, sub and stop_gradient, so every order of derivative comes from
    # their rules: d magic(x) = magic(x) dx, again and again (Foerster et al. 2018).
    # The simplifier has no x - x rule and keeps stop_gradient until after the AD
    # transforms, so the value 1 is never folded into a constant that loses the derivative.
    if isinstance(x, Number):
        return Number(1.0, node.span, "magic")      # a constant: value 1, no derivative
    if isinstance(x, (Tree, Record)):
        reject(x, node, "the argument of magic", "a float tensor",
               hint="magic takes the summed log-probability of the samples, e.g. magic(sum(log_p))")
    t = as_tensor(ctx, x, None, node.span, "the argument of magic")
    if not t.type.is_float:
        raise MetaccError(f"magic needs a float tensor (a log-probability), not {t.type}", node.span,
                          hint="cast it first, e.g. f32(...)")
    fixed = emit1(ctx, "stop_gradient", [t], node.span)
    return emit1(ctx, "exp", [emit1(ctx, "sub", [t, fixed], node.span)], node.span)


def _sq(ctx: Ctx, x: Tensor, span) -> Tensor:
    return emit1(ctx, "reduce_sum", [emit1(ctx, "ipow", [x], span, n=2)], span, axes=tuple(range(x.type.rank)))


def _dot(ctx: Ctx, x: Tensor, y: Tensor, span) -> Tensor:
    prod = emit1(ctx, "mul", [x, y], span)
    return emit1(ctx, "reduce_sum", [prod], span, axes=tuple(range(prod.type.rank)))


@builtin("sqnorm", "x", "the squared Euclidean norm: of a tensor, or summed over every field of a params group")
def _sqnorm(ctx: Ctx, node, x):
    if isinstance(x, Tree):
        return total(ctx, [_sq(ctx, leaf, node.span) for leaf in x.leaves], node.span)
    if isinstance(x, Record):
        reject(x, node, "the argument of sqnorm", "a tensor or a params group")
    return _sq(ctx, as_tensor(ctx, x, None, node.span, "the argument of sqnorm"), node.span)


@builtin("dot", "a, b", "sum(a * b): of two tensors, or over the fields of two params groups (paired by name)")
def _dot_builtin(ctx: Ctx, node, a, b):
    if isinstance(a, Tree) and isinstance(b, Tree):
        return total(ctx, [_dot(ctx, x, y, node.span) for _, x, y in pair(a, b, node.span)], node.span)
    for v in (a, b):
        if isinstance(v, (Tree, Record)):
            reject(v, node, "each argument of dot", "a tensor (or both params groups)")
    x = as_tensor(ctx, a, b.type.dtype if isinstance(b, Tensor) else None, node.span, "the first argument of dot")
    y = as_tensor(ctx, b, x.type.dtype, node.span, "the second argument of dot")
    return _dot(ctx, x, y, node.span)
