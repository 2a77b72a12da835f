"""What the example drivers share: their flags, the meta-training loop, the lines they print.

A driver (examples/NAME.py) compiles NAME.meta, says what one step of
meta-training is (a kernel's value_and_grad) and what it prints beyond the
meta-loss; the rest is here. `python examples/NAME.py` finds this file
because Python puts a script's own folder first on sys.path: copy it along
with a driver.

Every driver samples its tasks from one generator seeded with --seed, and
draws held-out tasks from another ([seed, salt]), so the figures it prints
are the same on every run of the same build.
"""
from __future__ import annotations

import argparse

import numpy as np

from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train


def flags(doc: str, *, iterations: int, meta_batch: int = 25, inner_steps: int | None = None,
          alpha: float | None = None, batch_of: str = "tasks") -> argparse.ArgumentParser:
    """The flags the drivers have in common (a driver adds its own, then parses).

    doc: the driver's docstring, whose first line becomes the --help text;
    inner_steps and alpha: only for programs with an inner loop of K steps of rate alpha;
    batch_of: what --meta-batch counts."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=iterations, help="outer steps")
    ap.add_argument("--meta-batch", type=int, default=meta_batch, help=f"{batch_of} per outer step")
    if inner_steps is not None:
        ap.add_argument("--inner-steps", type=int, default=inner_steps)
    if alpha is not None:
        ap.add_argument("--alpha", type=float, default=alpha, help="inner learning rate (see the docstring)")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def sinusoid_10_shot(rng: np.random.Generator, n_tasks: int, dtype: str) -> dict:
    """P1's tasks: sinusoids with 10 support and 10 query points each."""
    return sinusoid_tasks(rng, n_tasks, k=10, dtype=dtype)


def meta_train(args, step, params, optimizer, sample=sinusoid_10_shot):
    """args.iterations optimizer steps on step(params, tasks) -> (loss, grads); returns (params, History).

    Each step sees args.meta_batch fresh tasks, sample(rng, n_tasks, dtype), and
    one compiled call computes the mean meta-gradient of the whole batch."""
    rng = np.random.default_rng(args.seed)
    return train(step, params, optimizer, lambda: sample(rng, args.meta_batch, args.dtype), args.iterations)


def report(log, what: str = "meta-loss", digits: int = 3, then: str = "") -> None:
    """The line docs/regenerate.py reads the figures from: the mean loss of the first and of
    the last 10 iterations (`then` goes after the seconds)."""
    first, last = np.mean(log.losses[:10]), np.mean(log.losses[-10:])
    print(f"{what}: first 10 iterations {first:.{digits}f}, last 10 {last:.{digits}f} "
          f"({log.seconds:.1f} s){then}")


def held_out_sinusoids(family, seed: int, salt: int, n_tasks: int, dtype: str) -> dict:
    """Tasks the training never saw (their own generator), 10 shots and 100 query points each."""
    return family.sample(np.random.default_rng([seed, salt]), n_tasks, k=10, q=100, dtype=dtype)


def zero_mse(tasks: dict) -> float:
    """What predicting 0 everywhere scores on the query points: the floor a model must beat."""
    return float(np.mean(np.asarray(tasks["query"]["y"], np.float64) ** 2))
