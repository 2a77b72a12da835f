"""A meta function's task batch on a LocalCluster of 2 worker processes (metacc.runtime.dask_runner).

One cluster for the module; the workers share a kernel cache in tmp with the client.
The result must be LocalRunner's for the same shard size bit for bit (LocalRunner is
one worker: the sharded result does not depend on how many there are), survive a
worker killed mid-step, and report a worker's compile error on the client. The tests
that kill workers come last.
"""
from __future__ import annotations

import os
import sys
import uuid
from dataclasses import replace
from functools import partial

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.runtime.optim import Adam
from metacc.runtime.shards import LocalRunner, SeededBatches, SeededTasks
from metacc.runtime.train import train
from tests.runtime.conftest import SOURCE
from tests.runtime.test_shards import reg_tasks, same

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
import cloudpickle  # noqa: E402  (comes with distributed)

from metacc.runtime import dask_runner, kernel_specs  # noqa: E402
from metacc.runtime.dask_runner import DaskRunner  # noqa: E402

# the workers get this module's samplers by value: they need not import the tests
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(sys.modules[reg_tasks.__module__])


def killing_tasks(rng, n, marker: str, deaths: int = 1):
    """A sampler that kills the worker process drawing it, the first `deaths` times it is
    drawn anywhere (each death leaves a marker file), or every time (deaths=-1)."""
    for i in range(deaths):
        try:
            os.close(os.open(f"{marker}-{i}", os.O_CREAT | os.O_EXCL))   # one process only, even at once
        except FileExistsError:
            continue
        os._exit(1)
    if deaths < 0:
        os._exit(1)
    return reg_tasks(rng, n)


def registered(key: str) -> bool:
    return key in kernel_specs._SPECS


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("dask-cache")


@pytest.fixture(scope="module")
def client(cache):
    # one death of a worker a shard was given to is retried (a worker's queued shards count
    # too), the second ends the step (the default is 3: fewer kills in the test)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, env={"METACC_CACHE_DIR": str(cache)})
        c = distributed.Client(cluster)
        yield c
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def dmod(cache):
    return metacc.compile(SOURCE, cache_dir=cache)


@pytest.fixture(scope="module")
def theta(dmod):
    return dmod.Lin.init(seed=3)


@pytest.fixture(scope="module")
def tasks():
    return reg_tasks(np.random.default_rng(11), 20)


@pytest.fixture(scope="module")
def runner(client, cache):
    return DaskRunner(client, shard_size=20, cache_dir=cache)


def test_one_shard_is_the_plain_call(dmod, theta, tasks, runner):
    got = dmod.adapt.value_and_grad(theta, tasks, runner=runner)
    assert same(got, dmod.adapt.value_and_grad(theta, tasks))
    # warmed on both workers before the first step: compiled by one, loaded from the shared cache by the other
    pids = {w["pid"] for w in runner.warmups}
    assert len(pids) == 2 and os.getpid() not in pids
    # the cache in tmp was empty: the first worker wrote the entry, the second found it there
    assert [w["source_written"] for w in runner.warmups] == [True, False]


@pytest.mark.parametrize("size", [3, 6, 7])
def test_bit_identical_to_local_for_several_shard_counts(dmod, theta, tasks, runner, size):
    r = DaskRunner(runner.client, shard_size=size, cache_dir=runner.cache_dir)
    got = dmod.adapt.value_and_grad(theta, tasks, runner=r)
    assert same(got, dmod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=size)))
    assert abs(float(got[0]) - float(dmod.adapt(theta, tasks))) < 1e-12
    # not the plain call's bits (its sum is one reduction): the test above is not vacuous
    assert not same(got, dmod.adapt.value_and_grad(theta, tasks))


def test_seeded_shards_draw_on_the_workers(dmod, theta, runner):
    st = SeededTasks(reg_tasks, 17, seed=9, shard_size=5)
    got = dmod.adapt.value_and_grad(theta, st, runner=runner)
    assert same(got, dmod.adapt.value_and_grad(theta, st.draw(), runner=LocalRunner(shard_size=5)))


def test_a_few_training_steps_over_dask(dmod, theta, runner):
    run = partial(train, dmod.adapt.value_and_grad, theta, Adam(1e-2), iterations=3, progress=False)
    p1, h1 = run(SeededBatches(reg_tasks, 12, seed=2, shard_size=5), runner=runner)
    p2, h2 = run(SeededBatches(reg_tasks, 12, seed=2, shard_size=5), runner=LocalRunner())
    assert h1.losses == h2.losses and len(set(h1.losses)) == 3
    assert all(p1[k].tobytes() == p2[k].tobytes() for k in p1)
    assert not np.array_equal(p1["w"], theta["w"])


def _broken(spec):
    """The spec with a task kernel Numba cannot type, under a key of its own."""
    defs = ("@njit\ndef broken(x):\n    return x.no_such_attribute\n\n\n"
            "def broken_rows(*args):\n    return broken(args[0])\n\n\n")
    bad = spec.source.replace("ENTRY_ROWS = ", defs + "ENTRY_ROWS = broken_rows\nunused = ", 1)
    return replace(spec, key="broken" + uuid.uuid4().hex[:12], source=bad)


def test_a_worker_that_cannot_compile_reports_it(dmod, theta, tasks, client, cache, monkeypatch):
    monkeypatch.setattr(dask_runner, "kernel_spec", lambda k: _broken(kernel_specs.kernel_spec(k)))
    with pytest.raises(MetaccError, match="could not get the kernel ready") as err:
        dmod.adapt.value_and_grad(theta, tasks, runner=DaskRunner(client, cache_dir=cache))
    assert "no_such_attribute" in str(err.value) and "TypingError" in str(err.value)


def test_a_worker_with_another_metacc_is_refused(dmod, theta, tasks, client, cache, monkeypatch):
    def stale(k):
        spec = kernel_specs.kernel_spec(k)
        return replace(spec, key="stale" + uuid.uuid4().hex[:12], parts=dict(spec.parts, metacc="0.0.1+elsewhere"))
    monkeypatch.setattr(dask_runner, "kernel_spec", stale)
    with pytest.raises(MetaccError, match="install the same metacc"):
        dmod.adapt.value_and_grad(theta, tasks, runner=DaskRunner(client, cache_dir=cache))


def test_a_worker_killed_mid_step(dmod, theta, tasks, runner, client, tmp_path):
    dmod.adapt.value_and_grad(theta, tasks, runner=runner)     # warm (a warm-up draw would kill too)
    sample = partial(killing_tasks, marker=str(tmp_path / "killed"))
    st = SeededTasks(sample, 12, seed=4, shard_size=3)
    got = dmod.adapt.value_and_grad(theta, st, runner=runner)
    assert (tmp_path / "killed-0").exists()           # a worker did die
    assert same(got, dmod.adapt.value_and_grad(theta, st, runner=LocalRunner()))
    client.wait_for_workers(2, timeout=60)
    # the restarted worker has the kernel's spec again (the plugin), ready for its next shard
    key = runner._ready[id(dmod.adapt.kernel("grad", dmod.adapt._wrt(None)))][0].key
    assert all(client.run(registered, key).values())
    assert same(dmod.adapt.value_and_grad(theta, st, runner=runner), got)


def test_workers_that_keep_dying_end_the_step_with_an_error(dmod, theta, tasks, runner, client, tmp_path):
    dmod.adapt.value_and_grad(theta, tasks, runner=runner)
    sample = partial(killing_tasks, marker=str(tmp_path / "killed"), deaths=-1)
    with pytest.raises(MetaccError, match="died too often") as err:
        dmod.adapt.value_and_grad(theta, SeededTasks(sample, 4, seed=1, shard_size=4), runner=runner)
    assert "shard 0 (tasks 0..3)" in str(err.value)
    # the last test of the module: the cluster is closed next, whether its nannies restart or not
