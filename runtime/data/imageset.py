"""ImageSet: a labelled image array with the names of its classes and their groups."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacc.errors import MetaccError
from metacc.runtime.episodes import ClassSplit, Episodes


@dataclass(frozen=True, eq=False)       # arrays inside: compare fields explicitly
class ImageSet:
    """images [n, h, w, 1] float32 in [0, 1] (ink 1), labels [n] int64 in 0..n_classes-1;
    class_names[c] names class c, groups[c] is the index of its group (Omniglot's alphabet,
    the stand-in's font) in group_names. `name` says which data set this is, and is what
    outputs print (a stand-in is never called Omniglot)."""
    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    groups: np.ndarray
    group_names: tuple[str, ...]

    def __post_init__(self):
        n_classes = len(self.class_names)
        if self.images.ndim != 4 or self.images.dtype != np.float32 or len(self.labels) != len(self.images):
            raise MetaccError(f"ImageSet {self.name}: images must be float32 [n, h, w, c] with one label each",
                              found=f"{self.images.dtype} {self.images.shape}, {len(self.labels)} labels")
        if self.labels.dtype != np.int64 or (len(self.labels) and not 0 <= self.labels.min() <= self.labels.max()
                                             < n_classes):
            raise MetaccError(f"ImageSet {self.name}: labels must be int64 class indices below {n_classes}")
        if self.groups.shape != (n_classes,):
            raise MetaccError(f"ImageSet {self.name}: groups needs one group index per class",
                              expected=f"({n_classes},)", found=str(self.groups.shape))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def split(self, seed: int, n_val, n_test, by_group: bool = False) -> ClassSplit:
        """A seeded class split; by_group keeps each group (alphabet, font) in one split."""
        return ClassSplit.random(np.arange(self.n_classes), seed, n_val, n_test,
                                 groups=self.groups if by_group else None)

    def episodes(self, classes=None, **options) -> Episodes:
        """Episodes over `classes` (default all); options as for Episodes (ways, shots, ...)."""
        return Episodes(self.images, self.labels, classes, **options)
