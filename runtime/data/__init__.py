"""Labelled image sets for few-shot episodes (installed as metacc.runtime.data).

Every loader returns an `ImageSet`: images [n, h, w, 1] float32 in [0, 1] with
strokes bright on a dark background (1 = ink, as Finn et al. feed Omniglot),
integer labels, and the class and group (alphabet) names.

- `load_omniglot(DIR)`: Omniglot from a local copy in its distributed layout;
  `finn_split` is Finn et al.'s 1,200-character meta-training split.
- `load_digits()`: scikit-learn's bundled 8x8 digits (the `fewshot` extra).
- `load_hershey_standin()`: an Omniglot-like stand-in rendered from the stroke
  fonts of the Hershey-Fonts package (the `fewshot` extra); not Omniglot.
- `fewshot_data(DIR or None)`: one of the two with its class split (what a demo runs on).

Nothing here downloads anything.
"""
from metacc.errors import api_boundary as _api
from metacc.runtime.data import digits as _digits, hershey as _hershey, omniglot as _omniglot, standard as _standard
from metacc.runtime.data.imageset import ImageSet  # noqa: F401
from metacc.runtime.data.hershey import STANDIN_NAME  # noqa: F401

# the public loaders, with metacc's frames filtered from a MetaccError's traceback (metacc.errors)
load_digits = _api(_digits.load_digits)
load_hershey_standin = _api(_hershey.load_hershey_standin)
load_omniglot = _api(_omniglot.load_omniglot)
finn_split = _api(_omniglot.finn_split)
fewshot_data = _api(_standard.fewshot_data)
