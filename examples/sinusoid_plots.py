"""The sinusoid demo's figures (matplotlib, the optional 'demo' extra).

Imported only when matplotlib is there: sinusoid_demo.py catches the
ImportError and says that it skips the plots.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")       # files only: no display is needed, or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metacc.runtime.tasks import SinusoidFamily  # noqa: E402

N_TASKS = 3                 # held-out tasks shown
SHOTS = 10
STEPS = (1, 10)


def plot_tasks(path, learners, functions, tasks, alpha):
    """One row per learner, one column per task: true curve, support points, predictions."""
    x = np.linspace(-5, 5, 200)[:, None]
    dtype = tasks["support"]["x"].dtype
    fig, axes = plt.subplots(len(learners), N_TASKS, figsize=(4 * N_TASKS, 3.2 * len(learners)),
                             sharex=True, sharey=True, squeeze=False)
    for row, learner in zip(axes, learners):
        for i, ax in enumerate(row):
            sx, sy = tasks["support"]["x"][i, :SHOTS], tasks["support"]["y"][i, :SHOTS]
            one = {k: v[i:i + 1] for k, v in functions.items()}
            ax.plot(x, SinusoidFamily.curve(one, x)[0, :, 0], "k-", lw=2, label="true function")
            ax.plot(sx, sy, "k^", ms=7, label=f"{SHOTS} support points")
            nets = list(learner.adapt(sx, sy, max(STEPS)))
            ax.plot(x, learner.mod.mlp(nets[0], x.astype(dtype)), ":", lw=1.5, label="before adaptation")
            for s, style in zip(STEPS, ("--", "-")):
                ax.plot(x, learner.mod.mlp(nets[s], x.astype(dtype)), style, lw=1.5,
                        label=f"after {s} step{'s' if s > 1 else ''}")
            ax.set_title(f"{learner.name}, task {i + 1}")
            ax.set_ylim(-6, 6)      # a diverged fine-tuning leaves the frame instead of squashing it
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Held-out tasks: {SHOTS}-shot adaptation with SGD, alpha = {alpha} unless named")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(path, histories):
    """Training loss (smoothed) and the periodic validation MSE of every learner."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        losses = np.asarray(h.losses)
        w = max(1, min(100, len(losses) // 10))
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax1.plot(np.arange(w, len(losses) + 1), smooth, label=name)
        its, vals = zip(*h.evals) if h.evals else ((), ())
        ax2.plot(its, vals, "o-", ms=3, label=name)
    ax1.set(xlabel="outer iteration", ylabel="training loss (moving average)", yscale="log",
            title="training loss: meta-loss (meta-learner) / regression loss (baseline)")
    ax2.set(xlabel="outer iteration", ylabel="query MSE", yscale="log",
            title="validation: 100 fixed 10-shot tasks after adaptation")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
