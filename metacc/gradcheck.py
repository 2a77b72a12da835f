"""`metacc gradcheck`: compiled derivatives against central finite differences.

Compiles the program in float64, draws a random input (parameter groups from
their initialisers, task data and tensors from a seeded normal, class labels
in [0, 2), dims from --dims), and compares the compiled gradient with
central differences of the compiled value: along random directions and at
random single coordinates. Prints every check and the worst relative error.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

import metacc
from metacc.convergence import ConvergenceWarning
from metacc.errors import MetaccError
from metacc.explain import magic_stops
from metacc.frontend import load
from metacc.ir.walk import all_eqns


@dataclass
class Check:
    what: str
    ad: float
    fd: float
    rel: float


def _random_leaf(rng, field, dims, batch):
    shape = tuple(d if isinstance(d, int) else dims.setdefault(d, 5) for d in field.type.shape)
    if batch:
        shape = (batch,) + shape
    if field.type.dtype == "i64":
        return rng.integers(0, 2, size=shape).astype(np.int64)
    if field.type.dtype == "bool":
        return rng.random(size=shape) < 0.5
    if field.type.dtype == "key":
        return np.uint64(rng.integers(0, 2**63))
    return rng.normal(size=shape)


def _nest(pairs):
    """[('support.x', a), ...] -> {'support': {'x': a}}"""
    out: dict = {}
    for path, value in pairs:
        node = out
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def random_arguments(mod, fn, seed: int, dims: dict[str, int], batch: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    values = {}
    for a in fn.args:
        if a.kind == "static":
            continue
        if a.kind == "params":
            values[a.name] = getattr(mod, a.type_name).init(seed=seed, dtype="f64")
        elif a.kind == "task":
            values[a.name] = _nest([(f.path, _random_leaf(rng, f, dims, batch if fn.kind == "meta" else 0))
                                    for f in a.leaves])
        elif a.default is not None:
            values[a.name] = a.default
        else:
            (leaf,) = a.leaves
            values[a.name] = _random_leaf(rng, leaf, dims, 0)
    return values


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    return [tree]


def _map2(tree, other, f):
    if isinstance(tree, dict):
        return {k: _map2(tree[k], other[k], f) for k in tree}
    return f(tree, other)


def surrogate_constructs(fn_ir) -> list:
    """Equations that make the gradient deliberately differ from the value's derivative:
    stop_gradient (detach, first-order loops) and straight_through. The max-shift of
    logsumexp/softmax is a stop_gradient too, but derivative-neutral: skipped."""
    defs = {v: e for e in fn_ir.eqns for v in e.outs}
    found = []
    for e in fn_ir.eqns:
        if e.prim == "straight_through":
            found.append(e)
        elif e.prim == "stop_gradient":
            src = defs.get(e.ins[0])
            if not (src is not None and src.prim == "reduce_max"):
                found.append(e)
        for sub in e.subfuncs():
            if e.prim != "argmin":      # implicit argmin's own freezing is checked by value
                found += surrogate_constructs(sub)
    return found


def argmin_eqns(fn_ir) -> list:
    return [e for e in all_eqns(fn_ir) if e.prim == "argmin"]


def implicit_solves(fn_ir) -> list:
    return [e for e in argmin_eqns(fn_ir) if e.params.get("implicit")]


def gradcheck(path: str, fn_name: str, wrt=None, seed: int = 0, dims=None, eps: float = 1e-6,
              n_dirs: int = 3, n_coords: int = 10, constants=None, convergence: list | None = None) -> list[Check]:
    """The checks, worst last not guaranteed. `convergence`, when given, receives the
    ConvergenceWarnings the compiled calls raised (one per solver, its worst figure)
    instead of their going through the warnings module."""
    if convergence is None:
        return _gradcheck(path, fn_name, wrt, seed, dims, eps, n_dirs, n_coords, constants)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            return _gradcheck(path, fn_name, wrt, seed, dims, eps, n_dirs, n_coords, constants)
        finally:
            worst: dict = {}
            for w in seen:
                if not isinstance(w.message, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                    continue
                m = w.message
                key = (m.kind, m.where, str(m).split(" did not converge")[0])
                old = worst.get(key)
                if old is None or np.isnan(m.value) or (not np.isnan(old.value) and m.value > old.value):
                    worst[key] = m
            convergence.extend(worst.values())


def _gradcheck(path, fn_name, wrt, seed, dims, eps, n_dirs, n_coords, constants) -> list[Check]:
    program = load(path, float_dtype="f64", constants=constants or None)
    if fn_name not in program.functions:
        raise MetaccError(f"{path} has no function '{fn_name}'",
                          expected="one of: " + ", ".join(program.functions), found=fn_name)
    surrogate = surrogate_constructs(program.functions[fn_name].ir)
    if surrogate:
        e = surrogate[0]
        what = e.prim.replace('_', ' ')
        if e.prim == "stop_gradient" and e.outs[0] in magic_stops(program.functions[fn_name].ir):
            what = "magic: a score-function surrogate, whose gradient is right only in expectation"
        raise MetaccError(f"{fn_name}'s gradient is by design not the derivative of its value "
                          f"({what}), so finite differences cannot check it",
                          e.span, hint="check the same program without stop_gradient / first_order / "
                          "truncate / straight_through; `metacc explain` says which terms they drop")
    fn = program.functions[fn_name]
    if fn.result.kind != "tensor" or fn.result.leaves[0].type.rank != 0:
        # finite differences of a scalar against its gradient is all gradcheck does; the
        # runtime's own "use vjp" hint would point at something gradcheck does not offer
        res = fn.result
        what = (f"an array of shape [{', '.join(map(str, res.leaves[0].type.shape))}]" if res.kind == "tensor"
                else f"{res.type_name} (a {res.kind} group)")
        raise MetaccError(f"gradcheck checks the gradient of a scalar value, and {fn_name} returns {what}",
                          res.span or fn.span,
                          expected="a fn or meta function returning a scalar (f32 or f64)",
                          hint=f"gradcheck a scalar fn of its result instead, e.g. fn check(...) -> f32 "
                               f"{{ return sum({fn_name}(...)) }}; derivatives of non-scalar results come from "
                               f"the Python API (mod.{fn_name}.vjp / .jvp)")
    mod = metacc.compile(program, dtype="f64")
    handle = getattr(mod, fn_name)
    names = list(wrt) if wrt else [a.name for a in fn.args if a.kind == "params"]
    if not names:
        names = [a.name for a in fn.args if a.kind == "tensor" and a.leaves[0].type.is_float]
    values = random_arguments(mod, fn, seed, dict(dims or {}))
    value, grads = handle.value_and_grad(**values, wrt=tuple(names))
    if len(names) == 1:
        grads = (grads,)
    rng = np.random.default_rng(seed + 1)

    def f_at(shift: dict) -> float:
        moved = dict(values)
        for n, d in shift.items():
            moved[n] = _map2(values[n], d, lambda x, y: x + y)
        out = handle(**moved)
        return float(out[0] if fn.aux else out)      # a tuple result: its first is differentiated

    scale = max([1e-12] + [float(np.max(np.abs(x))) for g in grads for x in _leaves(g)])
    checks: list[Check] = []
    for k in range(n_dirs):
        v = {n: _map2(values[n], values[n], lambda x, _: rng.normal(size=np.shape(x))) for n in names}
        ad = sum(float(np.sum(a * b)) for n, g in zip(names, grads) for a, b in zip(_leaves(g), _leaves(v[n])))
        plus = f_at({n: _map2(v[n], v[n], lambda x, _: eps * x) for n in names})
        minus = f_at({n: _map2(v[n], v[n], lambda x, _: -eps * x) for n in names})
        fd = (plus - minus) / (2 * eps)
        checks.append(Check(f"direction {k + 1}", ad, fd, abs(ad - fd) / max(abs(fd), abs(ad), 1e-8)))
    for n, i, idx in _distinct_coordinates(rng, names, grads, n_coords):
        g = _leaves(grads[names.index(n)])[i]
        counter = [0]

        def bump(x, _, sign, i=i, idx=idx):
            out = np.zeros_like(x)
            if counter[0] == i:
                out[idx] = sign * eps
            counter[0] += 1
            return out
        counter[0] = 0
        plus = f_at({n: _map2(values[n], values[n], lambda x, y: bump(x, y, 1.0))})
        counter[0] = 0
        minus = f_at({n: _map2(values[n], values[n], lambda x, y: bump(x, y, -1.0))})
        fd = (plus - minus) / (2 * eps)
        ad = float(g[idx])
        leaf = _leaf_name(fn, n, i)
        checks.append(Check(f"{leaf}[{', '.join(map(str, idx))}]", ad, fd,
                            abs(ad - fd) / max(abs(fd), abs(ad), 1e-3 * scale)))
    return checks


def _distinct_coordinates(rng, names, grads, n_coords: int) -> list[tuple[str, int, tuple]]:
    """n_coords single coordinates, no two the same (fewer when the leaves have fewer).

    A leaf is picked uniformly among those with coordinates left (so a bias or a
    scalar rate is checked as often as a big matrix), then an unused coordinate
    of it; checking one coordinate twice would only repeat a check."""
    leaves = [(n, i, np.shape(g)) for n, gs in zip(names, grads) for i, g in enumerate(_leaves(gs))]
    used: list[set] = [set() for _ in leaves]
    out = []
    for _ in range(n_coords):
        open_ = [j for j, (_, _, shape) in enumerate(leaves) if len(used[j]) < int(np.prod(shape))]
        if not open_:
            break
        j = open_[int(rng.integers(len(open_)))]
        n, i, shape = leaves[j]
        size = int(np.prod(shape))
        free = None if size > 4096 else [c for c in range(size) if c not in used[j]]
        while True:       # rejection only for big leaves, where a repeat is rare
            c = free[int(rng.integers(len(free)))] if free is not None else int(rng.integers(size))
            if c not in used[j]:
                break
        used[j].add(c)
        out.append((n, i, tuple(int(x) for x in np.unravel_index(c, shape))))
    return out


def _leaf_name(fn, arg: str, i: int) -> str:
    a = fn.arg(arg)
    path = a.leaves[i].path
    return f"{arg}.{path}" if path else arg
