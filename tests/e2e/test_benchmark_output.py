"""benchmarks/p1_maml.py writes an untracked file unless asked to replace the published one.

Only the option parsing is run: the benchmark itself takes minutes.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "p1_maml.py"
PUBLISHED = BENCH.with_name("p1_results.json")


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "p1_maml")


@pytest.mark.parametrize("argv", [["--quick"], [], ["--ks", "5"]])
def test_default_output_is_untracked(bench, argv):
    _, out = bench.parse_args(argv)
    assert out == Path("out") / "p1_results.json"
    assert out.resolve() != PUBLISHED.resolve()


def test_out_flag_is_followed(bench, tmp_path):
    _, out = bench.parse_args(["--quick", "--out", str(tmp_path / "r.json")])
    assert out == tmp_path / "r.json"


def test_only_a_full_publish_run_writes_the_tracked_file(bench):
    _, out = bench.parse_args(["--publish"])
    assert out.resolve() == PUBLISHED.resolve()


@pytest.mark.parametrize("argv", [["--quick", "--publish"], ["--publish", "--ks", "5"],
                                  ["--publish", "--out", "x.json"], ["--quick", "--out", str(PUBLISHED)]])
def test_the_tracked_file_is_never_written_by_accident(bench, argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2 and "publish" in capsys.readouterr().err
