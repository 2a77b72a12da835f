"""P1 at scale: one meta-gradient step over 1,000 and 10,000 tasks, here and on Dask.

    python benchmarks/dask_scale.py [--tasks 1000,10000] [--shard-size 250] [--reps 3] [--out FILE]

P1 (WORKLOADS.md) with K = 5 in float32: the step `mod.maml.value_and_grad(theta,
tasks)` on this machine (Numba's threads), the same in fixed shards in this process
(LocalRunner), and on a LocalCluster of 2 worker processes (1 thread and
NUMBA_NUM_THREADS=1 each: the same cores as the local call), with the task arrays
sent per shard and with only seeds sent (SeededTasks). Each figure is the median of
--reps timed steps after one warm-up step (say so when quoting). Also: a Dask step
of one tiny shard (the fixed cost of a step), the bytes sent per step, and the
tasks per step above which 2, 4, 8 or 16 such machines would beat one, from the
measured per-task time and overhead (docs/scale.md). Writes out/dask_scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

import metacc
from metacc.runtime.dask_runner import DaskRunner
from metacc.runtime.shards import LocalRunner, SeededTasks
from metacc.runtime.tasks import sinusoid_tasks

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "examples" / "sinusoid_maml.meta"
K = 5


def timed(fn, reps: int) -> float:
    """Median seconds of `reps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="1000,10000", help="tasks per step, comma-separated")
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--reps", type=int, default=3, help="timed steps per figure (after one warm-up)")
    ap.add_argument("--out", default=str(ROOT / "out" / "dask_scale.json"))
    args = ap.parse_args()
    sizes = [int(n) for n in args.tasks.split(",")]

    cache = os.environ.get("METACC_CACHE_DIR")
    mod = metacc.compile(str(PROGRAM), cache_dir=cache)
    theta = mod.Net.init(seed=0)
    step = partial(mod.maml.value_and_grad, K=K)
    sample = partial(sinusoid_tasks, k=10)
    t = time.perf_counter()
    step(theta, sample(np.random.default_rng(0), 25))
    print(f"P1 K={K} f32; kernel ready on the client in {time.perf_counter() - t:.1f} s; "
          f"medians of {args.reps} steps after 1 warm-up; shard size {args.shard_size}")

    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if cache:
        env["METACC_CACHE_DIR"] = cache
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env)
    client = Client(cluster)
    cluster_s = time.perf_counter() - t
    runner = DaskRunner(client, shard_size=args.shard_size, cache_dir=cache)
    t = time.perf_counter()
    step(theta, sample(np.random.default_rng(0), 4), runner=runner)
    warm_s = time.perf_counter() - t
    print(f"LocalCluster of 2 workers up in {cluster_s:.1f} s; first Dask step (warm-up on both) {warm_s:.1f} s: "
          + ", ".join(f"pid {w['pid']} {w['seconds']:.1f} s" for w in runner.warmups))

    fixed = timed(lambda: step(theta, sample(np.random.default_rng(1), 2), runner=runner), max(args.reps, 5))
    # the cost of one more shard: a step of 40 one-task shards against the one-shard step
    tiny = DaskRunner(client, shard_size=1, cache_dir=cache)
    forty = timed(lambda: step(theta, sample(np.random.default_rng(1), 40), runner=tiny), args.reps)
    per_shard = (forty - fixed) / 39
    rows = []
    for n in sizes:
        tasks = sample(np.random.default_rng(n), n)
        seeded = SeededTasks(sample, n, seed=n, shard_size=args.shard_size)
        row = {"tasks": n, "shards": -(-n // args.shard_size)}
        row["local_s"] = timed(lambda: step(theta, tasks), args.reps)
        row["local_sharded_s"] = timed(lambda: step(theta, tasks, runner=LocalRunner(args.shard_size)), args.reps)
        steps = []

        def dask_step():
            step(theta, tasks, runner=runner)
            steps.append(runner.last_step)
        row["dask_arrays_s"] = timed(dask_step, args.reps)
        # the busiest worker's seconds in its shards: what remains of a step is Dask's and the client's
        row["dask_busiest_s"] = float(np.median([max(s["busy_s"].values()) for s in steps[1:]]))
        row["dask_seeded_s"] = timed(lambda: step(theta, seeded, runner=runner), args.reps)
        row["sample_s"] = timed(lambda: sample(np.random.default_rng(2), n), args.reps)
        got, ref = step(theta, tasks, runner=runner), step(theta, tasks, runner=LocalRunner(args.shard_size))
        row["bit_identical"] = bool(got[0] == ref[0] and all(np.array_equal(got[1][k], ref[1][k]) for k in ref[1]))
        row["bytes_arrays"] = len(pickle.dumps(tasks, protocol=5))
        row["bytes_seeded"] = len(pickle.dumps(seeded, protocol=5))
        row["bytes_params"] = len(pickle.dumps(theta, protocol=5))
        row["overhead_s"] = row["dask_arrays_s"] - row["local_s"]
        row["outside_shards_s"] = row["dask_arrays_s"] - row["dask_busiest_s"]
        rows.append(row)

    print(f"\nDask step of 2 tasks (one shard): {fixed * 1e3:.1f} ms: the fixed cost of a step; "
          f"of 40 one-task shards: {forty * 1e3:.1f} ms, {per_shard * 1e3:.2f} ms per shard more")
    print("overhead: Dask step - local step; busiest: the seconds the busiest worker spent in its shards")
    print(f"{'tasks':>6} {'shards':>6} {'local':>9} {'sharded':>9} {'dask arr':>9} {'dask seed':>9} "
          f"{'overhead':>9} {'busiest':>9} {'sent arr':>9} {'sent seed':>9}")
    for r in rows:
        print(f"{r['tasks']:>6} {r['shards']:>6} {r['local_s'] * 1e3:>7.0f}ms {r['local_sharded_s'] * 1e3:>7.0f}ms "
              f"{r['dask_arrays_s'] * 1e3:>7.0f}ms {r['dask_seeded_s'] * 1e3:>7.0f}ms "
              f"{r['overhead_s'] * 1e3:>7.0f}ms {r['dask_busiest_s'] * 1e3:>7.0f}ms "
              f"{r['bytes_arrays'] / 1e6:>7.2f}MB {r['bytes_seeded'] / 1e3:>7.2f}kB"
              + ("" if r["bit_identical"] else "  NOT bit-identical to LocalRunner"))

    # when W machines like this one beat one: n t_task / W + fixed + (n / shard size) per_shard < n t_task
    big = rows[-1]
    t_task = big["local_s"] / big["tasks"]          # seconds per task on this machine's cores
    payoff = {}
    for w in (2, 4, 8, 16):
        # shards of the given size; the overhead grows with the shards a step has
        n_even = fixed / (t_task * (1 - 1 / w) - per_shard / args.shard_size) \
            if t_task * (1 - 1 / w) > per_shard / args.shard_size else float("inf")
        payoff[w] = n_even
    print(f"\nper task {t_task * 1e6:.0f} us here; Dask cost per shard {per_shard * 1e3:.1f} ms; "
          "a step pays off on W such machines above about "
          + ", ".join(f"W={w}: {n:,.0f}" for w, n in payoff.items()) + " tasks")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "reps": args.reps, "shard_size": args.shard_size, "K": K, "dtype": "f32",
                               "cluster_start_s": cluster_s, "first_dask_step_s": warm_s,
                               "warmups": runner.warmups, "fixed_step_s": fixed, "forty_shards_s": forty, "rows": rows,
                               "per_task_s": t_task, "per_shard_s": per_shard,
                               "payoff_tasks": {str(w): n for w, n in payoff.items()}}, indent=1))
    print(f"wrote {out}")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
