"""Every example driver runs a few meta-training steps (float64, tiny batches).

The drivers compile the same float64 kernels as test_meta_gradients.py, so
here they load from the disk cache instead of compiling again.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.e2e.compiled import EXAMPLES

DRIVERS = ["sinusoid_maml", "sinusoid_fomaml", "sinusoid_truncated", "sinusoid_checkpointed", "meta_sgd",
           "per_layer_rates", "anil", "inner_adam", "learned_optimizer"]


def load_driver(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _leaves(tree):
    if isinstance(tree, dict):
        return [np.asarray(v) for v in tree.values()]
    return [leaf for sub in tree for leaf in _leaves(sub)]


@pytest.mark.parametrize("name", DRIVERS)
def test_driver_takes_meta_training_steps(name, capsys):
    driver = load_driver(name)
    params, log = driver.main(["--iterations", "3", "--meta-batch", "2", "--dtype", "f64"])
    assert len(log.losses) == 3 and all(np.isfinite(log.losses))
    assert all(leaf.dtype == np.float64 and np.all(np.isfinite(leaf)) for leaf in _leaves(params))
    assert "first 10 iterations" in capsys.readouterr().out


def test_every_example_program_has_a_driver():
    programs = {p.stem for p in EXAMPLES.glob("*.meta")}
    # these three have their own tests and no training driver yet
    assert programs - set(DRIVERS) <= {"imaml", "ridge_head", "straight_through"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sinusoid_maml", "meta_sgd", "learned_optimizer"])
def test_driver_lowers_the_meta_loss(name):
    driver = load_driver(name)
    _, log = driver.main(["--iterations", "300", "--dtype", "f64"])
    assert np.mean(log.losses[-30:]) < np.mean(log.losses[:30])
