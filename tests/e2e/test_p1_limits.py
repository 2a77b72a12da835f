"""benchmarks/p1_limits.py counts a step's matmul FLOPs from the kernel IR: checked on a
hand-built function whose count is known (the timing itself is the benchmark's, not a test's)."""
from __future__ import annotations

from pathlib import Path

from metacc.ir.builder import Builder
from metacc.ir.types import TensorType
from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "p1_limits.py"


def test_matmul_flops_count_loops_and_symbolic_dims():
    bench = load_script(BENCH, "p1_limits")
    body = Builder()
    c = body.input("c", TensorType("f64", (2, 2)))
    h = body.input("h", TensorType("f64", (2, 2)))
    loop = body.build("body", [body.matmul(c, h)])            # 2 * 2 * 2 * 2 = 16 per step
    b = Builder()
    x = b.input("x", TensorType("f64", ("n", 4)))
    w = b.input("w", TensorType("f64", (4, 5)))
    c0 = b.input("c0", TensorType("f64", (2, 2)))
    y = b.matmul(x, w)                                         # 2 * n * 4 * 5 = 120 at n = 3
    (out,) = b.emit("scan", c0, c0, body=loop, length=7, n_consts=1, n_carry=1)
    fn = b.build("f", [y, out])
    assert bench.matmul_flops(fn, {"n": 3}) == 120 + 7 * 16
    assert bench.matmul_flops(fn, {"n": 10}) == 400 + 7 * 16
