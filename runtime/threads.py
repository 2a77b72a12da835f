"""Running the tasks of a batch on several threads.

The task kernels are compiled with `nogil=True`, so plain Python threads run
them in parallel. (A `prange` wrapper would do the same from inside Numba,
but Numba then compiles the whole task kernel a second time inside the
parallel region: 22 s instead of 7 s for P1's meta-gradient at K = 1.)
Which thread runs which task never changes a result: each task writes its
own row, and rows are combined afterwards in task order.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def n_workers(n_tasks: int) -> int:
    """Workers for a batch: Numba's thread count (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    return max(1, min(numba.get_num_threads(), n_tasks))


def share(n_tasks: int, n_workers: int, worker: int) -> tuple[int, int]:
    """The contiguous range of tasks [lo, hi) that `worker` runs."""
    return worker * n_tasks // n_workers, (worker + 1) * n_tasks // n_workers


def run(work, n: int) -> None:
    """work(0), ..., work(n - 1) concurrently; the caller's thread runs work(0)."""
    global _pool, _pool_size
    if n <= 1:
        work(0)
        return
    with _lock:
        if _pool is None or _pool_size < n - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="metacc")
            _pool_size = n - 1
        pool = _pool
    futures = [pool.submit(work, i) for i in range(1, n)]
    try:
        work(0)
    finally:
        for f in futures:
            f.result()


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
