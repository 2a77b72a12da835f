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

Parameters that are device arrays (a module compiled with target='cuda' returns
gradients on the device for them) are updated on the device by the kernels of
metacc.runtime.device: the training loop never copies them back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime import device
from metacc.runtime.device import DeviceView, is_device_array


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
    return [(p, DeviceView(v).shape if is_device_array(v) else np.shape(v)) for p, v in _paths(tree)]


def _zeros(p):
    return device.zeros_like(p) if is_device_array(p) else np.zeros_like(np.asarray(p))


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
    placed = {is_device_array(leaf) for _, leaf in leaves}
    if len(placed) > 1:
        raise MetaccError(f"{where}: some parameters are device arrays and some are not",
                          found=", ".join(p for p, leaf in leaves if is_device_array(leaf)) + " on the device",
                          hint="move all of them to the device (numba.cuda.to_device) or none")
    for path, leaf in leaves:
        if is_device_array(leaf):
            if DeviceView(leaf).dtype not in (np.float32, np.float64):
                raise MetaccError(f"{where}: parameter '{path}' must be a float32 or float64 array",
                                  found=f"device array of {DeviceView(leaf).dtype}")
            continue
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
    on_device = {p: is_device_array(v) for p, v in _paths(params)}
    for path, g in _paths(grads):
        if is_device_array(g) != on_device[path]:
            where_p = "on the device" if on_device[path] else "on the host"
            raise MetaccError(f"{where}: parameter '{path}' is {where_p} but its gradient is not",
                              hint="keep parameters and gradients together: a cuda module returns gradients "
                                   "on the device when the parameters are device arrays")
        if not (device.all_finite(g) if is_device_array(g) else np.all(np.isfinite(g))):
            raise MetaccError(f"{where}: the gradient of '{path}' is not finite at step {step}",
                              hint="lower the learning rate, or check the inner loop for overflow")


def _on_device(params) -> bool:
    return any(is_device_array(v) for _, v in _paths(params))


def _pick(tree, i: int):
    """The i-th of the tuples at the leaves of a tree _map built."""
    if isinstance(tree, dict):
        return {k: _pick(v, i) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_pick(v, i) for v in tree]
    if isinstance(tree, tuple) and not _is_result(tree):
        return tuple(_pick(v, i) for v in tree)
    return tree[i]


def _is_result(t: tuple) -> bool:
    # a leaf's result: a tuple of device arrays (a tuple of parameter groups holds dicts)
    return all(is_device_array(x) for x in t)


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
        return SGDState(0, _map(_zeros, params))

    def update(self, grads, state: "SGDState", params):
        check_params(params, "SGD.update")
        check_grads(grads, params, "SGD.update", state.step + 1)
        mu = self.momentum
        if _on_device(params):
            pairs = _map(lambda p, b, g: device.sgd_update(p, b, g, self.lr, mu), params, state.buffer, grads)
            return _pick(pairs, 0), SGDState(state.step + 1, _pick(pairs, 1))
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
        return AdamState(0, _map(_zeros, params), _map(_zeros, params))

    def update(self, grads, state: "AdamState", params):
        check_params(params, "Adam.update")
        t = state.step + 1
        check_grads(grads, params, "Adam.update", t)
        b1, b2 = self.b1, self.b2
        # the bias corrections are Python floats, so float32 moments stay float32
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        if _on_device(params):
            triples = _map(lambda p, m, v, g: device.adam_update(p, m, v, g, self.lr, b1, b2, c1, c2, self.eps),
                           params, state.m, state.v, grads)
            return _pick(triples, 0), AdamState(t, _pick(triples, 1), _pick(triples, 2))
        m = _map(lambda m, g: _like(b1 * m + (1 - b1) * g, m), state.m, grads)
        v = _map(lambda v, g: _like(b2 * v + (1 - b2) * np.square(g), v), state.v, grads)
        new = _map(lambda p, m, v: _like(p - self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps), p),
                   params, m, v)
        return new, AdamState(t, m, v)


@dataclass(frozen=True)
class AdamState:
    step: int
    m: Any
    v: Any
