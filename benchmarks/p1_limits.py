"""Issue 15's step-time targets for P1, measured in one run on this machine.

    python benchmarks/p1_limits.py [--ks 1,5] [--dtypes f32,f64] [--reps 200] [--out FILE]

For each dtype it measures the machine's matmul rate (a 2,048 x 2,048 NumPy matmul, all of
BLAS's threads) and, for each K, one P1 meta-gradient step (examples/sinusoid_maml.meta, full
second order, 25 tasks, 10 support and 10 query points):

- the step's matmul FLOPs, counted from the compiled kernel's simplified IR (every `matmul`
  equation, times the trip count of the loops it sits in, times the tasks), and the GEMM
  limit: those FLOPs at the measured matmul rate;
- metacc's step time (median and minimum of --reps calls after warm-up) on 2 threads and on 1
  thread, the two taking turns in blocks (the machine's load drifts), and the ratios
  step / GEMM limit and 2 threads / 1 thread;
- per-task time at 25 and at 1,000 tasks (the target: flat);
- JAX `jit`+`vmap` (benchmarks/p1_maml.py's baseline) in the same run, as a ratio.

The targets (issue 15): K = 5 within 2x of the GEMM limit, K = 1 within 3x; >= 4x faster
than JAX at K = 5 f32; 2 threads >= 1.7x one thread at 25 tasks; flat per task from 25 to
1,000 tasks. Reported, not asserted. JSON to out/p1_limits.json (untracked) or --out FILE.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from p1_maml import ALPHA, jax_step, sinusoid_tasks  # noqa: E402
from p8_conv4 import gemm_rate  # noqa: E402

PROGRAM = ROOT / "examples" / "sinusoid_maml.meta"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_flops(fn, dims: dict) -> int:
    """2 m k n for every matmul of fn, sub-functions included (a scan's body times its length)."""
    total = 0
    for e in fn.eqns:
        if e.prim == "matmul":
            (m, k), (_, n) = (tuple(dims.get(d, d) for d in a.type.shape) for a in e.ins)
            total += 2 * m * k * n
        for sub in e.subfuncs():
            total += matmul_flops(sub, dims) * (e.params["length"] if e.prim == "scan" else 1)
    return total


def times(fn, reps: int) -> dict:
    for _ in range(5):
        fn()
    ts = [_timed(fn) for _ in range(reps)]
    return {"median_s": float(np.median(ts)), "min_s": float(min(ts))}


def interleaved(setups: dict, fn, reps: int, rounds: int = 10) -> dict:
    """times() of fn under each setup (a callable run before its block), the setups taking
    turns in `rounds` blocks of reps / rounds calls: the shared machine's load drifts over
    seconds, and measured one after the other, a ratio of two setups would carry that drift."""
    ts: dict = {k: [] for k in setups}
    for setup in setups.values():
        setup()
        for _ in range(5):
            fn()
    block = max(1, reps // rounds)
    for _ in range(rounds):
        for k, setup in setups.items():
            setup()
            fn()
            ts[k] += [_timed(fn) for _ in range(block)]
    return {k: {"median_s": float(np.median(v)), "min_s": float(min(v))} for k, v in ts.items()}


def measure(mod, dtype: str, K: int, reps: int, rate: float) -> dict:
    import numba
    from metacc.interp import bind_dims
    npdt = np.float32 if dtype == "f32" else np.float64
    theta = mod.Net.init(seed=0)
    f = mod.maml
    tasks = sinusoid_tasks(dtype=npdt)
    # the FLOPs of one task's kernel (its dims bound from one task's arrays), times the tasks
    ir = f.kernel("grad", f._wrt(None)).ir("simplified")
    one = list(theta.values()) + [tasks[s][k][0] for s in ("support", "query") for k in ("x", "y")]
    dims = bind_dims(ir, one + [npdt(ALPHA)] * (len(ir.ins) - len(one)))
    flops = matmul_flops(ir, dims) * 25
    limit = flops / (rate * 1e9)
    step = lambda: f.value_and_grad(theta, tasks)  # noqa: E731
    row = {"dtype": dtype, "K": K, "mflop": flops / 1e6, "gemm_gflops": rate, "gemm_limit_s": limit}
    threads = numba.get_num_threads()
    # one thread and all of them take turns (interleaved)
    by_threads = interleaved({nt: (lambda nt=nt: numba.set_num_threads(nt)) for nt in (threads, 1)}, step, reps)
    for nt, t in by_threads.items():
        row[f"threads_{nt}"] = t
    numba.set_num_threads(threads)
    row["threads"] = threads
    row["vs_limit"] = row[f"threads_{threads}"]["median_s"] / limit
    row["vs_limit_min"] = row[f"threads_{threads}"]["min_s"] / limit
    row["two_vs_one"] = row["threads_1"]["median_s"] / row[f"threads_{threads}"]["median_s"]
    big = sinusoid_tasks(n_tasks=1000, dtype=npdt)
    row["per_task_25_us"] = row[f"threads_{threads}"]["median_s"] / 25 * 1e6
    row["per_task_1000_us"] = times(lambda: f.value_and_grad(theta, big), max(5, reps // 40))["median_s"] \
        / 1000 * 1e6
    got = jax_step(dtype, K, False, {k: np.asarray(v) for k, v in theta.items()}, tasks)
    if got is not None:
        row["jax_s"] = times(got[0], reps)["median_s"]
        row["jax_vs_metacc"] = row["jax_s"] / row[f"threads_{threads}"]["median_s"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,5")
    ap.add_argument("--dtypes", default="f32,f64")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "p1_limits.json")
    args = ap.parse_args(argv)
    import metacc
    rows = []
    for dtype in args.dtypes.split(","):
        rate = gemm_rate(dtype=np.float32 if dtype == "f32" else np.float64)
        for K in (int(k) for k in args.ks.split(",")):
            # K as the program's default, so that the kernel whose IR is counted is the one timed
            mod = metacc.compile(PROGRAM.read_text().replace("K: int = 5", f"K: int = {K}"), dtype=dtype)
            r = measure(mod, dtype, K, args.reps, rate)
            rows.append(r)
            t = r[f"threads_{r['threads']}"]
            print(f"P1 {dtype} K={K}: {r['mflop']:.1f} MFLOP; GEMM {rate:.0f} GFLOP/s -> limit "
                  f"{r['gemm_limit_s'] * 1e3:.3f} ms; metacc median {t['median_s'] * 1e3:.3f} ms "
                  f"(min {t['min_s'] * 1e3:.3f}) = {r['vs_limit']:.1f}x the limit (min {r['vs_limit_min']:.1f}x); "
                  f"{r['threads']} threads / 1: {r['two_vs_one']:.2f}x; per task {r['per_task_25_us']:.1f} us at 25, "
                  f"{r['per_task_1000_us']:.1f} us at 1,000"
                  + (f"; JAX {r['jax_s'] * 1e3:.3f} ms = {r['jax_vs_metacc']:.2f}x metacc" if "jax_s" in r else ""),
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
