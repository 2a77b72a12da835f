"""benchmarks/dask_scale.py runs end to end on a small batch (slow: a cluster and P1's kernel)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "dask_scale.py"


@pytest.mark.slow
def test_small_run_writes_its_figures(tmp_path):
    out = tmp_path / "scale.json"
    env = dict(os.environ, METACC_CACHE_DIR=os.environ.get("METACC_CACHE_DIR", str(tmp_path / "cache")))
    run = subprocess.run([sys.executable, str(BENCH), "--tasks", "60,120", "--shard-size", "20", "--reps", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["tasks"] for r in result["rows"]] == [60, 120] and [r["shards"] for r in result["rows"]] == [3, 6]
    assert all(r["bit_identical"] for r in result["rows"])
    assert result["reps"] == 1 and "medians of 1 steps" in run.stdout
