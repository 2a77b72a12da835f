"""Sinusoid few-shot regression: MAML against a pretrained baseline (Finn et al. 2017, section 5.1).

    python examples/sinusoid_demo.py                 # MAML, 10-shot, 1 inner step
    python examples/sinusoid_demo.py --meta-sgd      # Meta-SGD: learned per-weight rates
    python examples/sinusoid_demo.py --iterations 2000 --out /tmp/demo

1. Meta-trains the 1-40-40-1 ReLU network of sinusoid_maml.meta (or
   meta_sgd.meta) with Adam on batches of 25 fresh 10-shot tasks; one
   compiled call gives the mean meta-loss and meta-gradient of a batch.
2. Trains a baseline: the same network fitted by plain regression to points
   of many tasks mixed together (the "pretrained" model of the paper).
3. Evaluates both on 600 held-out tasks with 5, 10 and 20 support points:
   fine-tune on the support points with SGD (alpha = 0.01, the compiled
   mse.grad of the program), then measure the MSE on 100 query points, after 1
   and 10 steps. Reports mean MSE with 95% confidence intervals.
4. Writes results.json, a plot of held-out tasks and a learning curve to --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import SINUSOID, sinusoid_tasks
from metacc.runtime.progress import log_compiles
from metacc.runtime.train import progress_bar, train

HERE = Path(__file__).resolve().parent
SHOTS = (5, 10, 20)
REPORT_STEPS = (1, 10)          # the paper's 1 and 10 gradient steps at test time
QUERY_POINTS = 100              # per held-out task: a low-noise estimate of each task's MSE
ALPHA = 0.01                    # the inner learning rate at training and test time
DIVERGED = 1e6                  # a query MSE past this means the fine-tuning blew up
BASELINE_SMALL_STEP = 0.001     # fine-tuning the baseline with ALPHA overshoots; a fairer extra row


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=10000, help="outer steps (MAML and baseline each)")
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--shots", type=int, default=10, help="support points per training task")
    ap.add_argument("--inner-steps", type=int, default=1, help="inner SGD steps while meta-training (MAML)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (outer loop)")
    ap.add_argument("--eval-tasks", type=int, default=600)
    ap.add_argument("--meta-sgd", action="store_true", help="meta-learn a rate per weight (meta_sgd.meta)")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--no-progress", action="store_true", help="no progress bars, no compile messages")
    return ap.parse_args(argv)


class Learner:
    """One way of producing a network and adapting it to a task: MAML, Meta-SGD or the baseline.

    `params` is what the outer loop trains; `init_net` and `rates` say how a
    task starts and steps: p <- p - rates * grad support MSE(p).
    """

    def __init__(self, name, mod, params, init_net, rates):
        self.name, self.mod, self.params = name, mod, params
        self.init_net, self.rates = init_net, rates

    def net(self):
        return self.init_net(self.params)

    def step_sizes(self):
        return self.rates(self.params)

    def adapt(self, x, y, steps):
        """Yield the adapted network after 0, 1, ..., steps SGD steps on (x, y)."""
        p, a = self.net(), self.step_sizes()
        yield p
        for _ in range(steps):
            g = self.mod.mse.grad(p, x, y)
            p = {k: p[k] - a[k] * g[k] for k in p}
            yield p


def build(args):
    """The compiled module and the three learners' trainable parameters and step functions."""
    dt = np.float32 if args.dtype == "f32" else np.float64
    if args.meta_sgd:
        mod = metacc.compile(HERE / "meta_sgd.meta", dtype=args.dtype)
        params = (mod.Net.init(seed=args.seed), mod.Rates.init())
        meta = Learner("Meta-SGD", mod, params, lambda p: p[0], lambda p: p[1])
        meta_step = lambda p, t: mod.meta_sgd.value_and_grad(p[0], p[1], t)  # noqa: E731
    else:
        mod = metacc.compile(HERE / "sinusoid_maml.meta", dtype=args.dtype)
        fixed = {k: dt(ALPHA) for k in mod.Net.fields}
        meta = Learner("MAML", mod, mod.Net.init(seed=args.seed), lambda p: p, lambda p: fixed)
        meta_step = lambda p, t: mod.maml.value_and_grad(p, t, alpha=ALPHA, K=args.inner_steps)  # noqa: E731
    fixed = {k: dt(ALPHA) for k in mod.Net.fields}
    base = Learner("pretrained", mod, mod.Net.init(seed=args.seed), lambda p: p, lambda p: fixed)
    return mod, meta, meta_step, base, _baseline_step(mod)


def small_step(base, dt):
    """The trained baseline fine-tuned with a tenfold smaller step: not the paper's protocol,
    but it tells a baseline that cannot adapt from one whose step size is too large for it."""
    rates = {k: dt(BASELINE_SMALL_STEP) for k in base.mod.Net.fields}
    return Learner(f"pretrained, alpha={BASELINE_SMALL_STEP}", base.mod, base.params, lambda p: p,
                   lambda p: rates)


def _baseline_step(mod):
    """Plain regression on the tasks mixed: the MSE over every point of every task in the batch.

    All tasks have the same number of points, so this is also the mean of the
    per-task MSEs, without any adaptation: the paper's pretrained model.
    """
    def step(p, tasks):
        x = np.concatenate([tasks["support"]["x"], tasks["query"]["x"]], axis=1).reshape(-1, 1)
        y = np.concatenate([tasks["support"]["y"], tasks["query"]["y"]], axis=1).reshape(-1, 1)
        return mod.mse.value_and_grad(p, x, y)
    return step


def held_out(seed, n_tasks, dtype):
    """Held-out tasks from their own generator: the functions, 20 support and 100 query points each.

    The k-shot support set is the first k of the 20 points, so the 5-, 10-
    and 20-shot evaluations fine-tune on nested sets of the same tasks.
    """
    rng = np.random.default_rng([seed, 2017])
    functions = SINUSOID.draw(rng, n_tasks)
    return functions, SINUSOID.tasks_for(rng, functions, k=max(SHOTS), q=QUERY_POINTS, dtype=dtype)


def evaluate(learner, tasks, shots, steps, bar=None):
    """Query MSE per task after 0..steps adaptation steps on `shots` support points: [n_tasks, steps + 1].

    bar: a progress bar to advance by one per task (the held-out evaluation takes a while)."""
    mse = learner.mod.mse
    sx, sy = tasks["support"]["x"][:, :shots], tasks["support"]["y"][:, :shots]
    qx, qy = tasks["query"]["x"], tasks["query"]["y"]
    out = np.empty((len(sx), steps + 1))
    for i in range(len(sx)):
        for s, p in enumerate(learner.adapt(sx[i], sy[i], steps)):
            out[i, s] = float(mse(p, qx[i], qy[i]))
        if bar is not None:
            bar.update(1)
    return out


def mean_ci(values):
    """[mean, half-width of its 95% normal confidence interval, tasks that diverged].

    A task diverged when fine-tuning blew its query MSE up past DIVERGED
    (predicting 0 everywhere scores at most 25 on these tasks). Such tasks make
    the mean meaningless, so it is reported as infinite with their count.
    """
    values = np.asarray(values, np.float64)
    bad = int(np.sum(~(values < DIVERGED)))      # also catches NaN
    if bad:
        return [float("inf"), float("inf"), bad]
    return [float(np.mean(values)), float(1.96 * np.std(values, ddof=1) / np.sqrt(len(values))), 0]


def validation(learner, tasks, steps):
    """The learning curve's evaluation: mean query MSE of fixed tasks after the training inner steps."""
    def run(params, iteration):
        learner.params = params
        return float(np.mean(evaluate(learner, tasks, SHOTS[1], steps)[:, -1]))
    return run


def main(argv=None):
    args = parse(argv)
    # a line for each kernel build or cache load (the first one takes seconds), unless --no-progress
    with log_compiles() if not args.no_progress else nullcontext():
        return run(args)


def run(args):
    if args.meta_sgd and args.inner_steps != 1:
        raise SystemExit("--meta-sgd: meta_sgd.meta takes exactly one inner step (--inner-steps 1)")
    started = time.perf_counter()
    mod, meta, meta_step, base, base_step = build(args)

    # Training tasks, validation tasks and held-out tasks come from three separate generators.
    rng = np.random.default_rng([args.seed, 1])
    sample = lambda: sinusoid_tasks(rng, args.meta_batch, k=args.shots, dtype=args.dtype)  # noqa: E731
    val_tasks = sinusoid_tasks(np.random.default_rng([args.seed, 2]), 100, k=10, q=QUERY_POINTS,
                               dtype=args.dtype)
    every = max(1, args.iterations // 25)
    histories = {}
    for learner, step in ((meta, meta_step), (base, base_step)):
        learner.params, histories[learner.name] = train(
            step, learner.params, Adam(args.lr), sample, args.iterations,
            evaluate=validation(learner, val_tasks, args.inner_steps), eval_every=every,
            progress=not args.no_progress, desc=f"train {learner.name}")
    trained = time.perf_counter()

    functions, tasks = held_out(args.seed, args.eval_tasks, args.dtype)
    learners = (meta, base, small_step(base, np.float32 if args.dtype == "f32" else np.float64))
    bar = progress_bar(len(learners) * len(SHOTS) * args.eval_tasks, "evaluate held-out tasks",
                       not args.no_progress)
    try:
        with np.errstate(over="ignore", invalid="ignore"):     # divergence is reported, not warned about
            curves = {ln.name: {k: evaluate(ln, tasks, k, max(REPORT_STEPS), bar) for k in SHOTS}
                      for ln in learners}
    finally:
        if bar is not None:
            bar.close()
    finished = time.perf_counter()

    results = summarise(args, curves, histories, trained - started, finished - trained)
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / "results.json"]
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))   # sinusoid_plots.py lies beside this file
    try:
        from sinusoid_plots import plot_learning_curves, plot_tasks
    except ImportError as e:            # matplotlib is the optional 'demo' extra
        print(f"matplotlib is not installed ({e.name}): skipping the plots "
              "(pip install 'metacc[demo]' to get them)")
    else:
        written.append(plot_tasks(args.out / "tasks.png", learners, functions, tasks, ALPHA))
        written.append(plot_learning_curves(args.out / "learning_curve.png", histories))
    for path in written:
        print(f"wrote {path}")
    return results


def summarise(args, curves, histories, train_s, eval_s):
    table = {}
    for name, by_shots in curves.items():
        table[name] = {}
        for k, mse in by_shots.items():
            row = {"before": mean_ci(mse[:, 0])}
            row.update({f"{s} steps": mean_ci(mse[:, s]) for s in REPORT_STEPS})
            table[name][f"{k}-shot"] = row
    return {
        "config": {"method": "Meta-SGD" if args.meta_sgd else "MAML", "iterations": args.iterations,
                   "meta_batch": args.meta_batch, "train_shots": args.shots,
                   "train_inner_steps": args.inner_steps, "alpha": ALPHA, "outer": f"Adam(lr={args.lr})",
                   "eval_tasks": args.eval_tasks, "query_points": QUERY_POINTS, "dtype": args.dtype,
                   "seed": args.seed},
        "mse": table,
        "seconds": {"train (both, incl. compile)": round(train_s, 1), "evaluate": round(eval_s, 1),
                    **{f"train loop {n}": round(h.seconds, 1) for n, h in histories.items()}},
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
    }


def print_table(results):
    c = results["config"]
    print(f"\n{c['method']} vs pretrained baseline: {c['iterations']} outer iterations each, "
          f"meta-batch {c['meta_batch']}, {c['eval_tasks']} held-out tasks, alpha {c['alpha']}")
    print("query MSE, mean ± 95% CI")
    steps = ["before"] + [f"{s} steps" for s in REPORT_STEPS]
    width = max(len(n) for n in results["mse"]) + 2
    print(f"{'':{width}}{'':8}" + "".join(f"{s:>20}" for s in steps))
    for name, rows in results["mse"].items():
        for shots, row in rows.items():
            cells = "".join(f"{row[s][0]:>11.3f} ± {row[s][1]:<6.3f}" if not row[s][2]
                            else f"{'diverged: ' + str(row[s][2]) + ' tasks':>20}" for s in steps)
            print(f"{name:{width}}{shots:8}{cells}")
    print("time: " + ", ".join(f"{k} {v} s" for k, v in results["seconds"].items()))


if __name__ == "__main__":
    main()
