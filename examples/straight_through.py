"""Train a hard-threshold unit with the straight-through estimator (straight_through.meta).

    python examples/straight_through.py --iterations 300

The unit outputs step(x w): its true derivative is zero almost everywhere,
so plain gradient descent cannot move w. straight_through(step(z), z) keeps
the hard output and differentiates as if it were z; the gradient of
sum((h - t)^2) is then 2 (h - t) x, non-zero exactly on the mistakes (the
perceptron rule). Targets come from a hidden teacher, t = step(x w*); each
"task" of the meta function is one batch of 32 points, and its result is
the mean over the batches, i.e. mistakes per batch. The figure: the error
rate on held-out points before and after training.
"""
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("straight_through.meta")
POINTS = 32


def batches(rng, teacher, n_batches, dtype="f32"):
    """{'x': [B, 32, 8], 't': [B, 32, 1]}: Gaussian points labelled by the teacher's hard step."""
    x = rng.normal(size=(n_batches, POINTS, 8))
    t = (x @ teacher > 0).astype(np.float64)
    dt = dtype.replace("f", "float")
    return {"x": x.astype(dt), "t": t.astype(dt)}


def main(argv=None):
    ap = flags(__doc__, iterations=300, meta_batch=8, batch_of=f"batches of {POINTS} points")
    ap.add_argument("--eval-batches", type=int, default=100)
    args = ap.parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    teacher = np.random.default_rng([args.seed, 7]).normal(size=(8, 1))
    w0 = mod.Weights.init(seed=args.seed)
    w, log = meta_train(args, lambda p, b: mod.ste.value_and_grad(p, b), w0, Adam(1e-2),
                        lambda rng, n_batches, dtype: batches(rng, teacher, n_batches, dtype))
    report(log, f"mistakes per batch of {POINTS}")

    held_out = batches(np.random.default_rng([args.seed, 2019]), teacher, args.eval_batches, args.dtype)
    with log_compiles():
        # ste's value is the mean number of mistakes per batch: divide by the points per batch
        before, after = (float(mod.ste(p, held_out)) / POINTS for p in (w0, w))
    cosine = float(np.sum(w["w"] * teacher) / np.linalg.norm(w["w"]) / np.linalg.norm(teacher))
    print(f"held-out error rate ({args.eval_batches * POINTS} points): before training {before:.1%}, "
          f"after {after:.1%}; cosine(w, teacher) {cosine:.3f}")
    return w, log


if __name__ == "__main__":
    main()
