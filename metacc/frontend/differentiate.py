"""`grad(expr, wrt)` and `argmin(p from init: objective) by ...`: closed sub-functions.

grad(expr, wrt) means d/dw [expr with the name wrt rebound to w] at w = wrt,
like `grad(lambda w: expr)(wrt)`: only uses of the name (or field) `wrt` vary;
other values, even equal ones, are constants. It becomes
    grad[fn=<wrt leaves first, then the outer values expr uses -> expr>, n_wrt=...]
whose outputs are the gradients of the wrt leaves. Under @first_order each of
them is wrapped in stop_gradient.

argmin(p from init: objective) by sgd(lr, steps[, tol]) [implicit cg(iters, tol)]
becomes an `argmin` equation whose objective has the p leaves first, then the
outer values it uses; the solver starts from `init`.
"""
from __future__ import annotations

from metacc.errors import MetaccError, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.context import Ctx, text_of
from metacc.frontend.convert import literal, static_int, static_number
from metacc.frontend.dispatch import EXPRESSIONS, lower_expr
from metacc.frontend.frame import Frame
from metacc.frontend.values import DimValue, Number, Record, Tensor, Tree, kind_text, leaf_paths, leaves, rebuild


def _wrt_path(node) -> tuple[str, list[str]] | None:
    """`p` -> ('p', []), `t.support.x` -> ('t', ['support', 'x']); None for anything else."""
    path = []
    while isinstance(node, A.FieldAccess):
        path.insert(0, node.name)
        node = node.obj
    return (node.id, path) if isinstance(node, A.Name) else None


def _replace_at(root, path: list[str], new_sub):
    """root with the sub-value at path (covering some of its leaves) replaced by new_sub."""
    if not path:
        return new_sub
    prefix = ".".join(path)
    paths = leaf_paths(root)
    fresh = iter(leaves(new_sub))
    out = [next(fresh) if (p == prefix or p.startswith(prefix + ".")) else leaf
           for p, leaf in zip(paths, leaves(root))]
    return rebuild(root, out)


def _bind_inputs(sub: Frame, value, name: str):
    """Fresh inputs of `sub` shaped like value (a tensor, group or record)."""
    ins = []
    for path, leaf in zip(leaf_paths(value), leaves(value)):
        if not leaf.type.is_float:
            raise MetaccError(f"cannot differentiate with respect to `{leaf.desc}`: it is {leaf.type}",
                              leaf.origin, hint="only float values have gradients")
        ins.append(Tensor(sub.input(f"{name}.{path}" if path else name, leaf.type), leaf.origin, leaf.desc))
    return rebuild(value, ins)


def _scalar_objective(ctx: Ctx, value, node, dtype: str, what: str) -> Tensor:
    if isinstance(value, Number) and not isinstance(value.value, bool):
        return literal(ctx, value, dtype, node.span)
    if isinstance(value, DimValue):
        raise MetaccError(f"{what} is the size {value.dim}, which does not depend on anything", node.span)
    if not (isinstance(value, Tensor) and value.type.rank == 0 and value.type.is_float):
        raise MetaccError(f"{what} must be a float scalar, not {kind_text(value)}", node.span,
                          expected="f32 or f64", found=kind_text(value),
                          hint="reduce it first, e.g. sum(...) or mean(...)")
    return value


def lower_grad(ctx: Ctx, node: A.Call):
    if len(node.args) != 2 or node.kwargs:
        raise MetaccError(f"grad takes 2 arguments, got {len(node.args) + len(node.kwargs)}", node.span,
                          expected="grad(expr, wrt)", hint="wrt names what to differentiate by: a variable, "
                                                           "a params group or a field such as p.w1")
    expr, wrt = node.args
    where = _wrt_path(wrt)
    if where is None:
        raise MetaccError("the second argument of grad must name a variable", wrt.span,
                          expected="a name such as p, or a field such as p.w1 or t.support.x",
                          found=text_of(wrt.span), hint="assign the value to a name first: `w = ...`")
    root_name, path = where
    target = lower_expr(ctx, wrt)
    if isinstance(target, (Number, DimValue)):
        raise MetaccError(f"cannot differentiate with respect to `{text_of(wrt.span)}`: it is a constant", wrt.span,
                          hint="gradients are taken with respect to arguments and values computed from them")
    sub = Frame(ctx.frame, node.span)
    wrt_in = _bind_inputs(sub, target, text_of(wrt.span))
    env = ctx.env.child()
    env.assign(root_name, _replace_at(ctx.lookup(root_name), path, wrt_in))
    inner = ctx.but(frame=sub, env=env)
    dtype = leaves(target)[0].type.dtype
    y = _scalar_objective(inner, lower_expr(inner, expr), expr, dtype, "the expression given to grad")
    if isinstance(expr, A.Name) and expr.id != root_name and y.atom not in sub.owned:
        # a value computed before the grad(...), `l, acc = f(p)` then grad(l, p): constant in here
        raise MetaccError(f"`{expr.id}` is computed before this grad(...), so it does not vary with "
                          f"`{text_of(wrt.span)}` here: its gradient would be zero", expr.span,
                          hint=f"grad(expr, {text_of(wrt.span)}) differentiates only the uses of "
                               f"`{text_of(wrt.span)}` inside expr: write the computation inside, e.g. "
                               f"grad(loss({text_of(wrt.span)}, ...), {text_of(wrt.span)}), through a one-result "
                               "fn where the loss comes from a tuple result")
    label = expr.func if isinstance(expr, A.Call) else "expr"
    fn = sub.func(f"grad_{label}", [y.atom], node.span)
    outer = [leaf.atom for leaf in leaves(target)]
    outs = ctx.frame.emit("grad", outer + sub.captured_outer(), node.span, fn=fn, n_wrt=len(outer))
    if ctx.first_order:
        outs = [ctx.frame.emit("stop_gradient", [g], node.span)[0] for g in outs]
    return rebuild(target, [Tensor(g, node.span, text_of(node.span)) for g in outs],
                   origin=node.span, desc=text_of(node.span))


# ---- argmin ------------------------------------------------------------------------

# sgd's tol is not a stopping rule (the steps are fixed): the run is accepted when
# |grad F(p*)| / |grad F(p0)| <= tol, else the runtime warns (metacc.convergence)
SOLVERS = {"sgd": {"lr": None, "steps": None, "tol": 1e-4}}
IMPLICIT = {"cg": {"iters": 20, "tol": 1e-8}}
_INT_KEYS = ("steps", "iters")


def _solver(ctx: Ctx, spec: A.SolverSpec, table: dict, role: str) -> dict:
    if spec.name not in table:
        # the settings to write: the required ones (all, where every one has a default)
        usage = " or ".join(f"{name}(" + ", ".join(f"{k}=..." for k in ([k for k, d in keys.items() if d is None]
                                                                       or keys)) + ")"
                            for name, keys in table.items())
        raise MetaccError(f"unknown {role} `{spec.name}`", spec.span, expected=", ".join(table), found=spec.name,
                          hint=did_you_mean(spec.name, table) or f"write {usage}")
    if spec.args:
        raise MetaccError(f"{spec.name} takes keyword arguments only", spec.args[0].span,
                          expected=f"{spec.name}(" + ", ".join(f"{k}=..." for k in table[spec.name]) + ")")
    out: dict = {"kind": spec.name}
    given = {}
    for kw in spec.kwargs:
        if kw.name not in table[spec.name]:
            raise MetaccError(f"{spec.name} has no setting `{kw.name}`", kw.span, expected=", ".join(table[spec.name]),
                              hint=did_you_mean(kw.name, table[spec.name]))
        if kw.name in given:
            raise MetaccError(f"`{kw.name}` is given twice", kw.span)
        given[kw.name] = kw
    for key, default in table[spec.name].items():
        if key not in given:
            if default is None:
                raise MetaccError(f"{spec.name} needs `{key}=`", spec.span,
                                  expected=f"{spec.name}(" + ", ".join(f"{k}=..." for k in table[spec.name]) + ")")
            out[key] = default
            continue
        kw = given[key]
        value = static_int(ctx, kw.value, key) if key in _INT_KEYS else float(static_number(ctx, kw.value, key))
        if value <= 0:
            raise MetaccError(f"`{key}` must be positive, not {value}", kw.span)
        out[key] = value
    return out


def lower_argmin(ctx: Ctx, node: A.Argmin):
    init = lower_expr(ctx, node.init)
    if not isinstance(init, (Tensor, Tree, Record)):
        raise MetaccError(f"argmin starts from a tensor or a params group, not {kind_text(init)}", node.init.span,
                          hint="write `argmin(p from theta: ...)` with theta a variable")
    solver = _solver(ctx, node.solver, SOLVERS, "solver")
    implicit = _solver(ctx, node.implicit, IMPLICIT, "implicit differentiation method") if node.implicit else None
    sub = Frame(ctx.frame, node.span)
    p = _bind_inputs(sub, init, node.var)
    env = ctx.env.child()
    env.assign(node.var, rebuild(p, leaves(p), origin=node.var_span, desc=node.var))
    inner = ctx.but(frame=sub, env=env)
    dtype = leaves(init)[0].type.dtype
    y = _scalar_objective(inner, lower_expr(inner, node.objective), node.objective, dtype, "the objective of argmin")
    fn = sub.func("argmin_objective", [y.atom], node.span)
    outer = [leaf.atom for leaf in leaves(init)]
    outs = ctx.frame.emit("argmin", outer + sub.captured_outer(), node.span, objective=fn, n_p=len(outer),
                          solver=solver, implicit=implicit)
    return rebuild(init, [Tensor(v, node.span, node.var) for v in outs], origin=node.span, desc=text_of(node.span))


EXPRESSIONS[A.Argmin] = lower_argmin
