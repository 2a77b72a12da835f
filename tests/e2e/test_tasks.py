"""Task samplers and the batcher: reproducible from a generator, right shapes and values, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.errors import MetaccError
from metacc.runtime.tasks import SINUSOID, SinusoidFamily, TaskBatcher, linear_regression_tasks, sinusoid_tasks


def _leaves(tree):
    return [tree[a][b] for a in ("support", "query") for b in ("x", "y")]


def test_same_seed_same_tasks_and_different_seeds_differ():
    a = sinusoid_tasks(np.random.default_rng(7), 4, k=5, q=6)
    b = sinusoid_tasks(np.random.default_rng(7), 4, k=5, q=6)
    c = sinusoid_tasks(np.random.default_rng(8), 4, k=5, q=6)
    for x, y, z in zip(_leaves(a), _leaves(b), _leaves(c)):
        assert np.array_equal(x, y)
        assert not np.allclose(x, z)


def test_one_generator_gives_new_tasks_on_every_call():
    rng = np.random.default_rng(0)
    first, second = sinusoid_tasks(rng, 3), sinusoid_tasks(rng, 3)
    assert not np.allclose(first["support"]["x"], second["support"]["x"])


def test_shapes_dtypes_and_ranges():
    t = sinusoid_tasks(np.random.default_rng(1), 50, k=10, q=7, dtype="f64")
    assert t["support"]["x"].shape == (50, 10, 1) and t["query"]["y"].shape == (50, 7, 1)
    assert all(v.dtype == np.float64 for v in _leaves(t))
    assert np.all(np.abs(t["support"]["x"]) <= 5) and np.all(np.abs(t["query"]["y"]) <= 5)
    t32 = sinusoid_tasks(np.random.default_rng(1), 2, k=3, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in _leaves(t32)) and t32["query"]["x"].shape == (2, 3, 1)


def test_points_lie_on_the_drawn_sinusoids():
    rng = np.random.default_rng(2)
    functions = SINUSOID.draw(rng, 200)
    assert np.all((functions["amplitude"] >= 0.1) & (functions["amplitude"] <= 5))
    assert np.all((functions["phase"] >= 0) & (functions["phase"] <= np.pi))
    t = SINUSOID.tasks_for(rng, functions, k=4, q=3, dtype="f64")
    for split in ("support", "query"):
        x, y = t[split]["x"], t[split]["y"]
        want = functions["amplitude"][:, None, None] * np.sin(x - functions["phase"][:, None, None])
        assert np.allclose(y, want, rtol=0, atol=1e-12)


def test_a_family_with_other_ranges():
    fam = SinusoidFamily(amplitude=(1.0, 1.5), x_range=(0.0, 1.0))
    t = fam.sample(np.random.default_rng(3), 20, k=6)
    assert np.all((t["support"]["x"] >= 0) & (t["support"]["x"] <= 1))
    with pytest.raises(MetaccError, match="lo < hi"):
        SinusoidFamily(phase=(1.0, 0.0))


def test_an_int_seed_is_refused_with_a_hint():
    with pytest.raises(MetaccError, match="numpy.random.Generator") as e:
        sinusoid_tasks(0, 3)
    assert "default_rng" in str(e.value)


@pytest.mark.parametrize("bad", [dict(n_tasks=0), dict(k=0), dict(q=-1), dict(k=2.5), dict(dtype="f16")])
def test_bad_sizes_and_dtypes_are_user_errors(bad):
    kwargs = dict(n_tasks=2, k=3) | bad
    with pytest.raises(MetaccError):
        sinusoid_tasks(np.random.default_rng(0), **kwargs)


def test_linear_regression_tasks_are_linear_and_reproducible():
    t = linear_regression_tasks(np.random.default_rng(4), 3, n=20, d=10, dtype="f64")
    assert t["x"].shape == (3, 20, 10) and t["y"].shape == (3, 20, 1)
    for x, y in zip(t["x"], t["y"]):      # noise 0: y is exactly in the column space of x
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        assert np.allclose(x @ w, y, atol=1e-10)
    again = linear_regression_tasks(np.random.default_rng(4), 3, n=20, d=10, dtype="f64")
    assert np.array_equal(t["x"], again["x"])


def _pool(n=10):
    return {"support": {"x": np.arange(n, dtype=np.float64)[:, None, None] * np.ones((1, 2, 1)),
                        "y": -np.arange(n, dtype=np.float64)[:, None, None] * np.ones((1, 2, 1))},
            "query": {"x": np.arange(n)[:, None, None] * np.ones((1, 3, 1))}}


def test_batcher_visits_every_task_once_per_epoch_and_keeps_tasks_whole():
    batches = TaskBatcher(_pool(10), batch_size=5, rng=np.random.default_rng(0))
    seen = [next(batches) for _ in range(2)]
    ids = np.concatenate([b["support"]["x"][:, 0, 0] for b in seen])
    assert sorted(ids) == list(range(10)) and batches.epoch == 1
    for b in seen:      # the fields of one task stay together
        assert np.array_equal(b["support"]["y"][:, 0, 0], -b["support"]["x"][:, 0, 0])
        assert np.array_equal(b["query"]["x"][:, 0, 0], b["support"]["x"][:, 0, 0])
    next(batches)
    assert batches.epoch == 2


def test_batcher_drops_the_incomplete_batch_and_reshuffles():
    batches = TaskBatcher(_pool(7), batch_size=3, rng=np.random.default_rng(1))
    orders = [tuple(next(batches)["support"]["x"][:, 0, 0]) for _ in range(6)]
    assert all(len(o) == 3 for o in orders)
    assert orders[:2] != orders[2:4]        # a new order in the second epoch
    same = TaskBatcher(_pool(7), batch_size=3, rng=np.random.default_rng(1))
    assert [tuple(next(same)["support"]["x"][:, 0, 0]) for _ in range(6)] == orders


def test_batcher_without_shuffle_goes_in_order():
    batches = TaskBatcher(_pool(4), batch_size=2, shuffle=False)
    assert list(next(batches)["support"]["x"][:, 0, 0]) == [0, 1]
    assert list(next(batches)["support"]["x"][:, 0, 0]) == [2, 3]


def test_batcher_errors():
    with pytest.raises(MetaccError, match="same number of tasks"):
        TaskBatcher({"x": np.zeros((3, 2)), "y": np.zeros((4, 2))}, 2, np.random.default_rng(0))
    with pytest.raises(MetaccError, match="larger than the number of tasks"):
        TaskBatcher(_pool(3), 4, np.random.default_rng(0))
    with pytest.raises(MetaccError, match="Generator"):
        TaskBatcher(_pool(3), 2, rng=None)
    with pytest.raises(MetaccError, match="NumPy array"):
        TaskBatcher({"x": [1, 2, 3]}, 2, np.random.default_rng(0))
