"""Figures for few-shot classification (matplotlib, the optional 'demo' extra).

- plot_examples: a few classes of an image set, a row each (what the data looks like);
- plot_episodes: test episodes, the support images with their labels, then the query
  images with the predicted and the true label (green when right, red when wrong);
- plot_accuracy_vs_steps: query accuracy with its 95% interval against adaptation steps.

Every figure's title carries the data set's name, so a figure of the stand-in never
reads as one of Omniglot. Imported only where matplotlib is installed.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")       # files only: no display is needed, or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _show(ax, image, title=None, colour="black"):
    ax.imshow(image[..., 0], cmap="gray_r", vmin=0.0, vmax=1.0)     # ink dark on white, as on paper
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=7, color=colour, pad=2)


def plot_examples(path, data, n_classes: int = 8, n_instances: int = 10, seed: int = 0, dpi: int = 110):
    """n_classes random classes of `data` (an ImageSet), n_instances images of each."""
    rng = np.random.default_rng(seed)
    classes = np.sort(rng.choice(data.n_classes, size=min(n_classes, data.n_classes), replace=False))
    fig, axes = plt.subplots(len(classes), n_instances, figsize=(n_instances * 0.8, len(classes) * 0.85),
                             squeeze=False)
    for row, c in zip(axes, classes):
        rows = np.flatnonzero(data.labels == c)[:n_instances]
        for i, ax in enumerate(row):
            if i < len(rows):
                _show(ax, data.images[rows[i]])
            else:
                ax.axis("off")
        row[0].set_ylabel("/".join(data.class_names[c].split("/")[-2:]), fontsize=6, rotation=0,
                          ha="right", va="center")
    fig.suptitle(f"{data.name}: {n_instances} images of each of {len(classes)} classes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_episodes(path, tasks, predicted, data_name: str, n_episodes: int = 3, max_queries: int = 10,
                  title: str = ""):
    """A block of two rows per episode: its support images (label above each), then up to
    max_queries query images titled 'predicted / true'. predicted: [T, N*Q] labels."""
    sx, sy = tasks["support"]["x"], tasks["support"]["y"]
    qx, qy = tasks["query"]["x"], tasks["query"]["y"]
    predicted = np.asarray(predicted)
    n_episodes = min(n_episodes, len(sx))
    width = max(sx.shape[1], min(max_queries, qx.shape[1]))
    fig, axes = plt.subplots(2 * n_episodes, width, figsize=(width * 0.9, n_episodes * 2.1), squeeze=False)
    for e in range(n_episodes):
        sup, que = axes[2 * e], axes[2 * e + 1]
        for i, ax in enumerate(sup):
            if i < sx.shape[1]:
                _show(ax, sx[e, i], f"label {sy[e, i]}")
            else:
                ax.axis("off")
        # queries spread over the labels: every (Q/width)-th one, so each class shows
        pick = np.linspace(0, qx.shape[1] - 1, min(width, qx.shape[1])).round().astype(int)
        for i, ax in enumerate(que):
            if i < len(pick):
                j = pick[i]
                right = predicted[e, j] == qy[e, j]
                _show(ax, qx[e, j], f"{predicted[e, j]} / {qy[e, j]}", "green" if right else "red")
            else:
                ax.axis("off")
        sup[0].set_ylabel(f"episode {e + 1}\nsupport", fontsize=7)
        que[0].set_ylabel("query\npred / true", fontsize=7)
    fig.suptitle(f"{data_name}: test episodes{': ' + title if title else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_vs_steps(path, curves: dict, data_name: str, chance: float, title: str = ""):
    """curves: {learner: (steps, mean accuracies, 95% half-widths)}; one line with its band each."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, mean, half) in curves.items():
        steps, mean, half = (np.asarray(v, np.float64) for v in (steps, mean, half))
        ax.plot(steps, 100 * mean, "o-", ms=4, label=name)
        ax.fill_between(steps, 100 * (mean - half), 100 * (mean + half), alpha=0.2)
    ax.axhline(100 * chance, color="grey", ls=":", label=f"chance ({100 * chance:.0f}%)")
    ax.set(xlabel="adaptation steps on the support set", ylabel="query accuracy (%)",
           title=f"{data_name}{': ' + title if title else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    # python3 examples/fewshot_plots.py [PATH]: the stand-in's preview in docs/data.md
    import sys

    from metacc.runtime.data import load_hershey_standin

    standin = load_hershey_standin()
    print("wrote", plot_examples(sys.argv[1] if len(sys.argv) > 1 else "standin_examples.png", standin,
                                 n_classes=10, n_instances=12, seed=3, dpi=72))
