"""The README's published figures: docs/regenerate.py finds them, compares them, and (slow) reproduces them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.compiled import EXAMPLES
from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "regenerate.py"


@pytest.fixture(scope="module")
def regen():
    return load_script(SCRIPT, "regenerate")


def test_every_example_has_a_published_figure(regen):
    published = regen.readme_driver_figures()
    assert set(published) == {p.stem for p in EXAMPLES.glob("*.meta")} == set(regen.DRIVERS)
    for name, cell in published.items():
        assert len(regen.figures(cell)) >= 2, (name, cell)       # at least a before and an after


def test_figures_skip_counts_and_timings(regen):
    lines = ["meta-loss: first 10 iterations 3.434, last 10 0.813 (5.5 s)", "metacc: compiling anil forward (f32)…",
             "held-out query accuracy (200 tasks, 5-way 5-shot): initial 43.6%, trained 74.7% (chance 20%)"]
    assert regen.driver_figures(lines) == ["3.434", "0.813", "43.6%", "74.7%", "20%"]
    text = regen.walkthrough_sentence({"first_50": 4.7213, "last_50": 0.9012, "lr": 0.00712, "clip": 0.9631})
    assert regen.figures(text) == ["4.72", "0.90", "0.0071", "0.96"]


def test_compare_says_same_drifted_or_differs(regen):
    assert regen.compare(["0.87", "43.6%"], ["0.87", "43.6%"])[0] == "same"
    assert regen.compare(["0.87", "0.0067"], ["0.853", "0.00736"])[0] == "drifted"   # two builds' figures
    assert regen.compare(["43.6%"], ["45.0%"])[0] == "drifted"
    assert regen.compare(["0.87"], ["1.20"])[0] == "differs"
    assert regen.compare(["43.6%"], ["60.0%"])[0] == "differs"
    assert regen.compare(["0.87", "0.5"], ["0.87"])[0] == "differs"


def test_readme_walkthrough_sentence_is_where_the_check_looks(regen):
    import re
    text = " ".join(regen.README.read_text().split())
    m = re.search(r"Measured: the meta-loss fell from .*? and clip = [\d.]+", text)
    assert m and len(regen.figures(m.group(0))) == 4


@pytest.mark.slow
def test_published_figures_reproduce(regen, tmp_path, capsys):
    """The walkthrough as written and the quick drivers with their defaults (a minute or two)."""
    rc = regen.main(["walkthrough", "anil", "ridge_head", "straight_through", "--check",
                     "--out", str(tmp_path / "figures.json")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert (tmp_path / "figures.json").exists()
