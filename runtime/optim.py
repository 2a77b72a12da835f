"""Outer-loop optimizers on parameter groups, written functionally.

Parameters are values (DESIGN.md, principle 2): a parameter group is a dict
of arrays, and several groups trained together (theta and Meta-SGD's rates)
are a tuple of dicts, exactly as `value_and_grad(..., wrt=(...))` returns
their gradients. An update returns new parameters and a new state and never
writes into its inputs, so a caller may keep the old values (to evaluate, to
compare, to roll back) without copying.

    adam = Adam(lr=1e-3)
    state = adam.init(params)
    params, state = adam.update(grads, state, params)

Arithmetic happens in each parameter's own dtype, so float32 parameters stay
float32 and can go straight back into a float32 kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from metacc.errors import MetaccError


def _paths(tree, path: str = ""):
    """(path, leaf) pairs in a fixed order: dict keys sorted, tuples by position."""
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from _paths(tree[key], f"{path}.{key}" if path else str(key))
    elif isinstance(tree, (tuple, list)):
        for i, sub in enumerate(tree):
            yield from _paths(sub, f"{path}[{i}]")
    else:
        yield path, tree


def _map(fn, tree, *others):
    """fn over matching leaves of trees of the same structure, rebuilding the first's structure."""
    if isinstance(tree, dict):
        return {k: _map(fn, tree[k], *(o[k] for o in others)) for k in tree}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_map(fn, t, *(o[i] for o in others)) for i, t in enumerate(tree))
    return fn(tree, *others)


def _structure(tree) -> list[tuple[str, tuple]]:
    return [(p, np.shape(v)) for p, v in _paths(tree)]


def _hyper(owner, name: str) -> float:
    """A hyperparameter as a finite real number: not a bool, a string or an array."""
    value = getattr(owner, name)
    kind = type(owner).__name__
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise MetaccError(f"{kind}: {name} must be a finite number", found=repr(value)[:80])
    return float(value)


def check_params(params, where: str) -> None:
    leaves = list(_paths(params))
    if not leaves or not isinstance(params, (dict, tuple, list)):
        raise MetaccError(f"{where}: parameters must be a dict of arrays (a parameter group) "
                          "or a tuple of such dicts", found=type(params).__name__)
    for path, leaf in leaves:
        if not (isinstance(leaf, np.ndarray) or np.isscalar(leaf)) or \
                np.asarray(leaf).dtype not in (np.float32, np.float64):
            raise MetaccError(f"{where}: parameter '{path}' must be a float32 or float64 array",
                              found=f"{type(leaf).__name__} of {np.asarray(leaf).dtype}")


def check_grads(grads, params, where: str, step: int) -> None:
    """Gradients must pair with the parameters leaf for leaf and be finite."""
    got, want = _structure(grads), _structure(params)
    if got != want:
        missing = sorted({p for p, _ in want} - {p for p, _ in got})
        extra = sorted({p for p, _ in got} - {p for p, _ in want})
        shapes = [f"{p}: {s} vs {dict(want).get(p)}" for p, s in got if p in dict(want) and dict(want)[p] != s]
        raise MetaccError(f"{where}: the gradients do not match the parameters",
                          found="; ".join(filter(None, [missing and "missing " + ", ".join(missing),
                                                        extra and "unexpected " + ", ".join(extra),
                                                        shapes and "shapes " + ", ".join(shapes)])),
                          hint="pass the gradient tree that value_and_grad returned for these parameters")
    for path, g in _paths(grads):
        if not np.all(np.isfinite(g)):
            raise MetaccError(f"{where}: the gradient of '{path}' is not finite at step {step}",
                              hint="lower the learning rate, or check the inner loop for overflow")


def _like(value, param):
    """A result in the parameter's dtype (and a 0-d array for a scalar parameter)."""
    return np.asarray(value, dtype=np.asarray(param).dtype)


@dataclass(frozen=True)
class SGD:
    """p <- p - lr * (g + momentum * buffer) with heavy-ball momentum (0: plain SGD)."""
    lr: float = 1e-2
    momentum: float = 0.0

    def __post_init__(self):
        _hyper(self, "lr"), _hyper(self, "momentum")
        if not self.lr > 0:
            raise MetaccError("SGD: lr must be > 0", found=repr(self.lr))
        if not 0 <= self.momentum < 1:
            raise MetaccError("SGD: momentum must be in [0, 1)", found=repr(self.momentum))

    def init(self, params) -> "SGDState":
        check_params(params, "SGD.init")
        return SGDState(0, _map(lambda p: np.zeros_like(np.asarray(p)), params))

    def update(self, grads, state: "SGDState", params):
        check_params(params, "SGD.update")
        check_grads(grads, params, "SGD.update", state.step + 1)
        mu = self.momentum
        buf = _map(lambda b, g: _like(mu * b + g, b), state.buffer, grads)
        new = _map(lambda p, b: _like(p - self.lr * b, p), params, buf)
        return new, SGDState(state.step + 1, buf)


@dataclass(frozen=True)
class SGDState:
    step: int
    buffer: Any


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with bias-corrected moments:

        m <- b1 m + (1 - b1) g        v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        for name in ("lr", "b1", "b2", "eps"):
            _hyper(self, name)
        if not self.lr > 0:
            raise MetaccError("Adam: lr must be > 0", found=repr(self.lr))
        for name in ("b1", "b2"):
            if not 0 <= getattr(self, name) < 1:
                raise MetaccError(f"Adam: {name} must be in [0, 1)", found=repr(getattr(self, name)))
        if not self.eps > 0:
            raise MetaccError("Adam: eps must be > 0", found=repr(self.eps))

    def init(self, params) -> "AdamState":
        check_params(params, "Adam.init")
        zeros = lambda p: np.zeros_like(np.asarray(p))   # noqa: E731
        return AdamState(0, _map(zeros, params), _map(zeros, params))

    def update(self, grads, state: "AdamState", params):
        check_params(params, "Adam.update")
        t = state.step + 1
        check_grads(grads, params, "Adam.update", t)
        b1, b2 = self.b1, self.b2
        m = _map(lambda m, g: _like(b1 * m + (1 - b1) * g, m), state.m, grads)
        v = _map(lambda v, g: _like(b2 * v + (1 - b2) * np.square(g), v), state.v, grads)
        # the bias corrections are Python floats, so float32 moments stay float32
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        new = _map(lambda p, m, v: _like(p - self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps), p),
                   params, m, v)
        return new, AdamState(t, m, v)


@dataclass(frozen=True)
class AdamState:
    step: int
    m: Any
    v: Any
