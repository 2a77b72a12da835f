"""A task batch in fixed shards: what one shard computes, and how shards are combined.

A meta function's batched kernel means its per-task rows over the batch. To run
a batch on several machines (metacc.runtime.dask_runner) it is cut into shards
of `shard_size` tasks, [0, s), [s, 2s), ..., a cut that depends on the batch
and the shard size only, never on how many workers there are. Each shard runs
the kernel's ENTRY_ROWS (the same task kernel, rows left unreduced) and sums
its rows exactly as the one-machine entry does (runtime.task_rows); the
client adds the shard sums in shard order and divides by the number of tasks.
So for a given shard size the result is the same, bit for bit, whichever worker
ran which shard and however many there were. With one shard it is the
one-machine call's result bit for bit; with several it differs from it only by
the rounding of a sum taken in another order (`LocalRunner` gives the sharded
result on one machine: the reference a cluster's result equals).

A batch travels either as its arrays (each shard its slice) or as a
`SeededTasks`: a sampler and a seed from which each shard draws its own tasks,
so that only the seed goes over the network.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

from metacc.convergence import check
from metacc.errors import MetaccError
from metacc.program import Arg
from metacc.runtime.task_rows import sum_rows
from metacc.runtime.tasks import check_count
from metacc.runtime.trees import Dims, flatten_arg

DEFAULT_SHARD_SIZE = 1000


def shard_bounds(n_tasks: int, shard_size: int) -> list[tuple[int, int]]:
    """The shards [lo, hi) of a batch: `shard_size` tasks each, the last one what is left."""
    return [(lo, min(lo + shard_size, n_tasks)) for lo in range(0, n_tasks, shard_size)]


# ---- a batch given by a seed ------------------------------------------------------------

def _seed_words(seed) -> tuple[int, ...]:
    words = seed if isinstance(seed, (tuple, list)) else (seed,)
    if not words or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0 for w in words):
        raise MetaccError("SeededTasks: seed must be a non-negative int or a tuple of them", found=repr(seed)[:80],
                          hint="for a training loop use SeededBatches, which gives every step its own seed")
    return tuple(int(w) for w in words)


@dataclass(frozen=True)
class SeededTasks:
    """A task batch named by a sampler and a seed instead of its arrays.

    Shard i of `shard_size` tasks is sample(np.random.default_rng((*seed, i)), n) with
    n its number of tasks, wherever it is drawn: a worker draws its own shards, so that
    only the seed travels. `draw()` gives the whole batch on this machine (the shards
    concatenated). `sample` must be picklable to go to a cluster (a module-level
    function or a functools.partial of one, e.g. partial(sinusoid_tasks, k=10)).
    """
    sample: Callable[[np.random.Generator, int], Any]
    n_tasks: int
    seed: Any = 0
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self):
        if not callable(self.sample):
            raise MetaccError("SeededTasks: sample must be a function (rng, n_tasks) -> task batch",
                              found=type(self.sample).__name__)
        check_count(self.n_tasks, "n_tasks", "SeededTasks")
        check_count(self.shard_size, "shard_size", "SeededTasks")
        object.__setattr__(self, "seed", _seed_words(self.seed))

    @property
    def bounds(self) -> list[tuple[int, int]]:
        return shard_bounds(int(self.n_tasks), int(self.shard_size))

    def shard(self, i: int):
        lo, hi = self.bounds[i]
        return self.sample(np.random.default_rng((*self.seed, i)), hi - lo)

    def draw(self):
        """The whole batch here: every shard drawn and concatenated in shard order."""
        return _concat([self.shard(i) for i in range(len(self.bounds))])


def _concat(trees: list):
    if isinstance(trees[0], dict):
        return {k: _concat([t[k] for t in trees]) for k in trees[0]}
    return np.concatenate([np.asarray(t) for t in trees], axis=0)


@dataclass
class SeededBatches:
    """An iterator of SeededTasks for a training loop: step j has seed (seed, j)."""
    sample: Callable
    n_tasks: int
    seed: int = 0
    shard_size: int = DEFAULT_SHARD_SIZE
    step: int = 0

    def __iter__(self):
        return self

    def __next__(self) -> SeededTasks:
        batch = SeededTasks(self.sample, self.n_tasks, (*_seed_words(self.seed), self.step), self.shard_size)
        self.step += 1
        return batch


# ---- one step's work, cut into shards ---------------------------------------------------

@dataclass
class Job:
    """One call's inputs as shards see them. `shared`: the leaves every shard takes
    (parameters, per-call scalars), `sources[i]`: task argument i as arrays (its leaves,
    sliced per shard) or a SeededTasks, `mask`: per kernel input, is it a task leaf."""
    mask: tuple[bool, ...]
    shared: list
    task_args: list[Arg]
    sources: list           # list of leaves, or SeededTasks
    dims: Dims
    bounds: list[tuple[int, int]]
    n_tasks: int
    flat: list | None = None                      # the whole call's leaves, when at hand

    def shard_input(self, i: int) -> list:
        """What shard i gets besides the shared leaves: per task argument, its leaves
        sliced to the shard, or (SeededTasks, i) to draw them where it runs."""
        lo, hi = self.bounds[i]
        return [(src, i) if isinstance(src, SeededTasks) else [x[lo:hi] for x in src] for src in self.sources]

    def meta(self) -> dict:
        """How a shard reassembles the kernel's inputs (sent with the shared leaves)."""
        return {"mask": self.mask, "task_args": self.task_args, "dims": self.dims}

    def whole(self) -> list:
        """The whole call's leaves on this machine (a SeededTasks drawn here)."""
        if self.flat is None:
            leaves, _ = _task_leaves(self.task_args, [(s, None) if isinstance(s, SeededTasks) else s
                                                      for s in self.sources], self.dims)
            self.flat = _interleave(self.mask, self.shared, leaves)
        return self.flat

    def one_task(self) -> list:
        """The first task alone (to compile and warm a kernel on a worker)."""
        out = []
        for src in self.sources:
            if isinstance(src, SeededTasks):
                out.append((SeededTasks(src.sample, 1, src.seed, 1), 0))
            else:
                out.append([x[:1] for x in src])
        return out


def make_job(fn_args: list[Arg], values: list, mask: tuple[bool, ...], shard_size: int, fn_name: str) -> Job:
    """Check a call's arguments (on the client, before anything is sent) and cut it into shards."""
    dims = Dims()
    shared, task_args, sources, flat_known = [], [], [], True
    seeded = [v for a, v in zip(fn_args, values) if a.kind == "task" and isinstance(v, SeededTasks)]
    for a, v in zip(fn_args, values):
        if a.kind == "static":
            continue
        if a.kind == "task" and isinstance(v, SeededTasks):
            task_args.append(a)
            sources.append(v)
            flat_known = False
        elif a.kind != "task":
            shared += flatten_arg(a, v, dims, None)
    # the task arrays after the shared leaves: their dims are checked against those first
    batch: list = [None, None]
    for a, v in zip(fn_args, values):
        if a.kind == "task" and not isinstance(v, SeededTasks):
            task_args.append(a)
            sources.append(flatten_arg(a, v, dims, batch))
    order = [a.name for a in fn_args if a.kind == "task"]
    pairs = sorted(zip(task_args, sources), key=lambda p: order.index(p[0].name))
    task_args, sources = [p[0] for p in pairs], [p[1] for p in pairs]
    counts = {int(s.n_tasks) for s in seeded} | ({batch[0]} if batch[0] is not None else set())
    if len(counts) > 1:
        raise MetaccError(f"{fn_name}: the task arguments hold different numbers of tasks",
                          found=", ".join(map(str, sorted(counts))))
    n_tasks = counts.pop()
    if n_tasks == 0:
        raise MetaccError(f"{fn_name}: the task batch is empty", found=f"0 tasks in '{batch[1]}'")
    sizes = {int(s.shard_size) for s in seeded}
    if len(sizes) > 1:
        raise MetaccError(f"{fn_name}: the SeededTasks arguments have different shard sizes",
                          found=", ".join(map(str, sorted(sizes))))
    # a seeded batch is drawn shard by shard: its own shards are the call's
    size = sizes.pop() if sizes else shard_size
    job = Job(mask, shared, task_args, sources, dims, shard_bounds(n_tasks, size), n_tasks)
    if flat_known:
        job.flat = _interleave(mask, shared, [x for src in sources for x in src])
    return job


def _interleave(mask, shared: list, task_leaves: list) -> list:
    s, t = iter(shared), iter(task_leaves)
    return [next(t) if b else next(s) for b in mask]


# ---- what a shard computes (on a worker, or here) ---------------------------------------

@dataclass
class ShardResult:
    sums: list          # the mean outputs summed over the shard's tasks (flat for arrays)
    shapes: list        # their shapes
    rows: list          # per-task figures (solver diagnostics), the shard's rows
    n_tasks: int
    seconds: float = 0.0    # spent in this function (drawing, the kernel, the sums): for benchmarks
    where: str = ""         # the process that ran it, when not this one


def _task_leaves(task_args: list[Arg], shard_in: list, dims: Dims) -> tuple[list, int]:
    dims = copy.deepcopy(dims)          # the shared leaves' dims, checked against each shard's tasks
    batch: list = [None, None]
    leaves = []
    for a, src in zip(task_args, shard_in):
        if isinstance(src, tuple):      # (SeededTasks, shard index): drawn here (None: all shards)
            seeded, i = src
            leaves += flatten_arg(a, seeded.draw() if i is None else seeded.shard(i), dims, batch)
        else:
            leaves += src
    n = next(len(x) for x in leaves)
    return leaves, n


def run_shard(module: ModuleType, job_meta: dict, shared: list, shard_in: list) -> ShardResult:
    """One shard: its task leaves (drawn here for a SeededTasks), ENTRY_ROWS, the rows summed
    as the one-machine entry sums them (runtime.task_rows, in task order)."""
    start = time.perf_counter()
    leaves, n = _task_leaves(job_meta["task_args"], shard_in, job_meta["dims"])
    flat = _interleave(job_meta["mask"], shared, leaves)
    outs = module.ENTRY_ROWS(*flat)
    n_diag = len(getattr(module, "DIAGNOSTICS", ()) or ())
    n_user = len(outs) - n_diag
    # a scalar's sum comes back as a scalar, an array's flat (combine() gives it its shape)
    sums = [sum_rows(r)[0] if r.ndim == 1 else sum_rows(r) for r in outs[:n_user]]
    return ShardResult(sums, [r.shape[1:] for r in outs[:n_user]], list(outs[n_user:]), n,
                       time.perf_counter() - start)


def combine(results: list[ShardResult], n_tasks: int) -> list:
    """The call's outputs from its shards, in shard order: sums added one shard after the
    other, then divided by the number of tasks (as the one-machine entry divides)."""
    outs = []
    for j, shape in enumerate(results[0].shapes):
        total = results[0].sums[j]
        for r in results[1:]:
            total = total + r.sums[j]
        mean = total / total.dtype.type(n_tasks)
        outs.append(mean.reshape(shape) if shape else mean)
    for j in range(len(results[0].rows)):
        outs.append(np.concatenate([r.rows[j] for r in results], axis=0))
    return outs


# ---- runners ----------------------------------------------------------------------------

def finish(kernel, job: Job, outs: list, descs) -> list:
    """What a kernel call does after its entry (runtime/kernel.py), for a sharded call:
    solver figures checked and stripped, results checked when check_finite is on."""
    if descs:
        n = len(descs)
        check(descs, outs[len(outs) - n:], batched=True)
        outs = outs[:len(outs) - n]
    if kernel.check_outputs is not None and any(not np.all(np.isfinite(x)) for x in outs):
        # located on this machine: the first task that is not finite, and why
        kernel.check_outputs(kernel, job.whole(), outs)
    return outs


class LocalRunner:
    """The sharded computation on this machine, shard after shard in one process: the
    result a cluster gives for the same shard size, bit for bit (see the module's text).

        loss, g = mod.maml.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=250))
    """

    def __init__(self, shard_size: int = DEFAULT_SHARD_SIZE):
        self.shard_size = check_count(shard_size, "shard_size", "LocalRunner")

    def run(self, kernel, job: Job) -> list:
        mod = kernel.module()
        meta = job.meta()
        results = [run_shard(mod, meta, job.shared, job.shard_input(i)) for i in range(len(job.bounds))]
        return finish(kernel, job, combine(results, job.n_tasks), getattr(mod, "DIAGNOSTICS", ()))

    def __repr__(self) -> str:
        return f"LocalRunner(shard_size={self.shard_size})"
