"""The CUDA target on a GPU (issue 13): correctness of every kernel kind against the
CPU back end, then P1 (K = 5, f32, full second order) step times against the CPU, and
the Conv4 MAML step (P8) against the CPU and JAX.

    python benchmarks/cuda_p1.py [--tasks 25,1000,10000] [--reps 5] [--out FILE]
    python benchmarks/cuda_p1.py --simulate      # the same script on the CUDA simulator, tiny sizes

Prepared for a machine with a GPU and numba-cuda; --simulate checks the script itself
where there is none (P1 at hidden width 4, K = 2, 2-3 tasks: timings meaningless).
Correctness: P1, P2 (Meta-SGD) and P6 (learned optimizer) in float64, forward and
meta-gradient, P1's meta vjp / jvp / hvp and its plain mse's grad and hvp, a small conv
MAML's (tests/e2e/programs/conv_tiny.meta) forward and meta-gradient, each against the
CPU module, relative error printed and checked against 1e-10. Timing: the median of
--reps calls of `value_and_grad` after one warm-up call, parameters and tasks already on
the device for the CUDA module; the CPU module gets NumPy arrays. The Conv4 step
(examples/conv4_maml.meta, K = 1, full second order, f32, --conv-tasks tasks) is timed
the same way, and with JAX `jit`+`vmap` (benchmarks/p8_conv4.py's baseline, on JAX's
default device: the GPU where JAX has CUDA) when JAX is installed. torch.func on the GPU
is not measured by this script yet. Writes JSON to out/cuda_p1.json (untracked) or --out FILE.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="25,1000,10000", help="task counts to time (comma-separated)")
    p.add_argument("--reps", type=int, default=5, help="timed calls per configuration (median reported)")
    p.add_argument("--conv-tasks", type=int, default=32, help="tasks of the Conv4 step (P8: 32)")
    p.add_argument("--simulate", action="store_true", help="NUMBA_ENABLE_CUDASIM=1 and tiny sizes")
    p.add_argument("--out", default=str(ROOT / "out" / "cuda_p1.json"))
    return p.parse_args()


def _text(name: str, tiny: bool) -> str:
    text = (ROOT / "examples" / name).read_text()
    if tiny and name in ("sinusoid_maml.meta", "meta_sgd.meta"):
        text = text.replace("40", "4").replace("K: int = 5", "K: int = 2")
    if tiny and name == "learned_optimizer.meta":
        text = text.replace("[10, 1]", "[3, 1]").replace("[n, 10]", "[n, 3]").replace("T: int = 10", "T: int = 2")
    return text


def _tasks(rng, n: int, k: int, dtype):
    def part():
        x = rng.uniform(-5, 5, (n, k, 1))
        return {"x": x.astype(dtype), "y": (rng.uniform(0.1, 5, (n, 1, 1)) * np.sin(x)).astype(dtype)}
    return {"support": part(), "query": part()}


def _flat(tree) -> list:
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _flat(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _flat(t)]
    return [np.asarray(tree.copy_to_host() if hasattr(tree, "copy_to_host") else tree)]


def _rel(a, b) -> float:
    worst = 0.0
    for x, y in zip(_flat(a), _flat(b)):
        worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300)))
    return worst


def correctness(metacc, tiny: bool) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    n = 3 if tiny else 25
    for name, fn in (("sinusoid_maml.meta", "maml"), ("meta_sgd.meta", "meta_sgd")):
        text = _text(name, tiny)
        cpu, gpu = metacc.compile(text, dtype="f64"), metacc.compile(text, dtype="f64", target="cuda")
        params = [cpu.Net.init(seed=1)] + ([cpu.Rates.init()] if fn == "meta_sgd" else [])
        t = _tasks(rng, n, 3 if tiny else 10, np.float64)
        args = (*params, t)
        wrt = None if len(params) == 1 else ("theta", "alpha")
        out[f"{fn} forward"] = _rel(getattr(gpu, fn)(*args), getattr(cpu, fn)(*args))
        out[f"{fn} meta_grad"] = _rel(getattr(gpu, fn).value_and_grad(*args, wrt=wrt),
                                      getattr(cpu, fn).value_and_grad(*args, wrt=wrt))
        if fn == "maml":
            theta = params[0]
            v = {k: rng.normal(size=a.shape) for k, a in theta.items()}
            out["maml vjp"] = _rel(gpu.maml.vjp(theta, t, cotangent=np.float64(0.5)),
                                   cpu.maml.vjp(theta, t, cotangent=np.float64(0.5)))
            out["maml jvp"] = _rel(gpu.maml.jvp(theta, t, tangents=v), cpu.maml.jvp(theta, t, tangents=v))
            out["maml hvp"] = _rel(gpu.maml.grad_and_hvp(theta, t, v=v), cpu.maml.grad_and_hvp(theta, t, v=v))
            x, y = t["support"]["x"][0], t["support"]["y"][0]
            out["mse grad"] = _rel(gpu.mse.value_and_grad(theta, x, y), cpu.mse.value_and_grad(theta, x, y))
            out["mse hvp (P3)"] = _rel(gpu.mse.grad_and_hvp(theta, x, y, v=v), cpu.mse.grad_and_hvp(theta, x, y, v=v))
    text = _text("learned_optimizer.meta", tiny)
    cpu, gpu = metacc.compile(text, dtype="f64"), metacc.compile(text, dtype="f64", target="cuda")
    d = 3 if tiny else 10
    phi, w0 = cpu.Opt.init(seed=2), {"w": rng.normal(size=(d, 1))}
    t = {"x": rng.normal(size=(n, 4 if tiny else 20, d)), "y": rng.normal(size=(n, 4 if tiny else 20, 1))}
    out["learned_optimizer meta_grad"] = _rel(gpu.learned_optimizer.value_and_grad(phi, t, w0, wrt="phi"),
                                              cpu.learned_optimizer.value_and_grad(phi, t, w0, wrt="phi"))
    text = (ROOT / "tests" / "e2e" / "programs" / "conv_tiny.meta").read_text()
    cpu, gpu = metacc.compile(text, dtype="f64"), metacc.compile(text, dtype="f64", target="cuda")
    theta = cpu.Conv.init(seed=3)
    k = 2 if tiny else 5
    t = {part: {"x": rng.normal(size=(n, k, 8, 8, 1)), "y": rng.integers(0, 3, size=(n, k))}
         for part in ("support", "query")}
    out["conv maml forward"] = _rel(gpu.maml(theta, t), cpu.maml(theta, t))
    out["conv maml meta_grad"] = _rel(gpu.maml.value_and_grad(theta, t), cpu.maml.value_and_grad(theta, t))
    return out


def _median_time(call, reps: int) -> float:
    call()                                              # warm-up (compiles on first use)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()                                          # the loss comes back to the host: synchronised
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timing(metacc, cuda, counts: list[int], reps: int, tiny: bool) -> list[dict]:
    text = _text("sinusoid_maml.meta", tiny)
    cpu, gpu = metacc.compile(text), metacc.compile(text, target="cuda")    # the program's own f32
    theta = cpu.Net.init(seed=0)
    d_theta = {k: cuda.to_device(v) for k, v in theta.items()}
    rows = []
    for n in counts:
        t = _tasks(np.random.default_rng(n), n, 3 if tiny else 10, np.float32)
        d_t = {s: {f: cuda.to_device(a) for f, a in part.items()} for s, part in t.items()}
        g = _median_time(lambda: gpu.maml.value_and_grad(d_theta, d_t), reps)
        c = _median_time(lambda: cpu.maml.value_and_grad(theta, t), reps)
        rows.append({"tasks": n, "cuda_s": g, "cpu_s": c, "speedup": c / g})
        print(f"  {n:>6} tasks: cuda {g * 1e3:9.2f} ms   cpu {c * 1e3:9.2f} ms   cpu/cuda {c / g:6.2f}x",
              flush=True)
    return rows


def conv4_timing(metacc, cuda, n: int, reps: int, tiny: bool) -> dict:
    """The Conv4 MAML step (P8's K = 1, full second order, f32) on the GPU, the CPU and JAX."""
    from benchmarks import p8_conv4
    text = p8_conv4.PROGRAM.read_text()
    if tiny:                       # the tests' reduction: 3 filters, 16x16 images (16 -> 8 -> 4 -> 2 -> 1)
        text = re.sub(r"\b64\b", "3", re.sub(r"\b28, 28\b", "16, 16", text))
    cpu, gpu = metacc.compile(text), metacc.compile(text, target="cuda")
    theta, norm = cpu.Conv.init(seed=0), cpu.Norm.init()
    hw, q = (16, 1) if tiny else (p8_conv4.HW, p8_conv4.QUERY)
    rng = np.random.default_rng(0)
    t = {"support": {"x": rng.normal(size=(n, 5, hw, hw, 1)).astype(np.float32),
                     "y": np.tile(np.arange(5), (n, 1)).astype(np.int64)},
         "query": {"x": rng.normal(size=(n, 5 * q, hw, hw, 1)).astype(np.float32),
                   "y": np.tile(np.repeat(np.arange(5), q), (n, 1)).astype(np.int64)}}
    dev = lambda tree: {k: dev(v) if isinstance(v, dict) else cuda.to_device(v) for k, v in tree.items()}  # noqa: E731
    d_theta, d_norm, d_t = dev(theta), dev(norm), dev(t)
    row = {"tasks": n,
           "cuda_s": _median_time(lambda: gpu.maml.value_and_grad(d_theta, d_norm, d_t, wrt=("theta", "norm")), reps),
           "cpu_s": _median_time(lambda: cpu.maml.value_and_grad(theta, norm, t, wrt=("theta", "norm")), reps)}
    row["cuda_vs_cpu"] = row["cpu_s"] / row["cuda_s"]
    try:
        import jax  # noqa: F401
    except ImportError:
        jax = None
    if jax is not None and not tiny:
        res = p8_conv4.child_jax(1, "full", n, reps)
        row["jax_s"] = res.get("median_s")
        row["jax_device"] = str(jax.devices()[0])
    print(f"  Conv4 {n} tasks: cuda {row['cuda_s'] * 1e3:9.1f} ms   cpu {row['cpu_s'] * 1e3:9.1f} ms"
          + (f"   jax ({row['jax_device']}) {row['jax_s'] * 1e3:9.1f} ms" if row.get("jax_s") else ""), flush=True)
    return row


def main() -> int:
    a = _args()
    if a.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import metacc
    from numba import cuda
    counts = [2, 3] if a.simulate else [int(x) for x in a.tasks.split(",")]
    print(f"device: {'CUDA simulator' if a.simulate else cuda.get_current_device().name}")
    print("correctness against the CPU back end (float64, max relative error):")
    errs = correctness(metacc, a.simulate)
    for k, e in errs.items():
        print(f"  {k:<32} {e:.2e}  {'ok' if e <= 1e-10 else 'FAIL'}")
    print(f"P1 K={'2' if a.simulate else '5'} f32 full second order, value_and_grad, median of {a.reps} "
          "after one warm-up:")
    rows = timing(metacc, cuda, counts, a.reps, a.simulate)
    print("Conv4 MAML (P8) K=1 f32 full second order, value_and_grad:")
    conv = conv4_timing(metacc, cuda, 2 if a.simulate else a.conv_tasks, a.reps, a.simulate)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"simulated": a.simulate, "correctness": errs, "timing": rows,
                                       "conv4": conv, "reps": a.reps}, indent=2))
    print(f"wrote {a.out}")
    return 0 if all(e <= 1e-10 for e in errs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
