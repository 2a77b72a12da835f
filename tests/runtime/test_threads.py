"""The batch runner's persistent threads (runtime.threads, runtime.spin): every
share runs exactly once, on the thread meant for it, whether the workers were
spinning or asleep; errors reach the caller; concurrent callers and forked
children still get every row."""
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numba
import numpy as np
import pytest

from metacc.runtime import spin, threads


@numba.njit(nogil=True, cache=False)
def _rows(pool_flags, pool_job, out, lo, hi, stamp):
    """A stand-in for a batched task kernel: starts the workers, then fills its rows."""
    spin.release_workers(pool_flags, pool_job)
    for t in range(lo, hi):
        out[t] = t * t + stamp


def _batch(n_tasks, n, stamp=0.0, fail_on=None):
    out = np.full(n_tasks, -1.0)
    ran_on = {}

    def work(worker, pool_job):
        ran_on[worker] = threading.get_ident()
        if worker == fail_on:
            raise RuntimeError(f"share {worker} failed")
        lo, hi = threads.share(n_tasks, n, worker)
        _rows(threads.FLAGS, pool_job, out, lo, hi, stamp)

    threads.run(work, n)
    return out, ran_on


def _expected(n_tasks, stamp=0.0):
    return np.arange(n_tasks, dtype=np.float64) ** 2 + stamp


@pytest.fixture
def pool_spins():
    """Set the pool's spin budget (in reads) for one test, then put it back."""
    _batch(4, 2)                       # the pool exists from here on
    pool = threads._pool
    before = pool.spins
    yield lambda spins: setattr(pool, "spins", spins)
    pool.spins = before


def test_every_share_runs_once_on_its_own_thread():
    for step in range(200):
        out, ran_on = _batch(25, 2, stamp=step)
        np.testing.assert_array_equal(out, _expected(25, step))
        assert set(ran_on) == {0, 1}
        assert ran_on[0] == threading.get_ident() and ran_on[1] != ran_on[0]


def test_asleep_workers_are_woken(pool_spins):
    pool_spins(10)                       # workers give up spinning almost at once
    for step in range(30):
        time.sleep(0.002)               # long enough for the worker to go to sleep
        out, ran_on = _batch(9, 2, stamp=step)
        np.testing.assert_array_equal(out, _expected(9, step))
        assert set(ran_on) == {0, 1}
    assert threads._pool.sleepers <= 1


def test_sleep_racing_release(pool_spins):
    # a budget near the hand-off's own length: workers fall asleep while jobs
    # are being posted, in every order; no share may be lost or run twice
    for spins in (1, 30, 300, 3000):
        pool_spins(spins)
        for step in range(100):
            out, _ = _batch(6, 2, stamp=step)
            np.testing.assert_array_equal(out, _expected(6, step))


def test_a_worker_error_reaches_the_caller_and_the_pool_goes_on():
    with pytest.raises(RuntimeError, match="share 1 failed"):
        _batch(10, 2, fail_on=1)
    with pytest.raises(RuntimeError, match="share 0 failed"):
        _batch(10, 2, fail_on=0)
    out, _ = _batch(10, 2)
    np.testing.assert_array_equal(out, _expected(10))


def test_concurrent_callers_each_get_all_rows():
    errors, done = [], []

    def caller(stamp):
        try:
            for _ in range(100):
                out, _ = _batch(12, 2, stamp=stamp)
                np.testing.assert_array_equal(out, _expected(12, stamp))
            done.append(stamp)
        except BaseException as e:      # noqa: BLE001 -- reported below
            errors.append(e)

    ts = [threading.Thread(target=caller, args=(s,)) for s in (1.0, 2.0, 3.0)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(done) == [1.0, 2.0, 3.0]


def _child(q):
    out, ran_on = _batch(8, 2, stamp=5.0)
    q.put((out.tolist(), len(set(ran_on.values()))))


def test_forked_child_starts_its_own_threads():
    _batch(8, 2)                          # the parent's pool has running threads
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    out, n_threads = q.get(timeout=60)
    p.join(timeout=60)
    assert p.exitcode == 0
    assert out == _expected(8, 5.0).tolist() and n_threads == 2


def test_one_worker_runs_inline():
    out, ran_on = _batch(5, 1)
    np.testing.assert_array_equal(out, _expected(5))
    assert ran_on == {0: threading.get_ident()}


FIRST_BATCH = """
import numpy as np
from tests.runtime.test_threads import _batch, _expected
for step in range(3):
    out, ran_on = _batch(7, 2, stamp=step)
    assert (out == _expected(7, step)).all() and len(set(ran_on.values())) == 2
print("ok")
"""


def test_a_new_process_first_batch_completes():
    # the first batch of a process starts the worker thread and posts its job at once:
    # the thread must not take that job for one it has already run
    root = Path(__file__).resolve().parents[2]
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", FIRST_BATCH], cwd=root, capture_output=True,
                           text=True, timeout=120, env={**os.environ, "NUMBA_NUM_THREADS": "2"})
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
