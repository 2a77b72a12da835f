"""The training loop on a problem small enough to know the answer (no compiled kernel needed)."""
from __future__ import annotations

import builtins
import io

import numpy as np
import pytest

from metacc.errors import MetaccError
from metacc.runtime import train as train_mod
from metacc.runtime.optim import SGD, Adam
from metacc.runtime.train import train


def quadratic(params, target):
    """loss = |w - target|^2, gradient 2 (w - target)."""
    d = params["w"] - target
    return float(np.sum(d * d)), {"w": 2 * d}


def test_train_converges_records_losses_and_evaluates_on_schedule():
    rng = np.random.default_rng(0)
    calls = []

    def evaluate(params, it):
        calls.append(it)
        return float(np.sum(params["w"] ** 2))

    params, h = train(quadratic, {"w": np.array([3.0, -1.0])}, SGD(lr=0.1),
                      lambda: rng.normal(scale=0.01, size=2), iterations=100,
                      evaluate=evaluate, eval_every=25, progress=False)
    assert len(h.losses) == 100 and h.losses[-1] < 1e-3 < h.losses[0]
    assert calls == [25, 50, 75, 100] and [it for it, _ in h.evals] == calls
    assert np.allclose(params["w"], 0, atol=0.05) and h.seconds > 0


def test_evaluation_runs_after_the_last_iteration_even_off_schedule():
    seen = []
    train(quadratic, {"w": np.zeros(1)}, Adam(), lambda: np.ones(1), 7,
          evaluate=lambda p, it: seen.append(it), eval_every=5, progress=False)
    assert seen == [5, 7]


def test_tasks_may_be_an_iterator_and_training_can_resume():
    opt = SGD(lr=0.25)
    p, _ = train(quadratic, {"w": np.array([1.0])}, opt, iter([np.zeros(1)] * 2), 2, progress=False)
    assert np.allclose(p["w"], 0.25)   # each step halves w
    with pytest.raises(StopIteration):
        train(quadratic, {"w": np.array([1.0])}, opt, iter([np.zeros(1)]), 2, progress=False)


def test_a_non_finite_loss_stops_with_a_message():
    def blows_up(params, t):
        return float("nan"), {"w": np.zeros(1)}
    with pytest.raises(MetaccError, match="not finite at iteration 1"):
        train(blows_up, {"w": np.zeros(1)}, Adam(), lambda: None, 3, progress=False)


def test_bad_arguments_are_user_errors():
    with pytest.raises(MetaccError, match="tasks must be"):
        train(quadratic, {"w": np.zeros(1)}, Adam(), [np.zeros(1)], 1, progress=False)
    with pytest.raises(MetaccError, match="optimizer"):
        train(quadratic, {"w": np.zeros(1)}, object(), lambda: 0, 1, progress=False)
    with pytest.raises(MetaccError, match="iterations"):
        train(quadratic, {"w": np.zeros(1)}, Adam(), lambda: 0, -1, progress=False)


def test_fallback_progress_line_without_tqdm(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    bar = train_mod.progress_bar(3, "fit")
    assert isinstance(bar, train_mod._LineBar)
    bar.stream = io.StringIO()
    bar.set_postfix_str("loss 1.5")
    for _ in range(3):
        bar.update(1)
    bar.close()
    text = bar.stream.getvalue()
    assert "fit: 3/3" in text and "loss 1.5" in text and text.endswith("\n")
    assert train_mod.progress_bar(3, enabled=False) is None
