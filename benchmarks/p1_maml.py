"""P1 (WORKLOADS.md): one whole meta-gradient step of sinusoid MAML over 25 tasks.

    python benchmarks/p1_maml.py [--ks 1,5,20,100] [--dtypes f32,f64] [--quick] [--out FILE] [--publish]

For each K, dtype and order (full second order, first order) it reports the
median time of `value_and_grad` over the task batch after warm-up, for
metacc and, in the same run when installed, JAX (`jit(value_and_grad)` of the
`vmap`ped loss, inner loop as `lax.scan`) and PyTorch (`torch.func`), as
ratios to metacc. Also: P3 (HVP of one task's support MSE against the plain
gradient), metacc's cold compile time (fresh kernel cache, in a new
process), cached load time (a second new process: compile() to first
result), and peak memory of a step. Speed targets are reported, not asserted.
Writes a table to stdout and everything to JSON: out/p1_results.json by
default (untracked), --out FILE elsewhere; --publish (a full run only)
replaces the tracked benchmarks/p1_results.json that the README cites.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = {"full": ROOT / "examples" / "sinusoid_maml.meta", "first": ROOT / "examples" / "sinusoid_fomaml.meta"}
META = {"full": "maml", "first": "fomaml"}          # the meta function of each program
N_TASKS, ALPHA = 25, 0.01


def sinusoid_tasks(n_tasks=N_TASKS, k=10, q=10, seed=0, dtype=np.float32) -> dict:
    """y = A sin(x - phi), A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; 10 support, 10 query points."""
    rng = np.random.default_rng(seed)
    amp = rng.uniform(0.1, 5.0, (n_tasks, 1, 1))
    phase = rng.uniform(0.0, np.pi, (n_tasks, 1, 1))
    xs = rng.uniform(-5.0, 5.0, (n_tasks, k + q, 1))
    ys = amp * np.sin(xs - phase)
    return {"support": {"x": xs[:, :k].astype(dtype), "y": ys[:, :k].astype(dtype)},
            "query": {"x": xs[:, k:].astype(dtype), "y": ys[:, k:].astype(dtype)}}


def median_time(fn, warmup=3, reps=30, budget=10.0) -> float:
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < reps and (time.perf_counter() - start < budget or len(times) < 5):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


# ---------------------------------------------------------------- metacc

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import metacc
    import metacc.runtime          # numba, numpy and metacc imported: not counted as load time
    t1 = time.perf_counter()
    path, cache, dtype, K, meta = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[6]
    mod = metacc.compile(path, dtype=dtype, cache_dir=cache)
    t2 = time.perf_counter()
    theta = mod.Net.init(seed=0)
    npdt = np.float32 if dtype == "f32" else np.float64
    sys.path.insert(0, sys.argv[5])
    from p1_maml import sinusoid_tasks
    tasks = sinusoid_tasks(dtype=npdt)
    loss, g = getattr(mod, meta).value_and_grad(theta, tasks, K=K)
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "front_end": t2 - t1, "first_call": t3 - t2, "total": t3 - t1,
                      "loss": float(loss)}))
""")


NUMBA_INIT_CHILD = textwrap.dedent("""
    import json, sys, time
    import numba
    from numba import njit
    @njit(cache=True)
    def one(x):
        return x + 1
    t = time.perf_counter()
    one(1)
    print(json.dumps({"numba_init": time.perf_counter() - t}))
""")


def numba_init_time(workdir: Path) -> float:
    """What any Numba program pays on its first call of a cached function in a fresh
    process (Numba loads its typing and lowering registries): part of every cached load."""
    script = workdir / "numba_init.py"
    script.write_text(NUMBA_INIT_CHILD)
    for _ in range(2):      # the first run compiles and caches `one`
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                           cwd=workdir)
    return json.loads(r.stdout.strip().splitlines()[-1])["numba_init"]


def metacc_compile_times(order: str, dtype: str, K: int, workdir: Path) -> dict:
    """Cold (empty kernel cache) and cached (second process) times, each in a fresh process."""
    cache = workdir / f"cache-{order}-{dtype}-{K}"
    script = workdir / "child.py"
    script.write_text(CHILD)
    out = {}
    for label in ("cold", "cached"):
        r = subprocess.run([sys.executable, str(script), str(PROGRAMS[order]), str(cache), dtype, str(K),
                            str(Path(__file__).parent), META[order]], capture_output=True, text=True, timeout=1800)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def metacc_step(mod, meta: str, dtype: str, K: int):
    theta = mod.Net.init(seed=0)
    tasks = sinusoid_tasks(dtype=np.float32 if dtype == "f32" else np.float64)
    fn = getattr(mod, meta)
    return lambda: fn.value_and_grad(theta, tasks, K=K)


def peak_memory(fn) -> int:
    fn()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak)


# ---------------------------------------------------------------- JAX

def jax_step(dtype: str, K: int, first_order: bool, theta_np: dict, tasks: dict):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if dtype == "f64":
        jax.config.update("jax_enable_x64", True)

    def mlp(p, x):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        h = jax.nn.relu(h @ p["w2"] + p["b2"])
        return h @ p["w3"] + p["b3"]

    def mse(p, x, y):
        return jnp.mean((mlp(p, x) - y) ** 2)

    def task_loss(theta, t):
        def step(p, _):
            g = jax.grad(mse)(p, t["support"]["x"], t["support"]["y"])
            if first_order:
                g = jax.lax.stop_gradient(g)
            return jax.tree_util.tree_map(lambda a, b: a - ALPHA * b, p, g), None
        p, _ = jax.lax.scan(step, theta, None, length=K)
        return mse(p, t["query"]["x"], t["query"]["y"])

    def meta_loss(theta, ts):
        return jnp.mean(jax.vmap(task_loss, in_axes=(None, 0))(theta, ts))

    f = jax.jit(jax.value_and_grad(meta_loss))
    theta = jax.tree_util.tree_map(jnp.asarray, theta_np)
    ts = jax.tree_util.tree_map(jnp.asarray, tasks)
    t = time.perf_counter()
    jax.block_until_ready(f(theta, ts))
    compile_s = time.perf_counter() - t
    return (lambda: jax.block_until_ready(f(theta, ts))), compile_s


# ---------------------------------------------------------------- PyTorch

def torch_step(dtype: str, K: int, first_order: bool, theta_np: dict, tasks: dict):
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)

    def mlp(p, x):
        h = torch.relu(x @ p["w1"] + p["b1"])
        h = torch.relu(h @ p["w2"] + p["b2"])
        return h @ p["w3"] + p["b3"]

    def mse(p, x, y):
        return torch.mean((mlp(p, x) - y) ** 2)

    def task_loss(theta, sx, sy, qx, qy):
        p = theta
        for _ in range(K):
            g = grad(mse)(p, sx, sy)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            p = {k: p[k] - ALPHA * g[k] for k in p}
        return mse(p, qx, qy)

    def meta_loss(theta, sx, sy, qx, qy):
        return torch.mean(vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(theta, sx, sy, qx, qy))

    from torch.func import grad_and_value
    f = grad_and_value(meta_loss)
    theta = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in theta_np.items()}
    args = [torch.from_numpy(tasks[s][v]) for s in ("support", "query") for v in ("x", "y")]
    t = time.perf_counter()
    f(theta, *args)
    first = time.perf_counter() - t
    return (lambda: f(theta, *args)), first


# ---------------------------------------------------------------- P3

def p3(mod, dtype: str) -> dict:
    """HVP of one task's support MSE at the initial weights, against the plain gradient."""
    npdt = np.float32 if dtype == "f32" else np.float64
    theta = mod.Net.init(seed=0)
    t = sinusoid_tasks(1, dtype=npdt)
    x, y = t["support"]["x"][0], t["support"]["y"][0]
    rng = np.random.default_rng(1)
    v = {k: rng.normal(size=a.shape).astype(npdt) for k, a in theta.items()}
    # tens of microseconds each: many repetitions, interleaved, so that a noisy
    # stretch of the shared machine hits both alike
    gs, hs = [], []
    for _ in range(10):
        gs.append(median_time(lambda: mod.mse.grad(theta, x, y), reps=100))
        hs.append(median_time(lambda: mod.mse.hvp(theta, x, y, v=v), reps=100))
    g, h = float(np.median(gs)), float(np.median(hs))
    return {"grad_s": g, "hvp_s": h, "hvp_over_grad": h / g}


def parse_args(argv=None):
    """The options, and the path the JSON goes to (see output_path)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default=FULL_RUN[0])
    ap.add_argument("--dtypes", default=FULL_RUN[1])
    ap.add_argument("--orders", default=FULL_RUN[2])
    ap.add_argument("--quick", action="store_true", help="K=5 f32 full only, no compile-time subprocesses")
    ap.add_argument("--out", type=Path, default=None, help=f"the JSON file (default {DEFAULT_OUT})")
    ap.add_argument("--publish", action="store_true",
                    help=f"write the tracked {PUBLISHED.name} the README cites (full runs only)")
    args = ap.parse_args(argv)
    return args, output_path(ap, args)


def main(argv=None) -> int:
    args, out_path = parse_args(argv)
    ks = [5] if args.quick else [int(k) for k in args.ks.split(",")]
    dtypes = ["f32"] if args.quick else args.dtypes.split(",")
    orders = ["full"] if args.quick else args.orders.split(",")

    import numba

    import metacc
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "numba_threads": numba.get_num_threads(), "python": sys.version.split()[0],
                           "numba": numba.__version__, "metacc": metacc.__version__,
                           "threading": "Python threads, one kernel call per worker over a contiguous "
                                        "range of tasks (nogil kernels)",
                           "scipy_installed": _installed("scipy")},
               "n_tasks": N_TASKS, "rows": [], "p3": {}}
    rows = results["rows"]
    with tempfile.TemporaryDirectory(prefix="metacc-bench-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        if not args.quick:
            results["machine"]["numba_init_s"] = numba_init_time(work)
            print(f"Numba's own first-use initialisation in a fresh process: "
                  f"{results['machine']['numba_init_s']:.2f} s (inside every cached load below)", flush=True)
        for order in orders:
            for dtype in dtypes:
                mod = metacc.compile(PROGRAMS[order], dtype=dtype, cache_dir=cache)
                for K in ks:
                    row = {"order": order, "dtype": dtype, "K": K}
                    if not args.quick:
                        ct = metacc_compile_times(order, dtype, K, work)
                        row["cold_compile_s"] = ct["cold"]["total"]
                        row["cached_load_s"] = ct["cached"]["total"]
                        row["front_end_s"] = ct["cached"]["front_end"]
                    step = metacc_step(mod, META[order], dtype, K)
                    t = time.perf_counter()
                    step()
                    row.setdefault("first_call_s", time.perf_counter() - t)
                    row["metacc_s"] = median_time(step)
                    row["peak_bytes"] = peak_memory(step)
                    theta = mod.Net.init(seed=0)
                    tasks = sinusoid_tasks(dtype=np.float32 if dtype == "f32" else np.float64)
                    for name, make in (("jax", jax_step), ("torch", torch_step)):
                        made = make(dtype, K, order == "first", theta, tasks)
                        if made is None:
                            row[f"{name}_s"] = None
                            continue
                        fn, first = made
                        row[f"{name}_first_call_s"] = first
                        row[f"{name}_s"] = median_time(fn)
                        row[f"{name}_over_metacc"] = row[f"{name}_s"] / row["metacc_s"]
                    rows.append(row)
                    print(_fmt(row), flush=True)
                results["p3"][dtype] = p3(mod, dtype)
    print()
    for dt, r in results["p3"].items():
        print(f"P3 {dt}: gradient {r['grad_s'] * 1e6:.1f} us, HVP {r['hvp_s'] * 1e6:.1f} us, "
              f"HVP / gradient = {r['hvp_over_grad']:.2f} (target <= 3)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out_path}")
    return 0


# A quick or partial run must not replace the published figures by accident:
# only --publish writes the tracked file.
PUBLISHED = Path(__file__).with_name("p1_results.json")
DEFAULT_OUT = Path("out") / "p1_results.json"
FULL_RUN = ("1,5,20,100", "f32,f64", "full,first")


def output_path(ap: argparse.ArgumentParser, args) -> Path:
    """Where the JSON goes: --out, the tracked file with --publish, else out/p1_results.json."""
    if args.publish:
        if args.out is not None:
            ap.error("--publish writes benchmarks/p1_results.json; leave out --out")
        if args.quick or (args.ks, args.dtypes, args.orders) != FULL_RUN:
            ap.error("--publish needs the full run (the README cites every K, dtype and order): "
                     "drop --quick, --ks, --dtypes and --orders")
        return PUBLISHED
    out = DEFAULT_OUT if args.out is None else args.out
    if out.resolve() == PUBLISHED.resolve():
        ap.error(f"{PUBLISHED} is the published result: write it with --publish (full runs only)")
    return out


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _fmt(r: dict) -> str:
    def ms(x):
        return "   -   " if x is None else f"{x * 1e3:7.3f}"
    parts = [f"{r['order']:5s} {r['dtype']} K={r['K']:<3d}", f"metacc {ms(r['metacc_s'])} ms"]
    for name in ("jax", "torch"):
        if r.get(f"{name}_s") is not None:
            parts.append(f"{name} {ms(r[name + '_s'])} ms ({r[name + '_over_metacc']:.2f}x)")
        else:
            parts.append(f"{name} not installed")
    if "cold_compile_s" in r:
        parts.append(f"cold {r['cold_compile_s']:.2f} s, cached {r['cached_load_s']:.2f} s "
                     f"(front end {r['front_end_s']:.2f} s)")
    parts.append(f"peak {r['peak_bytes'] / 1e6:.2f} MB")
    return " | ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
