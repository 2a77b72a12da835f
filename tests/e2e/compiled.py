"""Shared pieces of the end-to-end tests: compiled example modules and a finite-difference check.

Compiled modules are cached for the whole session (Numba builds each kernel
once; later modules of the same source load it from the disk cache). The
finite differences are taken of the compiled float64 meta-loss itself, so the
only thing trusted is the forward kernel's value.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.tasks import sinusoid_tasks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EPS = 1e-6


@lru_cache(maxsize=None)
def module(name: str, dtype: str = "f64"):
    return metacc.compile(EXAMPLES / f"{name}.meta", dtype=dtype)


def small_tasks(seed: int = 1, n_tasks: int = 3, k: int = 5, q: int = 5) -> dict:
    return sinusoid_tasks(np.random.default_rng(seed), n_tasks, k=k, q=q, dtype="f64")


def moved(groups: tuple, direction: tuple, step: float) -> tuple:
    """groups + step * direction, leaf by leaf (new arrays; the inputs stay as they are)."""
    return tuple({k: np.asarray(g[k]) + step * d[k] for k in g} for g, d in zip(groups, direction))


def random_like(groups: tuple, rng, scales: tuple | None = None) -> tuple:
    scales = scales or (1.0,) * len(groups)
    return tuple({k: s * rng.normal(size=np.shape(v)) for k, v in g.items()} for g, s in zip(groups, scales))


def dot(a: tuple, b: tuple) -> float:
    return float(sum(np.sum(x[k] * y[k]) for x, y in zip(a, b) for k in x))


def check_gradient(value, groups: tuple, grads: tuple, seed: int = 0, n_dirs: int = 3,
                   coords_per_group: int = 4, tol: float = 1e-6, scales: tuple | None = None) -> None:
    """Compare grads with central differences of value(groups) (a float).

    Along n_dirs random directions (all groups at once), and along single
    coordinates of randomly chosen leaves of every group. The error allowed is
    relative to the largest of the derivative and the gradient's scale, since
    the P1 landscape is sharp and sums of many terms lose a few digits.

    scales: a length per group for the directions. A scalar learning rate
    moves a whole weight matrix, so a step of EPS in it crosses ReLU kinks
    where a step of EPS in one weight does not; its directions are shortened
    to keep the difference inside one linear piece.
    """
    scales = scales or (1.0,) * len(groups)
    rng = np.random.default_rng(seed)
    scale = max(1.0, max(float(np.max(np.abs(g[k]))) for g in grads for k in g))

    def fd(direction):
        return (value(moved(groups, direction, EPS)) - value(moved(groups, direction, -EPS))) / (2 * EPS)

    for _ in range(n_dirs):
        v = random_like(groups, rng, scales)
        want, got = fd(v), dot(grads, v)
        assert abs(want - got) <= tol * max(1.0, abs(want), scale), ("direction", want, got)
    for gi, g in enumerate(groups):
        names = sorted(g)
        for _ in range(coords_per_group):
            name = names[int(rng.integers(len(names)))]
            idx = tuple(int(rng.integers(s)) for s in np.shape(g[name]))
            e = tuple({k: np.zeros(np.shape(v)) for k, v in h.items()} for h in groups)
            e[gi][name][idx] = scales[gi]
            want, got = fd(e) / scales[gi], float(np.asarray(grads[gi][name])[idx])
            assert abs(want - got) <= tol * scale, ("coordinate", gi, name, idx, want, got)
