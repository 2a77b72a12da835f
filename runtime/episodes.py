"""N-way K-shot episodes from a labelled image array, and disjoint class splits.

An episode picks N classes, gives them the labels 0..N-1 in a fresh random order
(so that no class keeps a label from one episode to the next and a learner cannot
memorise the mapping), and takes K support and Q query images of each class, all
distinct. A batch of T episodes is the task tree the compiled kernels take:

    {'support': {'x': f32[T, N*K, h, w, c], 'y': i64[T, N*K]},
     'query':   {'x': f32[T, N*Q, h, w, c], 'y': i64[T, N*Q]}}

Within a set the images are grouped by label (label 0's K images first, then
label 1's, ...); the label of each class is what is random. Like runtime/tasks.py,
`draw` picks (classes, rotations, image indices) from a generator the caller owns,
`tasks_for` gathers the images with NumPy fancy indexing (no Python loop per image
or per episode), and `sample` does both.

With rotations=True every class also appears turned by 90, 180 and 270 degrees as
three more classes (the Omniglot practice of Santoro et al. 2016 and Finn et al.
2017): class c turned r quarter turns is class 4c + r. As in Finn et al.'s code, an
episode picks N distinct original classes, then a turn for each, so two turns of
one character (an 'O' and the 'O' turned 180 degrees) never meet in one episode with
different labels. A split is made on the original classes, so that no turn of a
held-out character is seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime.tasks import as_dtype, check_count, check_rng

TURNS = 4           # quarter turns: 0, 90, 180, 270 degrees


def _class_ids(values, name: str, where: str) -> np.ndarray:
    ids = np.asarray(values)
    if ids.ndim != 1 or not (ids.dtype.kind in "iu" or ids.size == 0):
        raise MetaccError(f"{where}: {name} must be a 1-d array of integer class ids",
                          found=f"{ids.dtype} array of shape {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise MetaccError(f"{where}: {name} lists a class twice", found=repr(ids.tolist())[:120])
    return ids.astype(np.int64)


@dataclass(frozen=True, eq=False)
class ClassSplit:
    """Disjoint sets of class ids: meta-training, meta-validation and meta-test.

    Build one with `ClassSplit.random` (a seeded shuffle of the classes), or give
    the three arrays (the Omniglot loader's `finn_split` does). Overlapping sets are
    refused: a class in two splits would leak test classes into training.
    """
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, _class_ids(getattr(self, name), name, "ClassSplit"))
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = np.intersect1d(getattr(self, a), getattr(self, b))
            if shared.size:
                raise MetaccError(f"ClassSplit: the {a} and {b} classes overlap",
                                  found=f"{shared.size} shared, e.g. {shared[:5].tolist()}",
                                  hint="every class belongs to exactly one split")

    def __eq__(self, other) -> bool:
        return isinstance(other, ClassSplit) and all(
            np.array_equal(getattr(self, k), getattr(other, k)) for k in ("train", "val", "test"))

    __hash__ = None

    @classmethod
    def random(cls, classes, seed: int, n_val: int | float, n_test: int | float,
               groups=None) -> "ClassSplit":
        """Shuffle `classes` with `seed` and cut off n_val and n_test of them (counts, or
        fractions in (0, 1)); the rest trains. With `groups` (one group id per class,
        e.g. the alphabet), whole groups are shuffled and assigned instead, so that the
        classes of one group never straddle two splits; the counts are then met as
        closely as whole groups allow (at least the asked number, one group over at most)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise MetaccError("ClassSplit.random: seed must be an int", found=repr(seed),
                              hint="a split is made once, from a fixed seed, so that it is the same in every run")
        ids = _class_ids(classes, "classes", "ClassSplit.random")
        n_val, n_test = (_count(v, len(ids), name) for v, name in ((n_val, "n_val"), (n_test, "n_test")))
        if n_val + n_test >= len(ids):
            raise MetaccError("ClassSplit.random: no class would be left for meta-training",
                              expected=f"n_val + n_test < {len(ids)} classes", found=f"{n_val} + {n_test}")
        rng = np.random.default_rng(seed)
        if groups is None:
            order = ids[rng.permutation(len(ids))]
            return cls(train=np.sort(order[n_val + n_test:]), val=np.sort(order[:n_val]),
                       test=np.sort(order[n_val:n_val + n_test]))
        groups = np.asarray(groups)
        if groups.shape != ids.shape:
            raise MetaccError("ClassSplit.random: groups needs one group id per class",
                              expected=f"shape {ids.shape}", found=f"shape {groups.shape}")
        names = np.unique(groups)
        names = names[rng.permutation(len(names))]
        split = {"val": [], "test": [], "train": []}
        taken = {"val": 0, "test": 0}
        for name in names:                       # a loop per group, not per image
            members = ids[groups == name]
            where = next((s for s, want in (("val", n_val), ("test", n_test)) if taken[s] < want), "train")
            split[where].append(members)
            if where != "train":
                taken[where] += len(members)
        if not split["train"]:
            raise MetaccError("ClassSplit.random: the groups leave no class for meta-training",
                              found=f"{len(names)} groups", hint="ask for fewer validation and test classes")
        return cls(**{k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in split.items()})


def _count(value, total: int, name: str) -> int:
    if isinstance(value, float) and 0 < value < 1:
        return int(round(value * total))
    return check_count(value, name, "ClassSplit.random", minimum=0)


@dataclass(frozen=True, eq=False)         # arrays inside: compare fields explicitly
class EpisodeDraw:
    """What `Episodes.draw` picked for T episodes (kept for figures and checks).

    classes [T, N]: the class given label j in episode t (a rotated class id 4c + r when
    the sampler has rotations); turns [T, N]: its quarter turns (0 without rotations);
    support [T, N, K] and query [T, N, Q]: rows of the image array."""
    classes: np.ndarray
    turns: np.ndarray
    support: np.ndarray
    query: np.ndarray


class Episodes:
    """N-way K-shot episodes with Q queries per class, drawn from `images` [n, h, w, c]
    with integer `labels` [n], using only the classes in `classes` (default: all).

        ep = Episodes(images, labels, split.train, ways=5, shots=1, queries=15)
        tasks = ep.sample(rng, 32)          # rng = np.random.default_rng(seed), reused
    """

    def __init__(self, images, labels, classes=None, *, ways: int = 5, shots: int = 1, queries: int = 15,
                 rotations: bool = False, dtype="f32"):
        where = "Episodes"
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype.kind != "f":
            raise MetaccError(f"{where}: images must be a float array [n, height, width, channels] (NHWC)",
                              found=f"{images.dtype} array of shape {images.shape}",
                              hint="add a channel axis to greyscale images: images[..., None]")
        labels = np.asarray(labels)
        if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
            raise MetaccError(f"{where}: labels must be integers, one per image",
                              expected=f"shape ({len(images)},)", found=f"{labels.dtype} array of shape {labels.shape}")
        self.ways = check_count(ways, "ways", where, minimum=2)
        self.shots = check_count(shots, "shots", where)
        self.queries = check_count(queries, "queries", where)
        if rotations and images.shape[1] != images.shape[2]:
            raise MetaccError(f"{where}: rotations need square images", found=f"{images.shape[1]}x{images.shape[2]}")
        self.rotations = bool(rotations)
        self.dtype = as_dtype(dtype, where)
        # rows grouped by class: class c's images are order[start[c]: start[c] + count[c]]
        base = np.unique(labels) if classes is None else _class_ids(classes, "classes", where)
        present, count = np.unique(labels, return_counts=True)
        have = dict(zip(present.tolist(), count.tolist()))
        missing = [c for c in base.tolist() if c not in have]
        if missing:
            raise MetaccError(f"{where}: {len(missing)} of the classes have no image",
                              found=f"e.g. {missing[:5]}", hint="pass class ids that occur in labels")
        per_class = self.shots + self.queries
        short = [c for c in base.tolist() if have[c] < per_class]
        if short:
            raise MetaccError(f"{where}: {len(short)} classes have fewer than shots + queries = {per_class} images",
                              found=f"e.g. class {short[0]} with {have[short[0]]}",
                              hint="lower shots or queries, or leave those classes out of `classes`")
        if len(base) < self.ways:
            raise MetaccError(f"{where}: {self.ways}-way episodes need at least {self.ways} classes",
                              found=f"{len(base)} classes", hint="rotations do not count: the classes of "
                                                                 "one episode are distinct before turning")
        self.images = images
        self.base_classes = base
        self._order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[self._order], present)
        index = np.searchsorted(present, base)
        self._start, self._count = starts[index], count[index]

    @property
    def classes(self) -> np.ndarray:
        """The class ids episodes draw from (4c + r for every turn r of class c with rotations)."""
        if not self.rotations:
            return self.base_classes
        return (self.base_classes[:, None] * TURNS + np.arange(TURNS)).ravel()

    def draw(self, rng: np.random.Generator, n_tasks: int) -> EpisodeDraw:
        """Pick the classes (in label order), their turns and their images for n_tasks episodes."""
        check_rng(rng, "Episodes.draw")
        n_tasks = check_count(n_tasks, "n_tasks", "Episodes.draw")
        # N distinct classes per episode, in random order: the first N of a random permutation
        base = np.argsort(rng.random((n_tasks, len(self.base_classes))), axis=1)[:, :self.ways]
        turns = rng.integers(0, TURNS, size=base.shape) if self.rotations else np.zeros_like(base)
        # K + Q distinct images per class: the smallest ranks of random keys, rows past the class's count last
        width = int(self._count.max())
        keys = rng.random((n_tasks, self.ways, width))
        keys[np.arange(width) >= self._count[base][..., None]] = np.inf
        rank = np.argsort(keys, axis=2)[..., :self.shots + self.queries]
        rows = self._order[self._start[base][..., None] + rank]
        classes = self.base_classes[base] * (TURNS if self.rotations else 1) + turns
        return EpisodeDraw(classes=classes, turns=turns, support=rows[..., :self.shots],
                           query=rows[..., self.shots:])

    def tasks_for(self, draw: EpisodeDraw) -> dict:
        """The task tree of the drawn episodes: images gathered, turned, stacked by label."""
        n_tasks = draw.classes.shape[0]
        out = {}
        for split, rows in (("support", draw.support), ("query", draw.query)):
            x = self.images[rows].astype(self.dtype, copy=False)          # [T, N, n, h, w, c]
            if self.rotations:
                _turn(x, draw.turns)
            per = rows.shape[2]
            y = np.broadcast_to(np.repeat(np.arange(self.ways, dtype=np.int64), per), (n_tasks, self.ways * per))
            out[split] = {"x": np.ascontiguousarray(x.reshape(n_tasks, self.ways * per, *x.shape[3:])),
                          "y": np.ascontiguousarray(y)}
        return out

    def sample(self, rng: np.random.Generator, n_tasks: int) -> dict:
        """A batch of n_tasks fresh episodes (draw, then gather)."""
        return self.tasks_for(self.draw(rng, n_tasks))


def _turn(x: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """x [*turns.shape, ..., h, w, c], each item turned turns[...] quarter turns counterclockwise, in place."""
    for r in range(1, TURNS):                                          # one call per turn, not per image
        hit = turns == r
        if hit.any():
            x[hit] = np.rot90(x[hit], r, axes=(-3, -2))
    return x


class ClassBatches:
    """Mini-batches of labelled images from a set of classes, for pretraining a baseline
    classifier on all meta-training classes (the "pretrain, then fine-tune" baseline):

        batches = ClassBatches(images, labels, split.train, batch_size=64, rng=rng)
        batch = next(batches)       # {'x': f32[64, h, w, c], 'y': i64[64]} labels 0..n_classes-1

    Labels are positions in `classes` (class classes[i] is label i); with rotations=True
    each image is turned a random number r of quarter turns and labelled 4i + r, the same
    extra classes as Episodes(rotations=True). Each epoch visits every image once in a fresh
    order; every batch is full (an epoch's last incomplete batch is left out)."""

    def __init__(self, images, labels, classes, batch_size: int, rng: np.random.Generator, *,
                 rotations: bool = False, dtype="f32"):
        where = "ClassBatches"
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4 or labels.shape != images.shape[:1]:
            raise MetaccError(f"{where}: images must be [n, height, width, channels] with one label each",
                              found=f"images {images.shape}, labels {labels.shape}")
        self.classes = _class_ids(classes, "classes", where)
        self.rng = check_rng(rng, where)
        self.rotations = bool(rotations)
        if self.rotations and images.shape[1] != images.shape[2]:
            raise MetaccError(f"{where}: rotations need square images", found=f"{images.shape[1]}x{images.shape[2]}")
        self.dtype = as_dtype(dtype, where)
        position = {c: i for i, c in enumerate(self.classes.tolist())}
        self._rows = np.flatnonzero(np.isin(labels, self.classes))
        self._label = np.array([position[c] for c in labels[self._rows].tolist()], np.int64)
        self.batch_size = check_count(batch_size, "batch_size", where)
        if self.batch_size > len(self._rows):
            raise MetaccError(f"{where}: batch_size is larger than the number of images of these classes",
                              expected=f"at most {len(self._rows)}", found=str(self.batch_size))
        self.images = images
        self.epoch = 0
        self._order = np.arange(0)
        self._at = 0

    @property
    def n_classes(self) -> int:
        """The number of labels: len(classes), four times that with rotations."""
        return len(self.classes) * (TURNS if self.rotations else 1)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._at + self.batch_size > len(self._order):
            self._order = self.rng.permutation(len(self._rows))
            self._at = 0
            self.epoch += 1
        pick = self._order[self._at:self._at + self.batch_size]
        self._at += self.batch_size
        x = self.images[self._rows[pick]].astype(self.dtype, copy=True)
        y = self._label[pick]
        if self.rotations:
            turns = self.rng.integers(0, TURNS, size=len(pick))
            _turn(x, turns)
            y = y * TURNS + turns
        return {"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y, dtype=np.int64)}


def mean_ci95(values) -> tuple[float, float]:
    """The mean of per-episode figures (accuracies) and the half-width of its 95% confidence
    interval, 1.96 standard deviations / sqrt(episodes), as Finn et al. report few-shot
    accuracy (their code uses the population standard deviation, as here)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        raise MetaccError("mean_ci95: needs at least two episodes", found=f"{v.size}")
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(v.size))
