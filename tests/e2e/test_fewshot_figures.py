"""examples/fewshot_plots.py: the few-shot figures are written, name their data set, and mark
each query's prediction right or wrong."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metacc.runtime.data import ImageSet
from tests.scripts import load_script

pytest.importorskip("matplotlib")
PLOTS = load_script(Path(__file__).resolve().parents[2] / "examples" / "fewshot_plots.py", "fewshot_plots")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.random((60, 28, 28, 1)).astype(np.float32)
    return ImageSet(name="tiny-test-set", images=images, labels=np.repeat(np.arange(6, dtype=np.int64), 10),
                    class_names=tuple(f"font{c % 2}/{c}" for c in range(6)), groups=np.arange(6) % 2,
                    group_names=("font0", "font1"))


def test_the_example_grid_is_written(tmp_path, data):
    out = PLOTS.plot_examples(tmp_path / "examples.png", data, n_classes=4, n_instances=5)
    assert out.read_bytes().startswith(PNG)


def test_the_episode_figure_marks_right_and_wrong_predictions(tmp_path, data, monkeypatch):
    tasks = data.episodes(ways=3, shots=1, queries=4).sample(np.random.default_rng(1), 2)
    predicted = tasks["query"]["y"].copy()
    predicted[0, 0] = (predicted[0, 0] + 1) % 3                      # one wrong prediction
    titles = []
    real_show = PLOTS._show

    def spy(ax, image, title=None, colour="black"):
        titles.append((title, colour))
        real_show(ax, image, title, colour)
    monkeypatch.setattr(PLOTS, "_show", spy)
    out = PLOTS.plot_episodes(tmp_path / "episodes.png", tasks, predicted, data.name, n_episodes=2)
    assert out.read_bytes().startswith(PNG)
    queries = [t for t in titles if "/" in (t[0] or "")]
    assert len(queries) == 2 * 10 and [c for _, c in queries].count("red") == 1
    assert queries[0] == (f"{predicted[0, 0]} / {tasks['query']['y'][0, 0]}", "red")
    assert [t for t, _ in titles].count("label 0") == 2                 # each episode's support row


def test_the_accuracy_plot_is_written(tmp_path):
    curves = {"MAML": ([0, 1, 10], [0.2, 0.6, 0.8], [0.01, 0.02, 0.02]), "baseline": ([0, 1, 10], [0.2, 0.4, 0.5],
                                                                                    [0.01, 0.02, 0.02])}
    out = PLOTS.plot_accuracy_vs_steps(tmp_path / "acc.png", curves, "tiny-test-set", chance=0.2)
    assert out.read_bytes().startswith(PNG)
