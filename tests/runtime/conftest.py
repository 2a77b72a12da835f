"""One compiled module per test session (kernels are built on first use and
cached under a per-run directory)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import metacc

SOURCE = """
params Lin {
    w: f64[3, 2] = he_normal
    b: f64[2] = zeros
}

task Reg {
    support: (x: f64[k, 3], y: f64[k, 2])
    query:   (x: f64[q, 3], y: f64[q, 2])
}

fn loss(p: Lin, x: f64[n, 3], y: f64[n, 2]) -> f64 {
    return mean((tanh(x @ p.w + p.b) - y) ^ 2)
}

meta adapt(theta: Lin, t: Reg, alpha: f64 = 0.1, K: int = 2) -> f64 {
    p = theta
    repeat K {
        p = p - alpha * grad(loss(p, t.support.x, t.support.y), p)
    }
    return loss(p, t.query.x, t.query.y)
}
"""


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    env = os.environ.get("METACC_CACHE_DIR")
    root = Path(env) / "runtime-tests" if env else tmp_path_factory.mktemp("metacc-cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def mod(cache_dir):
    return metacc.compile(SOURCE, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def data():
    rng = np.random.default_rng(1)
    B = 5
    return {
        "x": rng.normal(size=(6, 3)), "y": rng.normal(size=(6, 2)),
        "tasks": {"support": {"x": rng.normal(size=(B, 4, 3)), "y": rng.normal(size=(B, 4, 2))},
                  "query": {"x": rng.normal(size=(B, 5, 3)), "y": rng.normal(size=(B, 5, 2))}},
        "v": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))},
    }
