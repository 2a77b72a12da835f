"""Meta-train a data-selection rule through sampled keep/drop choices with DiCE (data_selection.meta).

    python examples/data_selection.py --iterations 1000

Each task is a linear regression whose support set has corrupted points: about
40% of the labels carry noise of standard deviation 3. Every support point
comes with two side features that the regression does not use: a quality
score (around +1 for a corrupted point, -1 for a clean one) and a distractor.
The selector turns them into a keep probability sigmoid(f w + b); each task
draws two keep masks from it (categorical, Gumbel-max), the inner loop takes
K SGD steps from the meta-learned init on the kept points only, and the
reward is the query MSE after adaptation. The masks are discrete, so no
derivative reaches the selector through them: its gradient is DiCE's
score-function estimator (magic(log p(mask)) * loss, each sample's loss
baselined by the other's), while the init's gradient is MAML's, through the
inner steps. The figure: the held-out query MSE after adaptation for the
untrained start (init 0, every point kept with probability 1/2) and after
meta-training, beside the trained init with the untrained rule and with every
point kept (what the selection alone is worth), and the learned rule's keep
probability for corrupted and for clean points.

--estimator gumbel trains the same rule through select_relaxed instead: the
masks are straight-through Gumbel-softmax samples (one-hot forward, the
relaxed sample's derivative backward: biased, lower variance). Measured with
the defaults otherwise: held-out query MSE 0.489 (DiCE: 0.386), keep
probability 16.7% for corrupted points, 97.6% for clean ones. The held-out
figures of both come from select's forward pass (masks drawn by categorical).
"""
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("data_selection.meta")
MEAN_W = np.array([1.0, -1.0, 0.5, 2.0])        # the tasks' weights scatter around this: what the init can learn
CORRUPTED, LABEL_NOISE, CLEAN_NOISE = 0.4, 3.0, 0.1
SUPPORT, QUERY = 12, 20


def noisy_tasks(rng, n_tasks, dtype="f32"):
    """Linear-regression tasks whose support labels are corrupted at random, flagged by a noisy quality score."""
    dt = dtype.replace("f", "float")
    w = MEAN_W + 0.5 * rng.normal(size=(n_tasks, 4))
    xs, xq = rng.normal(size=(n_tasks, SUPPORT, 4)), rng.normal(size=(n_tasks, QUERY, 4))
    bad = rng.random((n_tasks, SUPPORT)) < CORRUPTED
    noise = np.where(bad, LABEL_NOISE, CLEAN_NOISE) * rng.normal(size=(n_tasks, SUPPORT))
    ys = np.einsum("tnd,td->tn", xs, w) + noise
    yq = np.einsum("tnd,td->tn", xq, w) + CLEAN_NOISE * rng.normal(size=(n_tasks, QUERY))
    quality = np.where(bad, 1.0, -1.0) + 0.5 * rng.normal(size=(n_tasks, SUPPORT))
    side = np.stack([quality, rng.normal(size=(n_tasks, SUPPORT))], axis=-1)
    return {"support": {"x": xs.astype(dt), "y": ys[..., None].astype(dt), "f": side.astype(dt)},
            "query": {"x": xq.astype(dt), "y": yq[..., None].astype(dt)},
            "seed": rng.integers(0, 2 ** 62, size=n_tasks), "bad": bad}


def keep_probability(sel, tasks, which):
    """The rule's mean keep probability over the corrupted (which=True) or clean support points."""
    z = np.asarray(tasks["support"]["f"], np.float64) @ np.asarray(sel["w"], np.float64) + float(sel["b"][0])
    return float(np.mean(1 / (1 + np.exp(-z[..., 0][tasks["bad"] == which]))))


def main(argv=None):
    ap = flags(__doc__, iterations=1000, meta_batch=32, inner_steps=5, alpha=0.1)
    ap.add_argument("--lr", type=float, default=3e-2, help="Adam's learning rate (outer loop)")
    ap.add_argument("--eval-tasks", type=int, default=500)
    ap.add_argument("--estimator", choices=("dice", "gumbel"), default="dice",
                    help="the selector's gradient: DiCE's score function, or the straight-through Gumbel-softmax")
    args = ap.parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng_key = np.uint64(args.seed)
    start = (mod.Net.init(seed=args.seed), mod.Selector.init(seed=args.seed))

    meta = mod.select if args.estimator == "dice" else mod.select_relaxed

    def step(p, tasks):
        data = {k: v for k, v in tasks.items() if k != "bad"}
        return meta.value_and_grad(p[0], p[1], data, rng_key, alpha=args.alpha, K=args.inner_steps)

    params, log = meta_train(args, step, start, Adam(args.lr), noisy_tasks)
    report(log, "query MSE after adaptation")

    held_out = noisy_tasks(np.random.default_rng([args.seed, 2018]), args.eval_tasks, args.dtype)
    data = {k: v for k, v in held_out.items() if k != "bad"}
    keep_all = {"w": np.zeros_like(params[1]["w"]), "b": np.full_like(params[1]["b"], 30.0)}   # sigmoid(30) = 1
    with log_compiles():
        before, after, half, every = (
            float(mod.select(theta, sel, data, rng_key, alpha=args.alpha, K=args.inner_steps))
            for theta, sel in (start, params, (params[0], start[1]), (params[0], keep_all)))
    print(f"held-out query MSE after {args.inner_steps} steps ({args.eval_tasks} tasks): untrained {before:.3f}, "
          f"meta-trained {after:.3f} (the trained init with the untrained rule {half:.3f}, keeping every point "
          f"{every:.3f}); learned keep probability "
          f"{keep_probability(params[1], held_out, True):.1%} for corrupted points, "
          f"{keep_probability(params[1], held_out, False):.1%} for clean ones")
    return params, log


if __name__ == "__main__":
    main()
