"""P1's model and loss, lowered from the example, against plain NumPy."""
from __future__ import annotations

import numpy as np

from metacc.frontend import load
from metacc.interp import evaluate
from tests.frontend.helpers import ROOT
from tests.frontend.numpy_models import NET, init_net, mlp, mse, sinusoid_task

P1 = ROOT / "examples" / "sinusoid_maml.meta"


def _setup(dtype):
    program = load(P1, float_dtype=dtype)
    rng = np.random.default_rng(42)
    p = {k: v.astype(dtype.replace("f", "float")) for k, v in init_net(rng, (1, 40, 40, 1)).items()}
    xs, ys, xq, yq = sinusoid_task(rng, k=13, q=7)
    return program, p, xs.astype(p["w1"].dtype), ys.astype(p["w1"].dtype)


def test_mlp_matches_numpy_in_float64():
    program, p, x, _ = _setup("f64")
    (out,) = evaluate(program.functions["mlp"].ir, [p[k] for k in NET] + [x])
    assert out.shape == (13, 1) and out.dtype == np.float64
    np.testing.assert_allclose(out, mlp(p, x), rtol=1e-12, atol=1e-12)


def test_mse_matches_numpy_in_float64_and_float32():
    for dtype, tol in (("f64", 1e-12), ("f32", 1e-5)):
        program, p, x, y = _setup(dtype)
        (loss,) = evaluate(program.functions["mse"].ir, [p[k] for k in NET] + [x, y])
        assert loss.dtype == (np.float64 if dtype == "f64" else np.float32)
        expected = mse({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float64), y.astype(np.float64))
        np.testing.assert_allclose(loss, expected, rtol=tol)


def test_mse_binds_its_dim_per_call():
    """The same IR evaluates for any number of points: n is symbolic."""
    program, p, x, y = _setup("f64")
    fn = program.functions["mse"].ir
    for n in (1, 5, 13):
        (loss,) = evaluate(fn, [p[k] for k in NET] + [x[:n], y[:n]])
        np.testing.assert_allclose(loss, mse(p, x[:n], y[:n]), rtol=1e-12)
