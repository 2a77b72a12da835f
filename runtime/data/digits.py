"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8, 10 classes, no download.

Ten classes are few for episodes (a 5-way split leaves little to hold out), so this
set is for quick tests of the episode and training code, not for few-shot figures.
Pixels are 0..16 in the source; here ink in [0, 1] (value / 16), as the other sets.
"""
from __future__ import annotations

import numpy as np

from metacc.runtime.data.extras import missing
from metacc.runtime.data.imageset import ImageSet

NAME = "sklearn-digits"


def load_digits() -> ImageSet:
    """The 1,797 digits as an ImageSet of [1797, 8, 8, 1] float32 images; classes '0'..'9'."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise missing("scikit-learn", "load_digits") from None
    bunch = sklearn_digits()
    images = (np.asarray(bunch.images, np.float64) / 16.0).astype(np.float32)[..., None]
    return ImageSet(name=NAME, images=images, labels=np.asarray(bunch.target, np.int64),
                    class_names=tuple(str(d) for d in range(10)), groups=np.zeros(10, np.int64),
                    group_names=("digits",))
