"""`metacc gradcheck`: what it says for a non-scalar function, and coordinates drawn without repeats."""
from __future__ import annotations

from pathlib import Path

import pytest

from metacc.cli import main
from metacc.errors import MetaccError
from metacc.gradcheck import gradcheck

MAML = str(Path(__file__).resolve().parents[2] / "examples" / "sinusoid_maml.meta")

# 1 + 3 = 4 coordinates in all: ten draws with replacement would repeat some
TINY = """
params P {
    a: f64 = const(0.5)
    v: f64[3] = normal(1.0)
}

fn f(p: P, x: f64[3]) -> f64 {
    return sum(tanh(p.a * p.v * x) ^ 2)
}
"""


def test_non_scalar_fn_names_what_gradcheck_checks(capsys):
    assert main(["gradcheck", MAML, "--fn", "mlp"]) == 1
    err = capsys.readouterr().err
    assert "gradcheck checks the gradient of a scalar value" in err and "shape [n, 1]" in err
    assert "sinusoid_maml.meta:19:" in err and "^" in err          # points at the result type
    # it no longer suggests a vjp kernel as if gradcheck had one
    assert "use vjp" not in err and "sum(mlp(...))" in err


def test_non_scalar_is_refused_before_compiling():
    with pytest.raises(MetaccError, match="scalar value"):
        gradcheck(MAML, "mlp")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gradcheck") / "tiny.meta"
    path.write_text(TINY)
    return str(path)


def test_coordinates_are_distinct_and_capped_at_the_number_there_are(tiny):
    checks = gradcheck(tiny, "f", n_coords=10)
    coords = [c.what for c in checks if not c.what.startswith("direction")]
    assert len(coords) == len(set(coords)) == 4
    assert set(coords) == {"p.a[]", "p.v[0]", "p.v[1]", "p.v[2]"}
    assert max(c.rel for c in checks) < 1e-6


def test_fewer_draws_than_coordinates_still_never_repeat(tiny):
    for seed in range(5):
        coords = [c.what for c in gradcheck(tiny, "f", seed=seed, n_coords=3) if not c.what.startswith("direction")]
        assert len(coords) == len(set(coords)) == 3
