"""Meta-train Conv4 MAML (conv4_maml.meta) on synthetic 5-way 1-shot image tasks.

    python examples/conv4_maml.py --iterations 50 [--eval-tasks 20]

The network and the step are P8's (WORKLOADS.md): 28x28x1 images, 4 blocks of [3x3 conv with
64 filters, batch norm of the current batch, ReLU, 2x2 max-pool], a linear layer to 5
classes, one inner SGD step of alpha = 0.4 adapting every parameter (learn2learn's
convention), full second order, 15 query
images per class. The images are a synthetic stand-in, not Omniglot: every class is a
random blob pattern (a 7x7 random field, upsampled and thresholded), every image of it
that pattern shifted by up to 2 pixels with pixel noise, so each task's classes are new.
The figure: the meta-loss (query cross-entropy after adaptation) at the start and the end;
with --eval-tasks N also the query accuracy on N held-out tasks after adaptation, with the
initial and the meta-trained weights (chance is 20%): off by default, since it compiles a
second kernel (`accuracy`), which takes minutes. The speed of one step at P8's size:
benchmarks/p8_conv4.py.
"""
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("conv4_maml.meta")
WAYS, SHOTS, QUERIES, HW = 5, 1, 15, 28


def blob_tasks(rng, n_tasks, dtype="f32"):
    """{'support': {'x': [B, 5, 28, 28, 1], 'y': [B, 5]}, 'query': {'x': [B, 75, 28, 28, 1], 'y': [B, 75]}}."""
    coarse = rng.normal(size=(n_tasks, WAYS, 7, 7))
    patterns = (np.kron(coarse, np.ones((4, 4))) > 0.5).astype(np.float64)      # [B, ways, 28, 28]
    out = {}
    for split, n in (("support", SHOTS), ("query", QUERIES)):
        y = np.tile(np.repeat(np.arange(WAYS), n), (n_tasks, 1))
        x = np.take_along_axis(patterns, y[:, :, None, None], axis=1)
        shifts = rng.integers(-2, 3, size=(2,) + y.shape)
        rows = (np.arange(HW)[None, None, :] - shifts[0][..., None]) % HW       # a cyclic shift per image
        cols = (np.arange(HW)[None, None, :] - shifts[1][..., None]) % HW
        x = np.take_along_axis(x, rows[..., :, None].repeat(HW, -1), axis=2)
        x = np.take_along_axis(x, cols[..., None, :].repeat(HW, -2), axis=3)
        x = x + 0.3 * rng.normal(size=x.shape)
        out[split] = {"x": x[..., None].astype(dtype.replace("f", "float")), "y": y.astype(np.int64)}
    return out


def held_out_accuracy(mod, groups, tasks, K) -> float:
    """Mean over tasks of the program's `accuracy` (query accuracy after K adaptation steps)."""
    one = lambda i: {s: {k: v[i] for k, v in d.items()} for s, d in tasks.items()}   # noqa: E731
    return float(np.mean([mod.accuracy(*groups, one(i), K=K) for i in range(len(tasks["support"]["y"]))]))


def main(argv=None):
    ap = flags(__doc__, iterations=50, meta_batch=4, inner_steps=1, alpha=0.4)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (outer loop)")
    ap.add_argument("--eval-tasks", type=int, default=0, help="held-out tasks to score (0: none)")
    args = ap.parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    groups = (mod.Conv.init(seed=args.seed), mod.Norm.init(seed=args.seed))
    step = lambda p, t: mod.maml.value_and_grad(p[0], p[1], t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    trained, log = meta_train(args, step, groups, Adam(args.lr), blob_tasks)
    report(log, "meta-loss (query cross-entropy)")
    if not args.eval_tasks:
        return trained, log
    held_out = blob_tasks(np.random.default_rng([args.seed, 2017]), args.eval_tasks, args.dtype)
    with log_compiles():
        before = held_out_accuracy(mod, groups, held_out, args.inner_steps)
        after = held_out_accuracy(mod, trained, held_out, args.inner_steps)
    print(f"held-out query accuracy ({args.eval_tasks} tasks, {WAYS}-way {SHOTS}-shot, {args.inner_steps} step): "
          f"initial {before:.1%}, meta-trained {after:.1%} (chance {1 / WAYS:.0%})")
    return trained, log


if __name__ == "__main__":
    main()
