"""Flags that threads read and write without the GIL.

The batch runner (runtime.threads) hands work to its threads through one
int64 array: the caller stores a job number, each worker stores the number of
the job it finished. Waiting on the GIL or on a condition variable puts a
thread to sleep, and waking it costs 20–80 µs here, as much as a small task
batch takes to run, so a thread that expects a flag soon spins on it in
native code, with the GIL released, for a bounded number of reads.

The loads and stores are atomic (acquire / release): without that, LLVM would
hoist a plain load out of the spin loop, and a reader could see the flag
before the data the writer wrote ahead of it.

The functions compile (or load from Numba's cache) at their first call, not at
import: `import metacc` should not pay ~90 ms for a pool a one-thread run never starts.
"""
from __future__ import annotations

import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

STRIDE = 8
"""Flags sit 8 int64 (one 64-byte cache line) apart, so that threads that
write different flags do not share a line."""


def _element(context, builder, aty, arr, i):
    ary = context.make_array(aty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, aty, ary, [i])


@intrinsic
def load_acquire(typingctx, flags, i):
    sig = types.int64(flags, i)

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_element(context, builder, sig.args[0], *args), "acquire", 8)
    return sig, codegen


@intrinsic
def store_release(typingctx, flags, i, value):
    sig = types.void(flags, i, value)

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _element(context, builder, sig.args[0], args[0], args[1]), "release", 8)
        return context.get_dummy_value()
    return sig, codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def relax(typingctx):
    """A spin loop's pause (x86 PAUSE), the usual courtesy to a hardware thread that
    shares the core: it spaces the reads out (~28 ns a read here, against ~1.4 ns
    without), so the spin budget is calibrated with it (threads._spin_reads)."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def exchange(typingctx, flags, i, value):
    """flags[i] = value, atomically; the value it had."""
    sig = types.int64(flags, i, value)

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        return builder.atomic_rmw("xchg", ptr, args[2], "acq_rel")
    return sig, codegen


@intrinsic
def compare_exchange(typingctx, flags, i, expected, value):
    """flags[i] = value if it holds `expected`, atomically; whether it did."""
    sig = types.boolean(flags, i, expected, value)

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        pair = builder.cmpxchg(ptr, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return sig, codegen


# The pool's flags, in one int64 array (see runtime.threads):
#   [0]          workers in the current batch, the caller included (n)
#   [1]          set by release_workers when it found a worker asleep
#   go(i)        the job worker i is to run (job numbers count up from 1), or ASLEEP
#   done(i)      the last job worker i finished, or WAITING
ASLEEP = -1          # in go(i): worker i blocks on the pool's condition; wake it there
WAITING = -2         # in done(i): the caller blocks on the pool's condition; notify it there


@numba.njit(nogil=True, cache=True)
def go(i):
    return STRIDE * 2 * i


@numba.njit(nogil=True, cache=True)
def done(i):
    return STRIDE * (2 * i + 1)


@numba.njit(nogil=True, cache=True)
def wait_change(flags, i, old, spins):
    """flags[i] once it differs from `old`; `old` if it still has not after `spins` reads."""
    for _ in range(spins):
        v = load_acquire(flags, i)
        if v != old:
            return v
        relax()
    return old


@numba.njit(nogil=True, cache=True)
def try_sleep(flags, i, seen):
    """A worker's go(i): seen -> ASLEEP, unless a job arrived meanwhile."""
    return compare_exchange(flags, i, seen, ASLEEP)


@numba.njit(nogil=True, cache=True)
def finish_and_wait(flags, worker, job, spins):
    """A worker's end of a job: done = job, then wait_change on its go word.

    One native call, so that the worker holds no GIL from the moment the caller
    can see it finished: the caller then takes the GIL at once. WAITING when
    the caller had gone to sleep on the condition (the worker must notify it)."""
    if exchange(flags, done(worker), job) == WAITING:
        return WAITING
    return wait_change(flags, go(worker), job, spins)


@numba.njit(nogil=True, cache=True)
def release_workers(pool_flags, pool_job):
    """Called first thing in a batched task kernel, with the GIL already released:
    starts workers 1..n-1 on their shares of job `pool_job` (0: nothing to start).

    Starting them here rather than from Python means a worker never waits for
    the GIL while the caller still holds it on the way into its own kernel."""
    if pool_job > 0:
        for i in range(1, pool_flags[0]):
            if exchange(pool_flags, go(i), pool_job) == ASLEEP:
                store_release(pool_flags, 1, 1)      # the caller wakes it after its own share


@numba.njit(nogil=True, cache=True)
def collect(flags, job, spins):
    """Whether workers 1..n-1 all finished `job` within about `spins` reads."""
    for i in range(1, flags[0]):
        d = done(i)
        while load_acquire(flags, d) != job:
            relax()
            spins -= 1
            if spins <= 0:
                return False
    return True


@numba.njit(nogil=True, cache=True)
def claim_wait(flags, worker, job):
    """The caller's done(worker): -> WAITING unless the worker already finished `job`.
    True: the caller must block until the worker notifies it."""
    d = done(worker)
    while True:
        v = load_acquire(flags, d)
        if v == job:
            return False
        if compare_exchange(flags, d, v, WAITING):
            return True
