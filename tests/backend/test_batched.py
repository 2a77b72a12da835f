"""Whole meta-gradient steps over a task batch in one call: the batched entry
equals the mean of per-task interpreter results, and does not depend on the
number of threads (bit for bit)."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from metacc.interp import evaluate
from metacc.pipeline import kernel_ir
from tests.ad.handbuilt import maml

B = 7


@pytest.fixture(scope="module")
def meta_grad():
    # theta, x, y, xq, yq, alpha -> (query loss, d loss / d theta) per task
    return kernel_ir(maml(3), "meta_grad", wrt=[0])


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(11)
    theta = rng.normal(size=(3, 1))
    x, y = rng.normal(size=(B, 6, 3)), rng.normal(size=(B, 6, 1))
    xq, yq = rng.normal(size=(B, 4, 3)), rng.normal(size=(B, 4, 1))
    return [theta, x, y, xq, yq, np.float64(0.1)]


FLAGS = [False, True, True, True, True, False]


def test_batched_mean_equals_mean_of_tasks(build, meta_grad, batch):
    mod = build(meta_grad, FLAGS, ["mean", "mean"])
    loss, grad = mod.ENTRY_BATCHED(*batch)
    per_task = [evaluate(meta_grad, [batch[0]] + [a[b] for a in batch[1:5]] + [batch[5]]) for b in range(B)]
    np.testing.assert_allclose(loss, np.mean([p[0] for p in per_task]), rtol=1e-10)
    np.testing.assert_allclose(grad, np.mean([p[1] for p in per_task], axis=0), rtol=1e-10)
    assert grad.shape == (3, 1)


def test_a_scalar_per_task(build, meta_grad, batch):
    """A batched rank-0 input (here the step size, one per task) is read per task."""
    alphas = np.linspace(0.05, 0.2, B)
    mod = build(meta_grad, FLAGS[:5] + [True], ["stack", "stack"])
    losses, grads = mod.ENTRY_BATCHED(*batch[:5], alphas)
    assert losses.shape == (B,) and grads.shape == (B, 3, 1)
    for b in range(B):
        want = evaluate(meta_grad, [batch[0]] + [a[b] for a in batch[1:5]] + [alphas[b]])
        np.testing.assert_allclose(losses[b], want[0], rtol=1e-10)
        np.testing.assert_allclose(grads[b], want[1], rtol=1e-10)
    assert len(set(np.round(losses, 12))) == B      # the tasks (and step sizes) differ


def test_stack_and_sum_reductions(build, meta_grad, batch):
    mod = build(meta_grad, FLAGS, ["stack", "sum"])
    losses, grad_sum = mod.ENTRY_BATCHED(*batch)
    assert losses.shape == (B,)
    for b in (0, B - 1):
        want = evaluate(meta_grad, [batch[0]] + [a[b] for a in batch[1:5]] + [batch[5]])
        np.testing.assert_allclose(losses[b], want[0], rtol=1e-10)
    mean_mod = build(meta_grad, FLAGS, ["mean", "mean"])
    np.testing.assert_allclose(grad_sum / B, mean_mod.ENTRY_BATCHED(*batch)[1], rtol=1e-12)


def test_result_independent_of_thread_count(build, meta_grad, batch):
    mod = build(meta_grad, FLAGS, ["mean", "mean"])
    before = numba.get_num_threads()
    results = []
    try:
        for n in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            results.append(mod.ENTRY_BATCHED(*batch))
    finally:
        numba.set_num_threads(before)
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(grad, results[0][1])


def test_single_task_batch(build, meta_grad, batch):
    mod = build(meta_grad, FLAGS, ["mean", "mean"])
    one = [batch[0]] + [a[:1] for a in batch[1:5]] + [batch[5]]
    loss, grad = mod.ENTRY_BATCHED(*one)
    want = evaluate(meta_grad, [batch[0]] + [a[0] for a in batch[1:5]] + [batch[5]])
    np.testing.assert_allclose(grad, want[1], rtol=1e-10)


def test_workspace_reuse_across_calls_and_shapes(build, meta_grad, batch):
    """Workspaces are kept between calls: a call with other sizes, then the
    first sizes again, still gives the interpreter's answer."""
    mod = build(meta_grad, FLAGS, ["mean", "mean"])
    first = mod.ENTRY_BATCHED(*batch)
    rng = np.random.default_rng(2)
    other = [batch[0], rng.normal(size=(3, 9, 3)), rng.normal(size=(3, 9, 1)), rng.normal(size=(3, 2, 3)),
             rng.normal(size=(3, 2, 1)), batch[5]]
    loss, _ = mod.ENTRY_BATCHED(*other)
    want = np.mean([evaluate(meta_grad, [other[0]] + [a[b] for a in other[1:5]] + [other[5]])[0]
                    for b in range(3)])
    np.testing.assert_allclose(loss, want, rtol=1e-10)
    again = mod.ENTRY_BATCHED(*batch)
    assert again[0] == first[0] and np.array_equal(again[1], first[1])
