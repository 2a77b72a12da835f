"""A task batch in fixed shards on this machine (metacc.runtime.shards; no Dask needed).

The sharded result must be the plain call's for one shard bit for bit, the plain
call's up to rounding for several, and depend on the shard size only.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.runtime.optim import SGD
from metacc.runtime.shards import LocalRunner, SeededBatches, SeededTasks, shard_bounds
from metacc.runtime.train import train
from tests.runtime.test_labels import SOURCE as LABELS


def reg_tasks(rng: np.random.Generator, n: int, k: int = 4, q: int = 5) -> dict:
    """Tasks of the conftest's Reg type (f64): random inputs and targets."""
    return {"support": {"x": rng.normal(size=(n, k, 3)), "y": rng.normal(size=(n, k, 2))},
            "query": {"x": rng.normal(size=(n, q, 3)), "y": rng.normal(size=(n, q, 2))}}


def same(a, b) -> bool:
    """Bit for bit: value and every gradient leaf."""
    (la, ga), (lb, gb) = a, b
    return np.asarray(la).tobytes() == np.asarray(lb).tobytes() and \
        all(ga[k].tobytes() == gb[k].tobytes() and ga[k].dtype == gb[k].dtype for k in ga)


@pytest.fixture(scope="module")
def theta(mod):
    return mod.Lin.init(seed=3)


@pytest.fixture(scope="module")
def tasks():
    return reg_tasks(np.random.default_rng(7), 23)


def test_bounds_depend_on_the_batch_and_shard_size_only():
    assert shard_bounds(23, 10) == [(0, 10), (10, 20), (20, 23)]
    assert shard_bounds(5, 10) == [(0, 5)]


def test_one_shard_is_the_plain_call_bit_for_bit(mod, theta, tasks):
    plain = mod.adapt.value_and_grad(theta, tasks)
    assert same(mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=23)), plain)
    assert same(mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=100)), plain)


@pytest.mark.parametrize("size", [1, 4, 10])
def test_several_shards_agree_with_the_plain_call(mod, theta, tasks, size):
    loss, g = mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=size))
    ref_loss, ref_g = mod.adapt.value_and_grad(theta, tasks)
    assert abs(float(loss) - float(ref_loss)) <= 1e-12 * abs(float(ref_loss))
    for k in g:
        np.testing.assert_allclose(g[k], ref_g[k], rtol=1e-12, atol=1e-14)
        assert g[k].shape == ref_g[k].shape


def test_the_per_task_sum_matches_the_task_by_task_mean(mod, theta, tasks):
    """Shard results against an outside reference: the mean of single-task calls."""
    per = [mod.adapt.value_and_grad(theta, {p: {f: v[i:i + 1] for f, v in d.items()} for p, d in tasks.items()})
           for i in range(23)]
    loss, g = mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=6))
    assert abs(float(loss) - np.mean([float(x[0]) for x in per])) < 1e-12
    np.testing.assert_allclose(g["w"], np.mean([x[1]["w"] for x in per], axis=0), rtol=1e-12)


def test_seeded_tasks_are_drawn_per_shard(mod, theta):
    st = SeededTasks(reg_tasks, 11, seed=(4, 2), shard_size=4)
    first = st.shard(1)
    assert np.array_equal(first["support"]["x"], reg_tasks(np.random.default_rng((4, 2, 1)), 4)["support"]["x"])
    drawn = st.draw()
    assert drawn["query"]["y"].shape == (11, 5, 2)
    seeded = mod.adapt.value_and_grad(theta, st, runner=LocalRunner())
    # the seeded batch's own shards are the call's, whatever the runner's shard size
    assert same(seeded, mod.adapt.value_and_grad(theta, drawn, runner=LocalRunner(shard_size=4)))
    assert not same(seeded, mod.adapt.value_and_grad(theta, SeededTasks(reg_tasks, 11, seed=5, shard_size=4),
                                                     runner=LocalRunner()))
    # without a runner a seeded batch is drawn here and run whole
    assert same(mod.adapt.value_and_grad(theta, st), mod.adapt.value_and_grad(theta, drawn))


def test_training_with_a_runner(mod, theta):
    run = partial(train, mod.adapt.value_and_grad, theta, SGD(0.1), iterations=3, progress=False)
    p1, h1 = run(SeededBatches(reg_tasks, 9, seed=1, shard_size=4), runner=LocalRunner())
    p2, h2 = run(SeededBatches(reg_tasks, 9, seed=1, shard_size=4), runner=LocalRunner(shard_size=2))
    assert h1.losses == h2.losses and all(p1[k].tobytes() == p2[k].tobytes() for k in p1)
    assert len(set(h1.losses)) == 3            # a new batch every step


def test_mistakes_are_metacc_errors(mod, theta, tasks, data):
    with pytest.raises(MetaccError, match="runner must be"):
        mod.adapt.value_and_grad(theta, tasks, runner=object())
    with pytest.raises(MetaccError, match="meta function"):
        mod.loss.value_and_grad(theta, data["x"], data["y"], runner=LocalRunner())
    with pytest.raises(MetaccError, match="shard_size"):
        LocalRunner(shard_size=0)
    with pytest.raises(MetaccError, match="seed"):
        SeededTasks(reg_tasks, 4, seed=-1)
    bad = dict(tasks, query={"x": tasks["query"]["x"][:, :, :2], "y": tasks["query"]["y"]})
    with pytest.raises(MetaccError, match="query.x"):
        mod.adapt.value_and_grad(theta, bad, runner=LocalRunner())


@pytest.fixture(scope="module")
def labels_mod(cache_dir):
    return metacc.compile(LABELS, cache_dir=cache_dir)


def test_label_errors_name_the_task_of_the_whole_batch(labels_mod):
    """Label figures come back per task and are combined in task order: the task and the
    argument named are the whole batch's, not a shard's."""
    rng = np.random.default_rng(3)
    B = 9
    tasks = {"support": {"x": rng.normal(size=(B, 5, 2)), "y": rng.integers(0, 3, (B, 5))},
             "query": {"x": rng.normal(size=(B, 6, 2)), "y": rng.integers(0, 3, (B, 6))}}
    theta = labels_mod.Clf.init()
    labels_mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=4))    # fine as drawn
    tasks["query"]["y"][:] = 0
    tasks["query"]["y"][6, 4] = 2                      # becomes 3 inside the program
    with pytest.raises(MetaccError, match=r"label 3 \(in task 6 of the batch"):
        labels_mod.shifted_meta.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=4))
    tasks["query"]["y"][6, 4] = 0
    tasks["support"]["y"][5, 3] = 7
    with pytest.raises(MetaccError, match=r"argument 't.support.y' holds label 7 at index \(5, 3\)"):
        labels_mod.adapt.value_and_grad(theta, tasks, runner=LocalRunner(shard_size=4))
