"""A thin outer loop: sample tasks, take a meta-gradient, update, repeat.

It adds only what every meta-training script retypes: a progress bar (tqdm
when it is installed, a plain line on stderr otherwise), a running loss, and
an evaluation callback every few iterations. The loop it runs is the one a
user would write by hand:

    for it in range(iterations):
        loss, grads = step(params, next_tasks())
        params, state = optimizer.update(grads, state, params)

    theta, log = train(mod.maml.value_and_grad, theta, Adam(1e-3),
                       lambda: sinusoid_tasks(rng, 25, k=10), iterations=2000)
"""
from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime.progress import log_compiles
from metacc.runtime.tasks import check_count


@dataclass
class History:
    """What a run measured: the meta-loss of every iteration, the evaluations
    as (iteration, result) pairs, and the wall time of the loop in seconds."""
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0


class _LineBar:
    """The fallback progress bar: one line on a stream, redrawn at most 5 times a second."""

    def __init__(self, total: int, desc: str, stream=None):
        self.total, self.desc, self.n = total, desc, 0
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self._start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= 0.2 or self.n >= self.total:
            self._last = now
            self._draw(now)

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self.postfix = text

    def write(self, text: str, file=None) -> None:
        """A message on its own line above the bar (tqdm.write's signature); the bar is redrawn."""
        self.stream.write("\r" + text.ljust(60) + "\n")
        self._draw(time.perf_counter())

    def _draw(self, now: float) -> None:
        rate = self.n / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.desc}: {self.n}/{self.total} [{now - self._start:.0f}s, "
                          f"{rate:.0f} it/s] {self.postfix}   ")
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()


def progress_bar(total: int, desc: str = "meta-train", enabled: bool = True):
    """A tqdm bar when tqdm is installed, else the plain fallback; None when disabled."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LineBar(total, desc)
    return tqdm(total=total, desc=desc, dynamic_ncols=True)


def bar_writer(bar) -> Callable[[str], None]:
    """Print a line above a bar without breaking it (tqdm.write, or the fallback's own)."""
    return lambda text: bar.write(text, file=sys.stderr)


def _next_tasks(tasks) -> Callable[[], Any]:
    """A callable giving the next task batch: tasks may be a callable or an iterator."""
    if callable(tasks):
        return tasks
    if hasattr(tasks, "__next__"):
        return lambda: next(tasks)
    raise MetaccError("train: tasks must be a function returning a task batch, or an iterator of batches",
                      found=type(tasks).__name__,
                      hint="for example lambda: sinusoid_tasks(rng, 25, k=10), or a TaskBatcher")


def train(step: Callable, params, optimizer, tasks, iterations: int, *,
          evaluate: Callable | None = None, eval_every: int = 0, progress: bool = True,
          desc: str = "meta-train", state=None):
    """Run `iterations` outer steps; return (params, History).

    step(params, tasks) -> (loss, grads): a compiled value_and_grad such as
    `mod.maml.value_and_grad`, or a lambda around one for several groups.
    optimizer: has init(params) and update(grads, state, params) (metacc.runtime.optim).
    tasks: a function returning the next batch, or an iterator of batches.
    evaluate(params, iteration) -> anything: called every eval_every
    iterations (0: never) and after the last one; its results go to
    History.evals, and a float result is shown on the bar.
    progress: a bar, and a line when a kernel is compiled or loaded from the
    cache on its first call (metacc.runtime.progress), so that the seconds
    a first build takes are not spent at 0/iterations without a word.
    state: an optimizer state to resume from (default optimizer.init(params)).
    """
    iterations = check_count(iterations, "iterations", "train", minimum=0)
    eval_every = check_count(eval_every, "eval_every", "train", minimum=0)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise MetaccError("train: optimizer needs init(params) and update(grads, state, params)",
                          found=type(optimizer).__name__, hint="use metacc.runtime.optim.Adam or SGD")
    next_tasks = _next_tasks(tasks)
    state = optimizer.init(params) if state is None else state
    history = History()
    bar = progress_bar(iterations, desc, progress)
    shown_eval = ""
    messages = log_compiles(bar_writer(bar)) if bar is not None else nullcontext()
    messages.__enter__()
    start = time.perf_counter()
    try:
        for it in range(1, iterations + 1):
            loss, grads = step(params, next_tasks())
            if isinstance(loss, tuple):     # a tuple result (loss, acc, ...): train on the first
                loss = loss[0]
            loss = float(loss)
            if not np.isfinite(loss):
                raise MetaccError(f"train: the meta-loss is not finite at iteration {it}",
                                  found=repr(loss), hint="lower the outer or inner learning rate")
            params, state = optimizer.update(grads, state, params)
            history.losses.append(loss)
            if evaluate is not None and ((eval_every and it % eval_every == 0) or it == iterations):
                result = evaluate(params, it)
                history.evals.append((it, result))
                if isinstance(result, (float, int, np.floating)):
                    shown_eval = f" eval {float(result):.4g}"
            if bar is not None:
                # a running mean over the last 100 steps: one batch's loss is noisy
                # refresh=False: tqdm redraws on its own clock, not on every step
                bar.set_postfix_str(f"loss {np.mean(history.losses[-100:]):.4g}{shown_eval}", refresh=False)
                bar.update(1)
    finally:
        messages.__exit__(None, None, None)
        if bar is not None:
            bar.close()
        history.seconds = time.perf_counter() - start
    return params, history
