"""benchmarks/p8_conv4.py's own arithmetic: the FLOP count it divides by and the tasks it times.

The benchmark itself takes many minutes (cold conv kernels, JAX and PyTorch): not run here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "p8_conv4.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "p8_conv4")


def test_flop_count_is_the_issues(bench):
    """Issue 11: one K = 1 step over 32 tasks is about 167 GFLOP, first order 149."""
    assert bench.step_gflop(1, "full") == pytest.approx(167, abs=0.5)
    assert bench.step_gflop(1, "first") == pytest.approx(149, abs=1.0)
    # each inner step adds the support set's passes; the query's are paid once
    per_step = bench.step_gflop(2, "full") - bench.step_gflop(1, "full")
    assert bench.step_gflop(5, "full") == pytest.approx(bench.step_gflop(1, "full") + 4 * per_step)
    # the first conv layer by hand: 28 x 28 outputs x 9 taps x 1 channel in x 64 out
    assert bench.conv_macs_per_image()[0] == 28 * 28 * 9 * 64


def test_tasks_are_p8_shaped(bench):
    t = bench.fewshot_tasks(3)
    assert t["support"]["x"].shape == (3, 5, 28, 28, 1) and t["query"]["x"].shape == (3, 75, 28, 28, 1)
    assert t["support"]["x"].dtype == np.float32 and t["query"]["y"].dtype == np.int64
    assert sorted(set(t["query"]["y"][0])) == list(range(5)) and np.all(np.bincount(t["query"]["y"][0]) == 15)
    np.testing.assert_array_equal(bench.fewshot_tasks(3)["query"]["x"], t["query"]["x"])     # fixed seed


def test_default_output_is_untracked(bench):
    assert bench.parse_args([]).out == Path("out") / "p8_results.json"
