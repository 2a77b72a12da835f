"""Every example driver runs a few meta-training steps (float64, tiny batches).

The drivers compile the same float64 kernels as test_meta_gradients.py, so
here they load from the disk cache instead of compiling again.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.e2e.compiled import EXAMPLES
from tests.scripts import load_script

DRIVERS = ["sinusoid_maml", "sinusoid_fomaml", "sinusoid_truncated", "sinusoid_checkpointed", "meta_sgd",
           "per_layer_rates", "anil", "inner_adam", "learned_optimizer", "imaml", "ridge_head", "straight_through",
           "data_selection", "conv4_maml"]
# drivers that also score held-out tasks for their figure: only a few here
EVAL = {"anil": ["--eval-tasks", "4"], "imaml": ["--eval-tasks", "2"], "ridge_head": ["--eval-tasks", "3"],
        "straight_through": ["--eval-batches", "3"], "data_selection": ["--eval-tasks", "3"],
        "conv4_maml": ["--eval-tasks", "2"]}
FIGURE = {"anil": "held-out query MSE", "imaml": "held-out query MSE after the proximal solve",
          "ridge_head": "held-out query accuracy", "straight_through": "held-out error rate",
          "data_selection": "held-out query MSE after", "conv4_maml": "held-out query accuracy"}


def load_driver(name):
    # as `python examples/NAME.py` does: the drivers import examples/driver.py as `driver`
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return load_script(EXAMPLES / f"{name}.py", f"example_{name}")


def _leaves(tree):
    if isinstance(tree, dict):
        return [np.asarray(v) for v in tree.values()]
    return [leaf for sub in tree for leaf in _leaves(sub)]


@pytest.mark.parametrize("name", DRIVERS)
def test_driver_takes_meta_training_steps(name, capsys):
    driver = load_driver(name)
    params, log = driver.main(["--iterations", "3", "--meta-batch", "2", "--dtype", "f64"] + EVAL.get(name, []))
    assert len(log.losses) == 3 and all(np.isfinite(log.losses))
    assert all(leaf.dtype == np.float64 and np.all(np.isfinite(leaf)) for leaf in _leaves(params))
    out = capsys.readouterr().out
    assert "first 10 iterations" in out
    if name in FIGURE:
        line = next(ln for ln in out.splitlines() if ln.startswith(FIGURE[name]))
        numbers = [float(x.rstrip("%,;)")) for x in line.split(":", 1)[1].split() if x[0].isdigit() and "." in x]
        assert len(numbers) >= 2 and all(np.isfinite(numbers)), line


def test_every_example_program_has_a_driver():
    programs = {p.stem for p in EXAMPLES.glob("*.meta")}
    assert programs == set(DRIVERS)          # the README says every example has one
    assert all((EXAMPLES / f"{name}.py").exists() for name in DRIVERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sinusoid_maml", "meta_sgd", "learned_optimizer"])
def test_driver_lowers_the_meta_loss(name):
    driver = load_driver(name)
    _, log = driver.main(["--iterations", "300", "--dtype", "f64"])
    assert np.mean(log.losses[-30:]) < np.mean(log.losses[:30])


def _held_out_numbers(out: str, prefix: str) -> list[float]:
    line = next(ln for ln in out.splitlines() if ln.startswith(prefix))
    return [float(x.rstrip("%,;)")) for x in line.split(":", 1)[1].split() if x[0].isdigit() and "." in x]


def test_data_selection_trains_with_the_gumbel_estimator_too(capsys):
    # select_relaxed's float64 meta-gradient kernel is the one test_examples_vs_interpreter builds
    driver = load_driver("data_selection")
    _, log = driver.main(["--iterations", "3", "--meta-batch", "2", "--dtype", "f64", "--eval-tasks", "3",
                          "--estimator", "gumbel"])
    assert len(log.losses) == 3 and all(np.isfinite(log.losses))
    assert len(_held_out_numbers(capsys.readouterr().out, FIGURE["data_selection"])) == 6


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["dice", "gumbel"])
def test_data_selection_learns_to_drop_the_corrupted_points(estimator, capsys):
    driver = load_driver("data_selection")
    driver.main(["--eval-tasks", "200", "--estimator", estimator])        # 1,000 iterations, float32
    untrained, trained, _, keep_all, p_corrupted, p_clean = _held_out_numbers(capsys.readouterr().out,
                                                                              FIGURE["data_selection"])
    assert trained < 0.5 * untrained and trained < keep_all
    assert p_corrupted < 30 < 70 < p_clean
