"""Running the tasks of a batch on several threads.

The task kernels are compiled with `nogil=True`, so plain Python threads run
them in parallel. (A `prange` wrapper would do the same from inside Numba,
but Numba then compiles the whole task kernel a second time inside the
parallel region: 22 s instead of 7 s for P1's meta-gradient at K = 1.)
Which thread runs which task never changes a result: each task writes its
own row, and rows are combined afterwards in task order.

The threads are persistent and hand work over through flags in native code
(runtime.spin), not through a queue: a sleeping thread takes 20–80 µs to
wake here, as long as a small batch's share of work. After a job a worker
spins on its flag, with the GIL released, for METACC_SPIN_US (2,000 µs by
default), then blocks on a condition, so an idle process spins no core.
The caller's own kernel starts the workers (spin.release_workers), once it
has released the GIL, so that no thread waits for the GIL the other holds.
"""
from __future__ import annotations

import os
import threading
import time

import numba
import numpy as np
from numba.np.ufunc import parallel as _parallel

from metacc.runtime import spin

FLAGS = np.zeros(2 * spin.STRIDE * (numba.config.NUMBA_NUM_THREADS + 1), np.int64)
"""The pool's flags (layout in runtime.spin); every batched kernel call gets it."""


def n_workers(n_tasks: int) -> int:
    """Workers for a batch: Numba's thread count (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    # the threading layer's own per-thread count: numba.get_num_threads() around it takes
    # two process-wide locks first, a few microseconds of a small batch's call
    got = _parallel._get_num_threads() if _parallel._is_initialized else 0
    if got <= 0:
        got = numba.get_num_threads()      # starts the threading layer, or explains
    return max(1, min(got, n_tasks))


def share(n_tasks: int, n_workers: int, worker: int) -> tuple[int, int]:
    """The contiguous range of tasks [lo, hi) that `worker` runs."""
    return worker * n_tasks // n_workers, (worker + 1) * n_tasks // n_workers


def _spin_reads() -> int:
    """How many flag reads make METACC_SPIN_US microseconds on this machine."""
    seconds = float(os.environ.get("METACC_SPIN_US", "2000")) * 1e-6
    probe = 20_000
    spin.wait_change(FLAGS, 1, FLAGS[1], 1000)         # compiled or loaded before timing
    best = float("inf")
    for _ in range(5):             # the fastest of a few: a busy machine only slows a probe
        t = time.perf_counter()
        spin.wait_change(FLAGS, 1, FLAGS[1], probe)    # flag 1 stays put: `probe` reads
        best = min(best, time.perf_counter() - t)
    return max(1, int(seconds / max(best / probe, 1e-10)))


class _Pool:
    """Workers 1, 2, ... (the caller is worker 0), started as batches need them."""

    def __init__(self):
        self.spins = _spin_reads()
        self.cond = threading.Condition()
        self.busy = threading.Lock()       # one batch at a time
        self.job = 0                       # the last job number handed out
        self.work = None
        self.errors: list[BaseException] = []
        self.sleepers = 0                  # workers blocked on cond
        self.threads: list[threading.Thread] = []

    def ensure(self, n: int) -> None:
        while len(self.threads) < n - 1:
            i = len(self.threads) + 1
            # its go word read here, before any job for it is posted: read by the new
            # thread itself, it could already hold the first job, taken for an old one
            t = threading.Thread(target=self._serve, args=(i, int(FLAGS[spin.go(i)])),
                                 name=f"metacc-{i}", daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, i: int, seen: int) -> None:
        """Worker i's loop; `seen`: the last job it must not run (again)."""
        flags, g = FLAGS, spin.go(i)
        job = spin.wait_change(flags, g, seen, self.spins)
        while True:
            if job == seen:
                # nothing for a while: block until the caller posts a job
                if spin.try_sleep(flags, g, seen):
                    with self.cond:
                        self.sleepers += 1
                        while flags[g] == spin.ASLEEP:
                            self.cond.wait(1.0)
                        self.sleepers -= 1
                job = spin.wait_change(flags, g, seen, self.spins)
                continue
            try:
                self.work(i, 0)
            except BaseException as e:    # noqa: BLE001 -- re-raised in the caller's thread
                self.errors.append(e)
            seen = job
            job = spin.finish_and_wait(flags, i, seen, self.spins)
            if job == spin.WAITING:
                with self.cond:
                    self.cond.notify_all()
                job = spin.wait_change(flags, g, seen, self.spins)

    def _wake_sleepers(self, n: int, job: int) -> None:
        with self.cond:
            for i in range(1, n):
                if FLAGS[spin.go(i)] == spin.ASLEEP:
                    FLAGS[spin.go(i)] = job
            self.cond.notify_all()

    def run(self, work, n: int) -> None:
        self.ensure(n)
        self.work, self.errors = work, []
        self.job += 1
        job = self.job
        FLAGS[0], FLAGS[1] = n, 0
        if self.sleepers:
            self._wake_sleepers(n, job)
        try:
            work(0, job)              # its kernel starts workers 1..n-1 (spin.release_workers)
        except BaseException:
            spin.release_workers(FLAGS, job)   # in case it failed before its kernel began
            raise
        finally:
            if FLAGS[1]:
                self._wake_sleepers(n, job)
            if not spin.collect(FLAGS, job, self.spins):
                for i in range(1, n):
                    if spin.claim_wait(FLAGS, i, job):
                        with self.cond:
                            while FLAGS[spin.done(i)] != job:
                                self.cond.wait(1.0)
        if self.errors:
            raise self.errors[0]


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _pool
    _pool = None                  # its threads did not survive the fork
    FLAGS[:] = 0


os.register_at_fork(after_in_child=_reset_after_fork)


def _one_after_another(work, n: int) -> None:
    """Every share in the caller's thread, none of them starting workers (pool_job 0)."""
    for w in range(n):
        work(w, 0)


def run(work, n: int) -> None:
    """work(0, job), ..., work(n - 1, 0) concurrently; the caller's thread runs
    work(0, job), whose kernel must call spin.release_workers(FLAGS, job) (the
    generated batched kernels do, given `pool_flags, pool_job`)."""
    global _pool
    if n <= 1:
        work(0, 0)
        return
    if n > numba.config.NUMBA_NUM_THREADS:       # more shares than FLAGS has room for
        _one_after_another(work, n)
        return
    with _pool_lock:
        if _pool is None:
            _pool = _Pool()
        pool = _pool
    if not pool.busy.acquire(blocking=False):
        # another thread's batch holds the pool (or this is a nested call): run the shares here
        _one_after_another(work, n)
        return
    try:
        pool.run(work, n)
    finally:
        pool.busy.release()


_local = threading.local()


def workspace(shape, dtype) -> np.ndarray:
    """A scratch array kept between calls, one set per calling thread.

    Kernels overwrite their workspace before reading it, so it can be reused
    as it is; fresh memory would cost page faults on every call (a batch's
    workspaces are a few hundred kilobytes). Calls from different user threads
    get different arrays.
    """
    cache = getattr(_local, "arrays", None)
    if cache is None:
        cache = _local.arrays = {}
    key = (shape, np.dtype(dtype).str)
    arr = cache.get(key)
    if arr is None:
        if len(cache) >= 16:              # shapes change rarely; keep the most recent ones
            cache.pop(next(iter(cache)))
        arr = cache[key] = np.empty(shape, dtype)
    return arr


def workspaces(n_workers: int, sizes: tuple, dtypes: tuple) -> tuple:
    """A batch's workspaces, one [n_workers, size] array per dtype (workspace()'s, looked up
    once for the set: this runs on every call)."""
    sets = getattr(_local, "sets", None)
    if sets is None:
        sets = _local.sets = {}
    key = (n_workers, sizes, dtypes)
    got = sets.get(key)
    if got is None:
        if len(sets) >= 16:
            sets.pop(next(iter(sets)))
        got = sets[key] = tuple(workspace((n_workers, n), dt) for n, dt in zip(sizes, dtypes))
    return got
