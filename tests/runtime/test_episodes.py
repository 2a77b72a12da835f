"""Few-shot episodes (runtime/episodes.py): reproducible from a generator, disjoint splits, labels
shuffled per episode, rotations as extra classes, and the task tree a compiled kernel takes."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.errors import MetaccError
from metacc.runtime.episodes import ClassSplit, Episodes

N_CLASSES, PER_CLASS, SIDE = 12, 6, 5


def _images():
    """Image i holds its row number i everywhere (so any gathered image says where it came from),
    plus 1000 at its top-left pixel (so a turn says which way it went)."""
    x = np.repeat(np.arange(N_CLASSES * PER_CLASS, dtype=np.float64), SIDE * SIDE).reshape(-1, SIDE, SIDE, 1)
    x[:, 0, 0, 0] += 1000.0
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)[::-1].copy()    # not sorted: the sampler groups them
    return x.astype(np.float32), labels


IMAGES, LABELS = _images()


def _row(img) -> int:
    return int(round(float(np.min(img))))


def _leaves(tree):
    return [tree[s][f] for s in ("support", "query") for f in ("x", "y")]


def test_same_generator_seed_same_episodes_and_another_seed_differs():
    ep = Episodes(IMAGES, LABELS, ways=3, shots=2, queries=2)
    a, b = ep.sample(np.random.default_rng(5), 4), ep.sample(np.random.default_rng(5), 4)
    c = ep.sample(np.random.default_rng(6), 4)
    assert all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))
    assert not np.array_equal(a["support"]["x"], c["support"]["x"])
    rng = np.random.default_rng(5)
    assert not np.array_equal(ep.sample(rng, 4)["query"]["x"], ep.sample(rng, 4)["query"]["x"])


def test_shapes_dtypes_and_layout_are_what_the_kernels_take():
    ep = Episodes(IMAGES, LABELS, ways=4, shots=2, queries=3)
    t = ep.sample(np.random.default_rng(0), 7)
    assert t["support"]["x"].shape == (7, 8, SIDE, SIDE, 1) and t["query"]["x"].shape == (7, 12, SIDE, SIDE, 1)
    assert t["support"]["x"].dtype == np.float32 and t["support"]["y"].dtype == np.int64
    assert all(v.flags.c_contiguous for v in _leaves(t))
    assert np.array_equal(t["support"]["y"][3], [0, 0, 1, 1, 2, 2, 3, 3])
    assert np.array_equal(t["query"]["y"][0], np.repeat(np.arange(4), 3))
    t64 = Episodes(IMAGES, LABELS, ways=2, shots=1, queries=1, dtype="f64").sample(np.random.default_rng(0), 2)
    assert t64["query"]["x"].dtype == np.float64


def test_every_image_is_of_its_labels_class_and_distinct_within_an_episode():
    ep = Episodes(IMAGES, LABELS, ways=5, shots=2, queries=3)
    draw = ep.draw(np.random.default_rng(1), 20)
    t = ep.tasks_for(draw)
    for task in range(20):
        assert len(set(draw.classes[task].tolist())) == 5
        rows = []
        for split, per in (("support", 2), ("query", 3)):
            for pos, img in enumerate(t[split]["x"][task]):
                row = _row(img)
                label = t[split]["y"][task, pos]
                assert LABELS[row] == draw.classes[task, label]
                assert pos // per == label
                rows.append(row)
        assert len(set(rows)) == 25                 # no image twice: support and query are disjoint


def test_labels_are_shuffled_per_episode():
    # all 5 classes in every 5-way episode: only the labels can change, and each class takes each label
    few = np.isin(LABELS, range(5))
    ep = Episodes(IMAGES[few], LABELS[few], ways=5, shots=1, queries=1)
    draw = ep.draw(np.random.default_rng(2), 2000)
    label_of_class0 = np.argmax(draw.classes == 0, axis=1)
    counts = np.bincount(label_of_class0, minlength=5)
    assert np.all(np.abs(counts - 400) < 80), counts          # uniform: 400 +- 4 standard deviations
    assert len({tuple(c) for c in draw.classes.tolist()}) > 100


def test_only_the_splits_classes_are_drawn_and_splits_are_disjoint():
    split = ClassSplit.random(np.arange(N_CLASSES), seed=3, n_val=2, n_test=3)
    parts = [split.train, split.val, split.test]
    assert [len(p) for p in parts] == [7, 2, 3]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(N_CLASSES))
    assert split == ClassSplit.random(np.arange(N_CLASSES), seed=3, n_val=2, n_test=3)
    other = ClassSplit.random(np.arange(N_CLASSES), seed=4, n_val=2, n_test=3)
    assert not np.array_equal(other.test, split.test) or not np.array_equal(other.val, split.val)
    draw = Episodes(IMAGES, LABELS, split.test, ways=3, shots=1, queries=1).draw(np.random.default_rng(0), 50)
    assert set(draw.classes.ravel().tolist()) == set(split.test.tolist())
    with pytest.raises(MetaccError, match="overlap"):
        ClassSplit(train=[0, 1, 2], val=[2], test=[3])


def test_a_split_by_groups_keeps_each_group_in_one_split():
    groups = np.arange(N_CLASSES) // 3                      # four groups of three classes
    split = ClassSplit.random(np.arange(N_CLASSES), seed=0, n_val=3, n_test=3, groups=groups)
    assert [len(split.train), len(split.val), len(split.test)] == [6, 3, 3]
    for part in (split.train, split.val, split.test):
        for g in set(groups[part].tolist()):
            assert set(np.flatnonzero(groups == g).tolist()) <= set(part.tolist())


def test_rotations_are_extra_classes_turned_counterclockwise():
    ep = Episodes(IMAGES, LABELS, ways=4, shots=1, queries=1, rotations=True)
    draw = ep.draw(np.random.default_rng(4), 200)
    t = ep.tasks_for(draw)
    assert set(draw.turns.ravel().tolist()) == {0, 1, 2, 3}
    assert np.array_equal(draw.classes % 4, draw.turns)
    assert all(len(set((c // 4).tolist())) == 4 for c in draw.classes)    # distinct characters per episode
    assert set(ep.classes.tolist()) == set(range(4 * N_CLASSES))
    # where the marked top-left pixel lands after r quarter turns counterclockwise (y down)
    corner = {0: (0, 0), 1: (SIDE - 1, 0), 2: (SIDE - 1, SIDE - 1), 3: (0, SIDE - 1)}
    for task in range(20):
        for pos in range(4):
            img = t["support"]["x"][task, pos, :, :, 0]
            r = draw.turns[task, pos]
            assert np.unravel_index(np.argmax(img), img.shape) == corner[r]
            assert LABELS[_row(img)] == draw.classes[task, pos] // 4


def test_mistakes_are_named():
    with pytest.raises(MetaccError, match="numpy.random.Generator"):
        Episodes(IMAGES, LABELS, ways=2, shots=1, queries=1).sample(0, 2)
    with pytest.raises(MetaccError, match="fewer than shots"):
        Episodes(IMAGES, LABELS, ways=2, shots=4, queries=3)
    with pytest.raises(MetaccError, match="at least 6 classes"):
        Episodes(IMAGES, LABELS, [0, 1, 2, 3, 4], ways=6, shots=1, queries=1, rotations=True)
    with pytest.raises(MetaccError, match="NHWC"):
        Episodes(IMAGES[..., 0], LABELS)
    with pytest.raises(MetaccError, match="no image"):
        Episodes(IMAGES, LABELS, [0, 99])


PROGRAM = """
params Linear {
    w: f32[25, 3] = zeros
    b: f32[3] = zeros
}

task Images {
    support: (x: f32[s, 5, 5, 1], y: i64[s])
    query:   (x: f32[q, 5, 5, 1], y: i64[q])
}

fn logits(p: Linear, x: f32[n, 5, 5, 1]) -> f32[n, 3] {
    return reshape(x, [n, 25]) @ p.w + p.b
}

meta one_step(theta: Linear, t: Images, alpha: f32 = 0.5) -> f32 {
    p = theta - alpha * grad(cross_entropy(logits(theta, t.support.x), t.support.y), theta)
    return cross_entropy(logits(p, t.query.x), t.query.y)
}
"""


def _numpy_one_step(w, b, task, alpha=0.5):
    """The same loss written out in float64: one gradient step of softmax regression, then the query loss."""
    def ce_and_grad(w, b, x, y):
        z = x.reshape(len(x), -1) @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        onehot = np.eye(3)[y]
        g = (p - onehot) / len(x)
        return -np.mean(np.log(p[np.arange(len(x)), y])), x.reshape(len(x), -1).T @ g, g.sum(0)
    sx, sy = task["support"]["x"].astype(np.float64), task["support"]["y"]
    _, gw, gb = ce_and_grad(w, b, sx, sy)
    return ce_and_grad(w - alpha * gw, b - alpha * gb, task["query"]["x"].astype(np.float64), task["query"]["y"])[0]


def test_a_compiled_meta_function_takes_the_episode_tree(cache_dir):
    mod = metacc.compile(PROGRAM, cache_dir=cache_dir)
    images = (np.random.default_rng(0).random((N_CLASSES * PER_CLASS, SIDE, SIDE, 1)) * 0.5).astype(np.float32)
    tasks = Episodes(images, LABELS, ways=3, shots=2, queries=2).sample(np.random.default_rng(1), 4)
    rng = np.random.default_rng(2)
    theta = {"w": (0.3 * rng.normal(size=(25, 3))).astype(np.float32), "b": np.zeros(3, np.float32)}
    got = mod.one_step(theta, tasks)
    want = np.mean([_numpy_one_step(theta["w"].astype(np.float64), theta["b"].astype(np.float64),
                                    {s: {f: tasks[s][f][i] for f in ("x", "y")} for s in ("support", "query")})
                    for i in range(4)])
    assert abs(float(got) - want) < 1e-5 * max(1.0, abs(want))


def test_mean_ci95_is_196_standard_errors():
    from metacc.runtime.episodes import mean_ci95
    mean, half = mean_ci95([0.0, 1.0] * 300)
    assert mean == 0.5 and abs(half - 1.96 * 0.5 / np.sqrt(600)) < 1e-15
    with pytest.raises(MetaccError, match="two episodes"):
        mean_ci95([0.9])


def test_class_batches_label_by_position_and_visit_every_image_once_per_epoch():
    from metacc.runtime.episodes import ClassBatches
    classes = np.array([7, 2, 5])
    batches = ClassBatches(IMAGES, LABELS, classes, batch_size=6, rng=np.random.default_rng(0))
    assert batches.n_classes == 3
    seen = []
    for _ in range(3):                                    # 18 images of 3 classes: one epoch
        b = next(batches)
        assert b["x"].shape == (6, SIDE, SIDE, 1) and b["x"].dtype == np.float32 and b["y"].dtype == np.int64
        rows = [_row(img) for img in b["x"]]
        assert [LABELS[r] for r in rows] == classes[b["y"]].tolist()
        seen += rows
    assert sorted(seen) == sorted(np.flatnonzero(np.isin(LABELS, classes)).tolist())
    assert batches.epoch == 1 and next(batches) and batches.epoch == 2
    again = ClassBatches(IMAGES, LABELS, classes, batch_size=6, rng=np.random.default_rng(0))
    assert np.array_equal(next(again)["x"], ClassBatches(IMAGES, LABELS, classes, batch_size=6,
                                                         rng=np.random.default_rng(0)).__next__()["x"])


def test_class_batches_with_rotations_label_each_turn():
    from metacc.runtime.episodes import ClassBatches
    batches = ClassBatches(IMAGES, LABELS, [0, 1, 2, 3], batch_size=24, rng=np.random.default_rng(1),
                           rotations=True)
    b = next(batches)
    assert batches.n_classes == 16 and set((b["y"] % 4).tolist()) == {0, 1, 2, 3}
    corner = {0: (0, 0), 1: (SIDE - 1, 0), 2: (SIDE - 1, SIDE - 1), 3: (0, SIDE - 1)}
    for img, y in zip(b["x"][..., 0], b["y"]):
        assert np.unravel_index(np.argmax(img), img.shape) == corner[int(y) % 4]
        assert LABELS[_row(img)] == y // 4
    with pytest.raises(MetaccError, match="batch_size is larger"):
        ClassBatches(IMAGES, LABELS, [0], batch_size=7, rng=np.random.default_rng(0))
