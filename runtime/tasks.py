"""Task samplers and a batcher: the data side of the outer loop.

Every sampler takes a `numpy.random.Generator` that the caller owns and
advances. An int seed is refused on purpose: a sampler that made its own
generator from a seed on every call would hand a training loop the same
tasks at every step, a silent failure that is easy to write and hard to see.

Samplers return the nested mapping that compiled `meta` functions take, with a
leading task axis:

    {'support': {'x': [B, k, 1], 'y': [B, k, 1]},
     'query':   {'x': [B, q, 1], 'y': [B, q, 1]}}
"""
from __future__ import annotations

from dataclasses import dataclass
from math import pi

import numpy as np

from metacc.dtypes import float_dtype
from metacc.errors import MetaccError

DTYPES = {"f32": np.float32, "f64": np.float64}


def as_dtype(dtype, where: str = "tasks") -> type:
    """The NumPy type of any spelling metacc.dtypes accepts ('f32', 'float64', np.float32, ...)."""
    return DTYPES[float_dtype(dtype, where)]


def check_rng(rng, where: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise MetaccError(f"{where}: rng must be a numpy.random.Generator", found=type(rng).__name__,
                          hint="make one generator with np.random.default_rng(seed) and pass it to "
                               "every call, so that each call draws new tasks")
    return rng


def check_count(value, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MetaccError(f"{where}: {name} must be a whole number >= {minimum}", found=repr(value))
    return int(value)


def _check_range(lo_hi, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in lo_hi)
    if not lo < hi:
        raise MetaccError(f"SinusoidFamily: {name} must be a range (lo, hi) with lo < hi", found=repr(lo_hi))
    return lo, hi


@dataclass(frozen=True)
class SinusoidFamily:
    """y = A sin(x - phase) with A, phase and x uniform (WORKLOADS.md P1 by default).

    Split in three so that callers can keep what they need: `draw` picks the
    functions (amplitude and phase per task), `tasks_for` samples support and
    query points of given functions, and `curve` evaluates a function on any
    x (to plot the true curve of a held-out task).
    """
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self):
        for name in ("amplitude", "phase", "x_range"):
            object.__setattr__(self, name, _check_range(getattr(self, name), name))

    def draw(self, rng: np.random.Generator, n_tasks: int) -> dict[str, np.ndarray]:
        """{'amplitude': [B], 'phase': [B]} (float64)."""
        check_rng(rng, "SinusoidFamily.draw")
        n_tasks = check_count(n_tasks, "n_tasks", "SinusoidFamily.draw")
        return {"amplitude": rng.uniform(*self.amplitude, size=n_tasks),
                "phase": rng.uniform(*self.phase, size=n_tasks)}

    @staticmethod
    def curve(functions: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """A sin(x - phase) per task: x of shape [B, n, 1] (or [n, 1], the same points for all tasks)."""
        a = np.asarray(functions["amplitude"], np.float64)[:, None, None]
        ph = np.asarray(functions["phase"], np.float64)[:, None, None]
        return a * np.sin(np.asarray(x, np.float64) - ph)

    def tasks_for(self, rng: np.random.Generator, functions: dict[str, np.ndarray], k: int,
                  q: int | None = None, dtype="f32") -> dict:
        """Support (k points) and query (q points, default k) sets of the given functions."""
        check_rng(rng, "SinusoidFamily.tasks_for")
        k = check_count(k, "k (support points)", "SinusoidFamily.tasks_for")
        q = k if q is None else check_count(q, "q (query points)", "SinusoidFamily.tasks_for")
        dt = as_dtype(dtype, "SinusoidFamily.tasks_for")
        n_tasks = len(functions["amplitude"])
        out = {}
        for split, n in (("support", k), ("query", q)):
            x = rng.uniform(*self.x_range, size=(n_tasks, n, 1))
            # y is computed in float64 from the float64 x, then both are rounded once
            out[split] = {"x": x.astype(dt), "y": self.curve(functions, x).astype(dt)}
        return out

    def sample(self, rng: np.random.Generator, n_tasks: int, k: int, q: int | None = None,
               dtype="f32") -> dict:
        """A batch of n_tasks fresh tasks: draw the functions, then their points."""
        return self.tasks_for(rng, self.draw(rng, n_tasks), k, q, dtype)


SINUSOID = SinusoidFamily()


def sinusoid_tasks(rng: np.random.Generator, n_tasks: int, k: int = 10, q: int | None = None,
                   dtype="f32") -> dict:
    """P1's task distribution: n_tasks tasks with k support and q (default k) query points."""
    return SINUSOID.sample(rng, n_tasks, k, q, dtype)


def linear_regression_tasks(rng: np.random.Generator, n_tasks: int, n: int = 20, d: int = 10,
                            noise: float = 0.0, dtype="f32") -> dict:
    """P6's optimizee data: {'x': [B, n, d], 'y': [B, n, 1]} with y = x w* + noise, x and w* ~ N(0, 1)."""
    check_rng(rng, "linear_regression_tasks")
    n_tasks = check_count(n_tasks, "n_tasks", "linear_regression_tasks")
    n = check_count(n, "n (samples)", "linear_regression_tasks")
    d = check_count(d, "d (dimension)", "linear_regression_tasks")
    if not noise >= 0:
        raise MetaccError("linear_regression_tasks: noise must be >= 0", found=repr(noise))
    dt = as_dtype(dtype, "linear_regression_tasks")
    x = rng.normal(size=(n_tasks, n, d))
    w = rng.normal(size=(n_tasks, d, 1))
    y = x @ w + noise * rng.normal(size=(n_tasks, n, 1))
    return {"x": x.astype(dt), "y": y.astype(dt)}


def _leaves(tree, path: str = ""):
    """(path, array) for every leaf of a nested mapping."""
    if isinstance(tree, dict):
        if not tree:
            raise MetaccError("TaskBatcher: the data has an empty mapping", found=repr(path or "the data"))
        for key, sub in tree.items():
            yield from _leaves(sub, f"{path}.{key}" if path else str(key))
    else:
        yield path, tree


def _rebuild(tree, pick):
    if isinstance(tree, dict):
        return {key: _rebuild(sub, pick) for key, sub in tree.items()}
    return pick(tree)


class TaskBatcher:
    """Batches of tasks cut from arrays the caller holds (a fixed pool of tasks).

    `data` is a nested mapping of arrays sharing their leading (task) axis, in
    the layout a compiled `meta` function takes. Each epoch visits the tasks
    in a fresh order from `rng` (or in order with shuffle=False); every batch
    has exactly batch_size tasks, and the last incomplete batch of an epoch is
    left out (its tasks come up in later epochs) so that each meta-gradient
    averages the same number of tasks.

        batches = TaskBatcher(pool, batch_size=25, rng=np.random.default_rng(0))
        tasks = next(batches)
    """

    def __init__(self, data: dict, batch_size: int, rng: np.random.Generator | None = None,
                 shuffle: bool = True):
        if not isinstance(data, dict):
            raise MetaccError("TaskBatcher: data must be a mapping of arrays with a leading task axis",
                              found=type(data).__name__)
        leaves = list(_leaves(data))
        counts = {}
        for path, arr in leaves:
            if not isinstance(arr, np.ndarray) or arr.ndim == 0:
                raise MetaccError(f"TaskBatcher: '{path}' must be a NumPy array with a leading task axis",
                                  found=type(arr).__name__ if not isinstance(arr, np.ndarray) else "a scalar")
            counts[path] = arr.shape[0]
        if len(set(counts.values())) != 1:
            raise MetaccError("TaskBatcher: every array needs the same number of tasks (leading axis)",
                              found=", ".join(f"{p}: {n}" for p, n in counts.items()))
        self.n_tasks = next(iter(counts.values()))
        self.batch_size = check_count(batch_size, "batch_size", "TaskBatcher")
        if self.batch_size > self.n_tasks:
            raise MetaccError("TaskBatcher: batch_size is larger than the number of tasks",
                              expected=f"at most {self.n_tasks}", found=str(self.batch_size))
        if shuffle:
            check_rng(rng, "TaskBatcher")
        self.data, self.rng, self.shuffle = data, rng, shuffle
        self.epoch = 0
        self._order = np.arange(0)
        self._at = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._at + self.batch_size > len(self._order):
            self._order = self.rng.permutation(self.n_tasks) if self.shuffle else np.arange(self.n_tasks)
            self._at = 0
            self.epoch += 1
        idx = self._order[self._at:self._at + self.batch_size]
        self._at += self.batch_size
        return _rebuild(self.data, lambda arr: arr[idx])
