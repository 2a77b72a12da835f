"""P8 (WORKLOADS.md): one whole meta-gradient step of Conv4 few-shot MAML, Omniglot-shaped.

    python benchmarks/p8_conv4.py [--ks 1,5] [--orders full,first] [--tasks 32] [--reps 5]
                                  [--baseline-tasks 8] [--baseline-ks 1] [--no-baselines] [--out FILE]

28x28x1 images, 4 blocks of [3x3 conv, 64 filters, same padding, batch norm of the current
batch (eps 1e-3), ReLU, 2x2 max-pool], flatten, linear to 5 classes; 5-way 1-shot, 15 query
images per class, meta-batch 32, K inner SGD steps with alpha 0.4 adapting every conv, BN and
linear parameter (learn2learn's convention: examples/conv4_maml.meta's `maml` / `fomaml`),
full second order and first order, float32, random images from a fixed seed.

For each configuration: metacc's median and minimum step time after warm-up (reps as given),
its cold compile (fresh kernel cache, new process: compile() to first result) and cached
load, peak memory (the process's peak RSS above its RSS before the first step, and the
tracemalloc peak of NumPy-side allocations) beside `metacc residuals`' figure for the same
shapes, the FLOP count of the conv and linear multiply-adds, and the machine's GEMM rate
(a NumPy float32 matmul timed in the same run) as the ratio achieved / GEMM. JAX (jit +
vmap) and torch.func run in the same run when installed, each in its own process, on
fewer tasks and fewer repetitions (say --baseline-tasks); their times are scaled to the
full task batch for the ratios (per-task cost is linear in the task count: the tasks are
independent). Every measurement runs in a fresh process so that peak RSS is its own.
Targets (issue 11) are reported, not asserted. Writes out/p8_results.json (untracked) by default.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "examples" / "conv4_maml.meta"
META = {"full": "maml", "first": "fomaml"}
GROUPS = ("Conv", "Norm")                  # the params arguments of the meta functions, in order
WAYS, SHOTS, QUERY, N_TASKS, ALPHA, EPS = 5, 1, 15, 32, 0.4, 1e-3
HW, FILTERS, BLOCKS = 28, 64, 4
# issue 11: one K=1 step over 32 tasks, conv and linear multiply-adds only
ISSUE_GFLOP = {("full", 1): 167.0, ("first", 1): 149.0}
TARGETS = {"gemm_fraction": 0.40, "cold_compile_s": 15.0}


def fewshot_tasks(n_tasks: int, seed: int = 0, dtype=np.float32) -> dict:
    """Random images (fixed seed) with labels 0..4: speed does not depend on the pixels."""
    rng = np.random.default_rng(seed)
    s, q = WAYS * SHOTS, WAYS * QUERY
    return {"support": {"x": rng.normal(size=(n_tasks, s, HW, HW, 1)).astype(dtype),
                        "y": np.tile(np.repeat(np.arange(WAYS), SHOTS), (n_tasks, 1)).astype(np.int64)},
            "query": {"x": rng.normal(size=(n_tasks, q, HW, HW, 1)).astype(dtype),
                      "y": np.tile(np.repeat(np.arange(WAYS), QUERY), (n_tasks, 1)).astype(np.int64)}}


# ---------------------------------------------------------------- FLOP count

def conv_macs_per_image(hw: int = HW, filters: int = FILTERS, blocks: int = BLOCKS) -> list[int]:
    """Multiply-adds of each conv layer's forward pass for one image (same padding, 2x2 pool)."""
    out, c_in = [], 1
    for _ in range(blocks):
        out.append(hw * hw * 9 * c_in * filters)
        hw, c_in = hw // 2, filters
    return out


def step_gflop(K: int, order: str, n_tasks: int = N_TASKS) -> float:
    """FLOPs (2 per multiply-add) of conv and linear layers in one meta-gradient step.

    Forward F per image; a backward pass is 2F (input and filter cotangents) less the first
    layer's input cotangent, which nothing needs. First order: K support steps of forward +
    backward, the query's forward + backward. Full second order adds, per support step,
    the backward of the backward (a forward-shaped and two backward-shaped products per layer
    and per cotangent: 2F + 2 backward), the count the issue's 167 GFLOP also makes.
    """
    convs = conv_macs_per_image()
    lin = FILTERS * WAYS * (HW // 2 ** BLOCKS) ** 2
    fwd = sum(convs) + lin
    bwd = 2 * fwd - convs[0]
    s, q = WAYS * SHOTS, WAYS * QUERY
    macs = q * (fwd + bwd) + K * s * (fwd + bwd)
    if order == "full":
        macs += K * s * (2 * fwd + 2 * bwd)
    return 2 * macs * n_tasks / 1e9


def gemm_rate(n: int = 2048, reps: int = 5, dtype=np.float32) -> float:
    """GFLOP/s of the best of `reps` n x n NumPy matmuls (the BLAS NumPy links, all its threads)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, n)).astype(dtype), rng.normal(size=(n, n)).astype(dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9


# ---------------------------------------------------------------- one measurement, in a child

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # KiB on Linux


def _timed(fn, warmup: int, reps: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": float(np.median(times)), "min_s": float(min(times)), "reps": reps, "warmup": warmup}


def child_metacc(K: int, order: str, n_tasks: int, reps: int, cache: str, program: str, cold: bool,
                 check_tasks: int = 0) -> dict:
    import tracemalloc

    import metacc
    import metacc.runtime   # noqa: F401  (imports are not load time)
    t0 = time.perf_counter()
    mod = metacc.compile(program, dtype="f32", cache_dir=cache)
    theta = tuple(getattr(mod, g).init(seed=i) for i, g in enumerate(GROUPS))
    tasks = fewshot_tasks(n_tasks)
    fn = getattr(mod, META[order])
    step = lambda: fn.value_and_grad(*theta, tasks, K=K)     # noqa: E731
    rss0 = _rss_bytes()
    loss, _ = step()
    first = time.perf_counter() - t0
    out = {"first_call_s": first, "loss": float(loss)}
    if cold:
        return out
    out.update(_timed(step, warmup=1, reps=reps))
    out["peak_rss_over_start_bytes"] = _peak_rss_bytes() - rss0
    tracemalloc.start()
    step()
    out["tracemalloc_peak_bytes"] = int(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    if check_tasks:     # the loss on the baselines' tasks: the three compute the same function
        out["check_loss"] = float(fn(*theta, fewshot_tasks(check_tasks), K=K))
    return out


def child_jax(K: int, order: str, n_tasks: int, reps: int) -> dict:
    import jax
    import jax.numpy as jnp
    from jax import lax

    def net(p, s, x):
        h = x
        for i in range(1, BLOCKS + 1):
            h = lax.conv_general_dilated(h, p[f"w{i}"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            mu = jnp.mean(h, (0, 1, 2))
            var = jnp.mean((h - mu) ** 2, (0, 1, 2))
            h = jax.nn.relu((h - mu) / jnp.sqrt(var + EPS) * s[f"g{i}"] + s[f"b{i}"])
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return h.reshape(h.shape[0], -1) @ p["wo"] + p["bo"]

    def ce(p, s, x, y):
        logp = jax.nn.log_softmax(net(p, s, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    def task_loss(ps, t):
        def step(ps, _):
            g = jax.grad(ce, argnums=(0, 1))(*ps, t["support"]["x"], t["support"]["y"])
            if order == "first":
                g = jax.lax.stop_gradient(g)
            return jax.tree_util.tree_map(lambda a, b: a - ALPHA * b, ps, g), None
        ps, _ = lax.scan(step, ps, None, length=K)
        return ce(*ps, t["query"]["x"], t["query"]["y"])

    def meta_loss(ps, ts):
        return jnp.mean(jax.vmap(task_loss, in_axes=(None, 0))(ps, ts))

    f = jax.jit(jax.value_and_grad(meta_loss))
    ps = jax.tree_util.tree_map(jnp.asarray, _baseline_params())
    ts = jax.tree_util.tree_map(jnp.asarray, fewshot_tasks(n_tasks))
    rss0 = _rss_bytes()
    t = time.perf_counter()
    loss, _ = jax.block_until_ready(f(ps, ts))
    out = {"first_call_s": time.perf_counter() - t, "loss": float(loss), "n_tasks": n_tasks}
    out.update(_timed(lambda: jax.block_until_ready(f(ps, ts)), warmup=0, reps=reps))
    out["peak_rss_over_start_bytes"] = _peak_rss_bytes() - rss0
    return out


def child_torch(K: int, order: str, n_tasks: int, reps: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.func import grad, grad_and_value, vmap
    torch.set_num_threads(os.cpu_count() or 1)

    def net(p, s, x):                       # x NHWC -> NCHW; filters HWIO -> OIHW
        h = x.permute(0, 3, 1, 2)
        for i in range(1, BLOCKS + 1):
            h = F.conv2d(h, p[f"w{i}"].permute(3, 2, 0, 1), padding=1)
            mu = h.mean((0, 2, 3), keepdim=True)
            var = ((h - mu) ** 2).mean((0, 2, 3), keepdim=True)
            h = torch.relu((h - mu) / torch.sqrt(var + EPS) * s[f"g{i}"].view(1, -1, 1, 1)
                           + s[f"b{i}"].view(1, -1, 1, 1))
            h = F.max_pool2d(h, 2)
        return h.permute(0, 2, 3, 1).reshape(h.shape[0], -1) @ p["wo"] + p["bo"]

    def ce(p, s, x, y):
        return F.cross_entropy(net(p, s, x), y)

    def task_loss(p, s, sx, sy, qx, qy):
        for _ in range(K):
            gp, gs = grad(ce, argnums=(0, 1))(p, s, sx, sy)
            if order == "first":
                gp = {k: v.detach() for k, v in gp.items()}
                gs = {k: v.detach() for k, v in gs.items()}
            p = {k: p[k] - ALPHA * gp[k] for k in p}
            s = {k: s[k] - ALPHA * gs[k] for k in s}
        return ce(p, s, qx, qy)

    def meta_loss(p, s, sx, sy, qx, qy):
        return torch.mean(vmap(task_loss, in_dims=(None, None, 0, 0, 0, 0))(p, s, sx, sy, qx, qy))

    f = grad_and_value(meta_loss, argnums=(0, 1))
    conv, norm = (_as_torch(g, torch) for g in _baseline_params())
    tasks = fewshot_tasks(n_tasks)
    args = [torch.from_numpy(tasks[s][v]) for s in ("support", "query") for v in ("x", "y")]
    rss0 = _rss_bytes()
    t = time.perf_counter()
    _, loss = f(conv, norm, *args)
    out = {"first_call_s": time.perf_counter() - t, "loss": float(loss), "n_tasks": n_tasks}
    out.update(_timed(lambda: f(conv, norm, *args), warmup=0, reps=reps))
    out["peak_rss_over_start_bytes"] = _peak_rss_bytes() - rss0
    return out


def _as_torch(group: dict, torch) -> dict:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in group.items()}


def _baseline_params() -> tuple[dict, dict]:
    """The same initial weights as metacc's (the example's initialisers, seeds 0 and 1)."""
    import metacc
    mod = metacc.compile(PROGRAM, dtype="f32")
    return tuple(getattr(mod, g).init(seed=i) for i, g in enumerate(GROUPS))


CHILDREN = {"metacc": child_metacc, "jax": child_jax, "torch": child_torch}


def run_child(what: str, *args, timeout: float = 3600) -> dict:
    """One measurement in a fresh process; its JSON, or {'error': ...}."""
    cmd = [sys.executable, __file__, "--child", what, json.dumps(args)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- residuals

def residual_bytes(order: str, K: int, n_tasks: int, program: Path) -> int | None:
    """`metacc residuals`' peak residual memory for the meta function at P8's shapes."""
    cmd = [sys.executable, "-m", "metacc.cli", "residuals", str(program), "--fn", META[order],
           "--const", f"K={K}", "--dims", f"s={WAYS * SHOTS},q={WAYS * QUERY}", "--batch", str(n_tasks)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    for line in r.stdout.splitlines():
        if "peak residual memory" in line:
            return int(line.split(":")[1].split()[0].replace(",", ""))
    return None


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,5")
    ap.add_argument("--orders", default="full,first")
    ap.add_argument("--tasks", type=int, default=N_TASKS)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up (metacc)")
    ap.add_argument("--baseline-tasks", type=int, default=8)
    ap.add_argument("--baseline-reps", type=int, default=2)
    ap.add_argument("--baseline-ks", default="1", help="K values the baselines run (they are slow)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--program", type=Path, default=PROGRAM, help="a program with P8's groups and meta functions")
    ap.add_argument("--out", type=Path, default=Path("out") / "p8_results.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*json.loads(args.child[1]))))
        return 0
    ks = [int(k) for k in args.ks.split(",")]
    orders = args.orders.split(",")
    baseline_ks = set() if args.no_baselines else {int(k) for k in args.baseline_ks.split(",")}
    gemm = gemm_rate()
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "gemm_f32_gflops": gemm, "gemm": "NumPy float32 2048^3 matmul, best of 5"},
               "n_tasks": args.tasks, "baseline_tasks": args.baseline_tasks, "rows": []}
    print(f"GEMM rate (NumPy f32 2048^3, best of 5): {gemm:.1f} GFLOP/s; {os.cpu_count()} CPUs", flush=True)
    print(f"metacc: {args.tasks} tasks, 1 warm-up + {args.reps} timed steps; baselines: {args.baseline_tasks} tasks, "
          f"first call + {args.baseline_reps} timed steps, K in {sorted(baseline_ks) or 'none'}, scaled "
          f"x{args.tasks / args.baseline_tasks:g} for the ratios", flush=True)
    with tempfile.TemporaryDirectory(prefix="metacc-p8-") as tmp:
        for order in orders:
            for K in ks:
                row = {"order": order, "K": K, "gflop": step_gflop(K, order, args.tasks)}
                cache = str(Path(tmp) / f"cache-{order}-{K}")
                cold = run_child("metacc", K, order, args.tasks, args.reps, cache, str(args.program), True)
                warm = run_child("metacc", K, order, args.tasks, args.reps, cache, str(args.program), False,
                                 args.baseline_tasks if K in baseline_ks else 0)
                row["metacc"] = warm
                row["cold_first_call_s"] = cold.get("first_call_s")
                row["cached_first_call_s"] = warm.get("first_call_s")
                if "median_s" in warm:
                    row["cold_compile_s"] = cold["first_call_s"] - warm["median_s"]
                    row["gflops"] = row["gflop"] / warm["median_s"]
                    row["gemm_fraction"] = row["gflops"] / gemm
                row["residual_bytes"] = residual_bytes(order, K, args.tasks, args.program)
                for name in ("jax", "torch"):
                    if K not in baseline_ks:
                        continue
                    if not _installed(name):
                        row[name] = {"error": "not installed"}
                        continue
                    b = row[name] = run_child(name, K, order, args.baseline_tasks, args.baseline_reps)
                    if "median_s" in b:
                        b["scaled_median_s"] = b["median_s"] * args.tasks / args.baseline_tasks
                        if "median_s" in warm:
                            b["over_metacc"] = b["scaled_median_s"] / warm["median_s"]
                results["rows"].append(row)
                print(_fmt(row), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1))       # after every row: a partial run keeps its rows
    print(f"\nwrote {args.out}")
    return 0


def _fmt(r: dict) -> str:
    m = r["metacc"]
    if "median_s" not in m:
        return f"{r['order']:5s} K={r['K']}: metacc failed: {m.get('error')}"
    issue = ISSUE_GFLOP.get((r["order"], r["K"]))
    lines = [f"{r['order']:5s} K={r['K']}: metacc median {m['median_s']:.3f} s, min {m['min_s']:.3f} s "
             f"({m['reps']} reps) | {r['gflop']:.1f} GFLOP" + (f" (issue: {issue:.0f})" if issue else "")
             + f" = {r['gflops']:.1f} GFLOP/s, {100 * r['gemm_fraction']:.0f}% of GEMM "
             f"(target >= {100 * TARGETS['gemm_fraction']:.0f}%)",
             f"        cold compile {r['cold_compile_s']:.1f} s (target <= {TARGETS['cold_compile_s']:.0f} s), "
             f"cached load + first step {r['cached_first_call_s']:.1f} s | "
             f"peak RSS +{m['peak_rss_over_start_bytes'] / 1e9:.2f} GB,"
             f" tracemalloc {m['tracemalloc_peak_bytes'] / 1e9:.3f} GB, `metacc residuals` "
             + (f"{r['residual_bytes'] / 1e9:.3f} GB" if r.get("residual_bytes") is not None else "n/a")]
    for name in ("jax", "torch"):
        b = r.get(name)
        if b is None:
            continue
        if "median_s" not in b:
            lines.append(f"        {name}: {b.get('error')}")
            continue
        lines.append(f"        {name}: {b['median_s']:.2f} s for {b['n_tasks']} tasks "
                     f"(first call {b['first_call_s']:.1f} s)"
                     f" -> {b['scaled_median_s']:.2f} s scaled, {b['over_metacc']:.2f}x metacc; peak RSS "
                     f"+{b['peak_rss_over_start_bytes'] / 1e9:.2f} GB; loss {b['loss']:.5f} (metacc on the same tasks "
                     f"{m.get('check_loss', float('nan')):.5f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
