"""The few-shot image data a demo runs on: the stand-in by default, real Omniglot when given a folder.

Both come with a class split in the proportions of Finn et al.'s Omniglot split
(1,100 / 100 / 423 of 1,623 characters: 68% meta-train, 6% meta-validation,
26% meta-test): Omniglot with their split itself (omniglot.finn_split), the
stand-in with a seeded split of its classes (any class, like Finn et al.'s, so
fonts are mixed across the splits as their alphabets are).
"""
from __future__ import annotations

from pathlib import Path

from metacc.runtime.data.hershey import load_hershey_standin
from metacc.runtime.data.imageset import ImageSet
from metacc.runtime.data.omniglot import finn_split, load_omniglot
from metacc.runtime.episodes import ClassSplit

VAL_SHARE, TEST_SHARE = 100 / 1623, 423 / 1623


def fewshot_data(data_dir: str | Path | None = None, seed: int = 1) -> tuple[ImageSet, ClassSplit]:
    """(images, split): Omniglot under data_dir (`--data DIR`) with Finn et al.'s split, or,
    without data_dir, the hershey-omniglot-standin with a seeded split of its classes."""
    if data_dir is not None:
        data = load_omniglot(data_dir)
        return data, finn_split(data, seed=seed)
    data = load_hershey_standin()
    return data, data.split(seed, VAL_SHARE, TEST_SHARE)
