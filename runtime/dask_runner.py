"""A meta function's task batch on a Dask cluster (pip install 'metacc[dask]').

    from dask.distributed import Client
    from metacc.runtime.dask_runner import DaskRunner
    runner = DaskRunner(Client("tcp://scheduler:8786"), shard_size=1000)
    loss, g = mod.maml.value_and_grad(theta, tasks, runner=runner)

The batch is cut into fixed shards (metacc.runtime.shards); each shard is one Dask
task that runs the kernel's ENTRY_ROWS on a worker and sends back its sums, and the
client adds them in shard order: the result is LocalRunner's for the same shard
size, bit for bit, for any number of workers.

Per kernel, once: its spec (cache key and generated source, tens of kB) goes to every
worker as a WorkerPlugin, so that a worker that joins or is restarted later has it
too; then the kernel is compiled and run on one task on one worker, then on the
others at once (with a cache directory the workers share they load what the first
compiled; otherwise each compiles its own). A worker that cannot compile, or runs
another metacc than the client, fails this warm-up with its error, on the client.
Per step: the shared leaves (parameters) go to the cluster once, as one small task
that the shard tasks depend on (workers fetch it from each other), and each shard task
carries its slice of the task arrays, or only a seed (SeededTasks).

Faults: a shard is a pure function of what it is sent, so when a worker dies the
scheduler runs its shards again elsewhere and the step's result is unchanged; after
`distributed.scheduler.allowed-failures` deaths of workers running one shard (3 by
default) the step fails with a MetaccError naming the shard.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

from distributed import Client, KilledWorker, WorkerPlugin
from distributed.client import FutureCancelledError

from metacc.errors import MetaccError, wrap_methods
from metacc.runtime import kernel_specs, shards
from metacc.runtime.kernel_specs import KernelSpec, kernel_spec
from metacc.runtime.shards import DEFAULT_SHARD_SIZE, Job, finish, run_shard
from metacc.runtime.tasks import check_count


class KernelSpecs(WorkerPlugin):
    """Registers one kernel's spec in a worker process (no compiling: that is a task)."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec

    def setup(self, worker=None):
        kernel_specs.register(self.spec)


def _failure(err: BaseException, what: str) -> MetaccError:
    """An error raised on a worker, as a MetaccError that survives pickling to the client
    (subclasses with their own constructors would not) and says where it happened."""
    where = f"{what} on the worker with pid {os.getpid()}"
    if isinstance(err, MetaccError):
        return MetaccError(f"{where}: {err.message}", err.span, expected=err.expected, found=err.found,
                           hint=err.hint, notes=err.notes)
    text = str(err).strip() or type(err).__name__
    return MetaccError(f"{where} failed: {type(err).__name__}", found=text[-4000:],
                       hint="the error is the worker's own: the same call without a runner shows it here")


def warm_kernel(key: str, cache_dir: str | None, meta: dict, shared: list, one_task: list) -> dict:
    """On a worker: load or compile the kernel and run it on one task (Numba compiles on
    the first call), so that the first step finds it ready."""
    start = time.perf_counter()
    try:
        mod, fresh = kernel_specs.load(key, cache_dir)
        run_shard(mod, meta, shared, one_task)
    except Exception as err:  # noqa: BLE001  (reported to the client with the worker's words)
        raise _failure(err, f"compiling kernel {key}") from None
    return {"pid": os.getpid(), "source_written": fresh, "seconds": time.perf_counter() - start,
            "diagnostics": tuple(getattr(mod, "DIAGNOSTICS", ()) or ()),
            "warnings": tuple(getattr(mod, "WARNINGS", ()) or ())}


@dataclass(frozen=True)
class StepInputs:
    """What every shard of a step takes: the job's layout and its shared leaves (one opaque
    object, so that Dask does not look inside for keys)."""
    meta: dict
    shared: list


def hold(value: StepInputs) -> StepInputs:
    """A step's shared inputs as a task result, which Dask recomputes when it is lost."""
    return value


def shard_task(key: str, cache_dir: str | None, step: StepInputs, shard_in: list, index: int):
    """On a worker: one shard of a step."""
    try:
        mod, _ = kernel_specs.load(key, cache_dir)
        result = run_shard(mod, step.meta, step.shared, shard_in)
        result.where = f"pid {os.getpid()}"
        return result
    except Exception as err:  # noqa: BLE001
        raise _failure(err, f"shard {index}") from None


class DaskRunner:
    """Runs a meta function's task batch on a dask.distributed Client, in shards of
    `shard_size` tasks (the result depends on the shard size, never on the workers).

    cache_dir: the kernel cache the workers use (default: each worker's METACC_CACHE_DIR
    or ~/.cache/metacc); one directory on a shared file system means one compile in all.
    """

    def __init__(self, client: Client, shard_size: int = DEFAULT_SHARD_SIZE, cache_dir=None):
        if not isinstance(client, Client):
            raise MetaccError("DaskRunner: client must be a dask.distributed.Client", found=type(client).__name__,
                              hint="Client(LocalCluster()) on one machine, Client('tcp://host:8786') on a cluster")
        self.client = client
        self.shard_size = check_count(shard_size, "shard_size", "DaskRunner")
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self._ready: dict[int, tuple[KernelSpec, tuple, list]] = {}    # id(kernel) -> (spec, descs, warm-ups)
        self._kernels: list = []            # keeps those ids alive
        self.warmups: list[dict] = []       # what each worker reported when it warmed a kernel
        self.last_step: dict = {}           # the last step's wall time and the workers' busy seconds

    def __repr__(self) -> str:
        return f"DaskRunner({self.client!r}, shard_size={self.shard_size})"

    # ---- once per kernel ----
    def _workers(self) -> list[str]:
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise MetaccError("DaskRunner: the cluster has no workers", hint="start workers, or wait_for_workers(n)")
        return workers

    def _warm(self, kernel, job: Job) -> tuple[KernelSpec, tuple]:
        hit = self._ready.get(id(kernel))
        if hit is not None:
            return hit[0], hit[1]
        spec = kernel_spec(kernel)
        self.client.register_plugin(KernelSpecs(spec), name=f"metacc-kernel-{spec.key}")
        args = (spec.key, self.cache_dir, job.meta(), job.shared, job.one_task())
        first, *rest = self._workers()
        # one worker first: with a shared cache the others then load what it compiled
        reports = self._on_all([first], args, spec)
        if rest:
            reports += self._on_all(rest, args, spec)
        for r in reports:
            self.warmups.append({"kernel": spec.label, **{k: r[k] for k in ("pid", "source_written", "seconds")}})
        descs = reports[0]["diagnostics"]
        self._ready[id(kernel)] = (spec, descs, reports)
        self._kernels.append(kernel)
        return spec, descs

    def _on_all(self, workers: list[str], args: tuple, spec: KernelSpec) -> list[dict]:
        futures = [self.client.submit(warm_kernel, *args, workers=[w], allow_other_workers=False, pure=False,
                                      key=f"metacc-warm-{spec.key}-{uuid.uuid4().hex[:8]}") for w in workers]
        try:
            return self.client.gather(futures)
        except MetaccError as err:
            raise MetaccError(f"{spec.label}: a worker could not get the kernel ready: {err.message}",
                              found=err.found, hint=err.hint) from None

    # ---- every step ----
    def run(self, kernel, job: Job) -> list:
        spec, descs = self._warm(kernel, job)
        start = time.perf_counter()
        client = self.client
        tag = uuid.uuid4().hex[:8]
        # the parameters (and per-call scalars) once per step: one small task that holds them,
        # fetched by the workers from whichever has it. Not client.scatter: scattered data
        # lost with the workers holding it cannot be recovered, a task's result is recomputed
        step = client.submit(hold, StepInputs(job.meta(), job.shared), pure=False, key=f"metacc-params-{tag}")
        n = len(job.bounds)
        # one map, not n submits: the shards reach the scheduler in one message
        futures = client.map(shard_task, [spec.key] * n, [self.cache_dir] * n, [step] * n,
                             [job.shard_input(i) for i in range(n)], range(n), pure=False,
                             key=[f"metacc-shard-{tag}-{i}" for i in range(n)])
        try:
            results = client.gather(futures)
        except BaseException as err:
            # a failed step leaves nothing running (a finished step's futures are released
            # as they are dropped: no cancel round trip)
            client.cancel(futures + [step])
            raise _step_error(err, spec, tag, job) from None
        outs = shards.combine(results, job.n_tasks)
        busy: dict[str, float] = {}
        for r in results:
            busy[r.where] = busy.get(r.where, 0.0) + r.seconds
        self.last_step = {"shards": len(results), "wall_s": time.perf_counter() - start, "busy_s": busy}
        return finish(kernel, job, outs, descs)


def _step_error(err: BaseException, spec: KernelSpec, tag: str, job: Job) -> BaseException:
    """What a failed gather means, for the user."""
    if isinstance(err, FutureCancelledError):
        return MetaccError(f"{spec.label}: the step was cancelled on the cluster", found=str(err)[:300],
                           hint="the scheduler restarted or the client lost its connection; run the step again")
    if isinstance(err, KilledWorker):
        return MetaccError(f"{spec.label}: the workers running shard {_shard_of(err, tag, job)} died too often, "
                           "step abandoned", found=str(err)[:300],
                           hint="a worker dies when it runs out of memory (smaller shard_size) or is killed; "
                                "the bound is distributed.scheduler.allowed-failures")
    return err


def _shard_of(err: KilledWorker, tag: str, job: Job) -> str:
    """'i (tasks lo..hi-1)' of the shard a KilledWorker names."""
    key = str(err.args[0]) if err.args else ""
    prefix = f"metacc-shard-{tag}-"
    if prefix in key:
        i = int(key.split(prefix, 1)[1].split("'")[0].split(")")[0])
        lo, hi = job.bounds[i]
        return f"{i} (tasks {lo}..{hi - 1})"
    return "?"


wrap_methods(DaskRunner, ("__init__",))     # a MetaccError from here shows the user's frames only
