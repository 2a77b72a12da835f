"""Few-shot image classification: Conv4 MAML, first-order MAML, ANIL and R2-D2 against a pretrained baseline.

    python examples/fewshot_demo.py                    # the Hershey stand-in (installs from PyPI)
    python examples/fewshot_demo.py --data ~/omniglot  # real Omniglot, a local copy (Finn et al.'s split)
    python examples/fewshot_demo.py --iterations 3 --test-episodes 4 --filters 4 --out /tmp/fs   # tiny

1. Meta-trains the Conv4 network of examples/fewshot/conv4.meta (Finn et al. 2017: four
   blocks of 3x3 convolution, batch norm, ReLU, 2x2 max-pool; --filters of them per block,
   Finn et al. use 64) on 5-way episodes of the meta-training classes with four methods:
   MAML (second order), first-order MAML, ANIL (only the head adapts) and R2-D2 (a
   closed-form ridge head). Adam in the outer loop; one compiled call per outer step.
2. Trains the baseline: the same body with a classifier over all meta-training classes,
   trained by plain mini-batch cross-entropy (the "pretrained" model), whose 5-way head
   starts at zero at test time.
3. Evaluates every model on --test-episodes held-out 5-way episodes (1-shot and 5-shot, 15
   query images per class) of the meta-test classes: SGD with the inner rate on the support
   set (every parameter for MAML, first-order MAML and the baseline, the head for ANIL), query
   accuracy after 0..10 steps. R2-D2's head is fitted in closed form: no steps.
   The same episodes for every model; mean accuracy with its 95% confidence interval.
4. Writes results.json, accuracy_vs_steps.png and episodes.png to --out (out/fewshot/).

Without --data the images are the hershey-omniglot-standin (docs/data.md), not Omniglot:
figures on it are not comparable with published Omniglot figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.data import fewshot_data
from metacc.runtime.episodes import ClassBatches, mean_ci95
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles
from metacc.runtime.train import progress_bar, train

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "fewshot" / "conv4.meta"    # not examples/*.meta: it has no driver of its own (this demo is it)
PROGRAM_FILTERS = 16            # every 16 in the program is the filter count (--filters rewrites it)
PROGRAM_CLASSES = 600           # the baseline classifier's width in the program (rewritten to the data's)
WAYS = 5
TEST_SHOTS = (1, 5)
TEST_QUERIES = 15               # per class: the stand-in and Omniglot have 20 images per class
EVAL_AT = (0, 1, 2, 5, 10)      # test-time SGD steps after which the query accuracy is measured (each costs a
                                # forward pass of the 75 query images: the few points keep 600 episodes cheap)
REPORT_STEPS = (1, 10)
METHODS = ("MAML", "first-order MAML", "ANIL", "R2-D2", "pretrained")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="a local copy of Omniglot (images_background/, images_evaluation/); "
                         "default: the hershey-omniglot-standin")
    ap.add_argument("--iterations", type=int, default=1500, help="outer steps per meta-learner")
    ap.add_argument("--pretrain-iterations", type=int, default=None,
                    help="mini-batch steps of the baseline (default: 8 x --iterations, about the images "
                         "forward and backward of a MAML run: its steps are ~8 times cheaper)")
    ap.add_argument("--meta-batch", type=int, default=16, help="episodes per outer step")
    ap.add_argument("--pretrain-batch", type=int, default=64, help="images per baseline step")
    ap.add_argument("--filters", type=int, default=16, help="filters per conv block (Finn et al.: 64)")
    ap.add_argument("--train-shots", type=int, default=1, help="support images per class while meta-training")
    ap.add_argument("--train-queries", type=int, default=5, help="query images per class while meta-training")
    ap.add_argument("--alpha", type=float, default=0.4, help="inner SGD rate, training and test (Finn et al.'s)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (outer loop, baseline)")
    ap.add_argument("--test-episodes", type=int, default=600)
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--rotations", action="store_true",
                    help="Omniglot's 90-degree rotations as extra classes (Finn et al. use them on Omniglot)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/fewshot"))
    ap.add_argument("--no-progress", action="store_true", help="no progress bars, no compile messages")
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    if args.pretrain_iterations is None:
        args.pretrain_iterations = 8 * args.iterations
    return args


def program_text(filters: int, classes: int) -> str:
    """fewshot/conv4.meta with its filter count and baseline classifier width replaced."""
    text = PROGRAM.read_text()
    text = re.sub(rf"\b{PROGRAM_FILTERS}\b", str(filters), text)
    return re.sub(rf"\b{PROGRAM_CLASSES}\b", str(classes), text)


class Learner:
    """A trained model and how it adapts to a test episode.

    kind: "all" (SGD on every parameter: MAML, first-order MAML, the baseline with a zero
    5-way head), "head" (SGD on the head over fixed features: ANIL) or "ridge" (R2-D2's
    closed-form head: no steps). `params` is what training optimises."""

    def __init__(self, name, kind, params):
        self.name, self.kind, self.params = name, kind, params

    def start(self, zero_head):
        """The body and head a test episode starts from."""
        if self.name == "pretrained":
            return self.params[0], zero_head
        return self.params


def adapt(mod, learner, zero_head, sx, sy, qx, alpha, at=EVAL_AT):
    """Predicted query labels after each number of SGD steps in `at`: {steps: labels [N*Q]}.

    The same rule as the inner loops of fewshot/conv4.meta, one compiled gradient of `ce`
    (or of `head_ce` for ANIL) per step; batch norm uses the statistics of the batch it is
    given (the support set while adapting, the query set when classifying)."""
    if learner.kind == "ridge":
        body, ridge = learner.params
        fs, fq = (np.asarray(mod.features(body, x), np.float64) for x in (sx, qx))
        w = fs.T @ np.linalg.solve(fs @ fs.T + float(ridge["lam"]) * np.eye(len(fs)), np.eye(WAYS)[sy])
        labels = np.argmax(float(ridge["scale"]) * (fq @ w) + float(ridge["shift"]), axis=1)
        return {s: labels for s in at}
    p, h = learner.start(zero_head)
    if learner.kind == "head":
        fs, fq = mod.features(p, sx), mod.features(p, qx)
    out = {}
    for step in range(max(at) + 1):
        if step in at:
            f = fq if learner.kind == "head" else mod.features(p, qx)
            out[step] = np.argmax(f @ h["w"] + h["b"], axis=1)
        if step == max(at):
            break
        if learner.kind == "head":
            gh = mod.head_ce.grad(h, fs, sy)
        else:
            gp, gh = mod.ce.grad(p, h, sx, sy)
            p = {k: p[k] - alpha * gp[k] for k in p}
        h = {k: h[k] - alpha * gh[k] for k in h}
    return out


def build(args, data, split):
    mod = metacc.compile(program_text(args.filters, len(split.train) * (4 if args.rotations else 1)))
    s, a = args.seed, np.float32(args.alpha)
    net = lambda: (mod.Body.init(seed=s), mod.Head.init(seed=s + 1))  # noqa: E731  every method starts alike
    learners = {
        "MAML": (Learner("MAML", "all", net()), lambda p, t: mod.maml.value_and_grad(p[0], p[1], t, alpha=a)),
        "first-order MAML": (Learner("first-order MAML", "all", net()),
                             lambda p, t: mod.fomaml.value_and_grad(p[0], p[1], t, alpha=a)),
        "ANIL": (Learner("ANIL", "head", net()), lambda p, t: mod.anil.value_and_grad(p[0], p[1], t, alpha=a)),
        "R2-D2": (Learner("R2-D2", "ridge", (mod.Body.init(seed=s), mod.Ridge.init(seed=s))),
                  lambda p, t: mod.r2d2.value_and_grad(p[0], p[1], t)),
        "pretrained": (Learner("pretrained", "all", (mod.Body.init(seed=s), mod.Classifier.init(seed=s + 1))),
                       lambda p, b: mod.pretrain_ce.value_and_grad(p[0], p[1], b["x"], b["y"])),
    }
    zero_head = {k: np.zeros_like(v) for k, v in mod.Head.init().items()}
    return mod, {m: learners[m] for m in args.methods}, zero_head


def test_episodes(args, data, split, shots):
    """The held-out episodes for `shots`: the meta-test classes, from their own generator, the
    same for every model."""
    ep = data.episodes(split.test, ways=WAYS, shots=shots, queries=TEST_QUERIES, rotations=args.rotations)
    draw = ep.draw(np.random.default_rng([args.seed, 2017, shots]), args.test_episodes)
    return ep, draw


def evaluate(mod, learner, zero_head, ep, draw, alpha, bar=None, chunk=50):
    """Query accuracy per episode after each number of steps in EVAL_AT: [episodes, len(EVAL_AT)].

    The images are gathered `chunk` episodes at a time (600 5-shot episodes at once would be
    188 MB)."""
    rows = []
    for lo in range(0, len(draw.classes), chunk):
        tasks = ep.tasks_for(_part(draw, lo, lo + chunk))
        for i in range(len(tasks["support"]["y"])):
            sx, sy = tasks["support"]["x"][i], tasks["support"]["y"][i]
            qx, qy = tasks["query"]["x"][i], tasks["query"]["y"][i]
            pred = adapt(mod, learner, zero_head, sx, sy, qx, alpha)
            rows.append([np.mean(pred[s] == qy) for s in EVAL_AT])
            if bar is not None:
                bar.update(1)
    return np.array(rows)


def _part(draw, lo, hi):
    return type(draw)(**{k: getattr(draw, k)[lo:hi] for k in ("classes", "turns", "support", "query")})


def main(argv=None):
    args = parse(argv)
    with log_compiles() if not args.no_progress else nullcontext():
        return run(args)


def run(args):
    started = time.perf_counter()
    data, split = fewshot_data(args.data)
    standin = args.data is None
    print(f"data: {data.name}{' (a stand-in for Omniglot, not Omniglot)' if standin else ''}: "
          f"{len(split.train)} meta-training, {len(split.val)} meta-validation, {len(split.test)} meta-test "
          f"classes; Conv4 with {args.filters} filters per block" +
          (" (Finn et al. use 64; fewer to train on 2 CPU cores in minutes, not hours)" if args.filters < 64 else ""))
    mod, learners, zero_head = build(args, data, split)
    alpha = np.float32(args.alpha)
    loaded = time.perf_counter()

    # training: meta-learners on episodes of the meta-training classes, the baseline on mini-batches
    train_ep = data.episodes(split.train, ways=WAYS, shots=args.train_shots, queries=args.train_queries,
                             rotations=args.rotations)
    histories = {}
    for name, (learner, step) in learners.items():
        rng = np.random.default_rng([args.seed, 1])
        if name == "pretrained":
            batches = ClassBatches(data.images, data.labels, split.train, args.pretrain_batch, rng,
                                   rotations=args.rotations)
            sample, iterations = batches, args.pretrain_iterations
        else:
            sample, iterations = (lambda r=rng: train_ep.sample(r, args.meta_batch)), args.iterations
        learner.params, histories[name] = train(step, learner.params, Adam(args.lr), sample, iterations,
                                                progress=not args.no_progress, desc=f"train {name}")
    trained = time.perf_counter()

    curves, shown = {}, {}
    bar = progress_bar(len(learners) * len(TEST_SHOTS) * args.test_episodes, "evaluate test episodes",
                       not args.no_progress)
    try:
        for shots in TEST_SHOTS:
            ep, draw = test_episodes(args, data, split, shots)
            for name, (learner, _) in learners.items():
                curves.setdefault(name, {})[shots] = evaluate(mod, learner, zero_head, ep, draw, alpha, bar)
            shown[shots] = ep.tasks_for(_part(draw, 0, 3))
    finally:
        if bar is not None:
            bar.close()
    finished = time.perf_counter()

    results = summarise(args, data, split, curves, histories,
                        {"load data and program": loaded - started,
                         "train (compiling on first calls)": trained - loaded,
                         "evaluate": finished - trained})
    print_table(results)
    written = write(args, mod, learners, zero_head, results, shown, data.name)
    results["seconds"]["total"] = round(time.perf_counter() - started, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for path in written:
        print(f"wrote {path}")
    print(f"total {results['seconds']['total']} s")
    return results


def summarise(args, data, split, curves, histories, seconds):
    table = {}
    for name, by_shots in curves.items():
        table[name] = {}
        for shots, acc in by_shots.items():
            mean_half = [mean_ci95(acc[:, i]) for i in range(len(EVAL_AT))]
            row = {"steps": list(EVAL_AT),
                   "mean": [round(m, 5) for m, _ in mean_half], "ci95": [round(h, 5) for _, h in mean_half]}
            row.update({f"after {s} steps": [round(mean_half[EVAL_AT.index(s)][0], 5),
                                             round(mean_half[EVAL_AT.index(s)][1], 5)] for s in REPORT_STEPS})
            table[name][f"{shots}-shot"] = row
    return {
        "data": data.name, "stand_in": args.data is None,
        "classes": {"meta-train": len(split.train), "meta-val": len(split.val), "meta-test": len(split.test)},
        "config": {"network": f"Conv4, {args.filters} filters per block", "ways": WAYS,
                   "iterations": args.iterations, "pretrain_iterations": args.pretrain_iterations,
                   "meta_batch": args.meta_batch, "pretrain_batch": args.pretrain_batch,
                   "train_shots": args.train_shots, "train_queries": args.train_queries,
                   "test_queries": TEST_QUERIES, "alpha": args.alpha, "train_inner_steps": 1,
                   "outer": f"Adam(lr={args.lr})", "test_episodes": args.test_episodes,
                   "rotations": args.rotations, "seed": args.seed, "dtype": "f32"},
        "accuracy": table,
        "training": {n: {"loss_first_10": float(np.mean(h.losses[:10])) if h.losses else None,
                         "loss_last_10": float(np.mean(h.losses[-10:])) if h.losses else None,
                         "seconds": round(h.seconds, 1)} for n, h in histories.items()},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
    }


def print_table(results):
    c = results["config"]
    print(f"\n{results['data']}: 5-way query accuracy (%) on {c['test_episodes']} meta-test episodes, "
          f"mean ± 95% CI; {c['network']}, {c['iterations']} outer iterations, meta-batch {c['meta_batch']}")
    width = max(len(n) for n in results["accuracy"]) + 2
    print(f"{'':{width}}{'':8}" + "".join(f"{'after ' + str(s) + ' step' + 's' * (s > 1):>18}" for s in REPORT_STEPS))
    for name, rows in results["accuracy"].items():
        for shots, row in rows.items():
            cells = "".join(f"{100 * row[f'after {s} steps'][0]:>11.1f} ± {100 * row[f'after {s} steps'][1]:<4.1f}"
                            for s in REPORT_STEPS)
            note = "  (closed form: no steps)" if name == "R2-D2" else ""
            print(f"{name:{width}}{shots:8}{cells}{note}")
    print("time: " + ", ".join(f"{k} {v} s" for k, v in results["seconds"].items()))


def write(args, mod, learners, zero_head, results, shown, data_name):
    """results.json, the accuracy-against-steps plots and the figure of test episodes."""
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / "results.json"]
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))   # fewshot_plots.py lies beside this file
    try:
        from fewshot_plots import plot_accuracy_vs_steps, plot_episodes
    except ImportError as e:            # matplotlib is the optional 'demo' extra
        print(f"matplotlib is not installed ({e.name}): skipping the figures "
              "(pip install 'metacc[demo,fewshot]' to get them)")
        return written
    for shots in TEST_SHOTS:
        key = f"{shots}-shot"
        lines = {n: (EVAL_AT, rows[key]["mean"], rows[key]["ci95"]) for n, rows in results["accuracy"].items()}
        written.append(plot_accuracy_vs_steps(args.out / f"accuracy_vs_steps_{shots}shot.png", lines, data_name,
                                              1 / WAYS, title=f"5-way {shots}-shot, {args.test_episodes} episodes"))
    learner = next(iter(learners.values()))[0]          # the first method asked for: MAML by default
    tasks, last = shown[TEST_SHOTS[0]], max(EVAL_AT)
    pred = np.stack([adapt(mod, learner, zero_head, tasks["support"]["x"][i], tasks["support"]["y"][i],
                           tasks["query"]["x"][i], np.float32(args.alpha), at=(last,))[last]
                     for i in range(len(tasks["support"]["y"]))])
    steps_note = "closed-form head" if learner.kind == "ridge" else f"after {last} steps"
    written.append(plot_episodes(args.out / "episodes.png", tasks, pred, data_name,
                                 title=f"{learner.name}, 5-way {TEST_SHOTS[0]}-shot, {steps_note}"))
    return written


if __name__ == "__main__":
    main()
