"""Meta-train R2-D2 (ridge_head.meta): an embedding whose closed-form ridge head classifies new tasks.

    python examples/ridge_head.py --iterations 2000

Tasks (WORKLOADS.md P5): 5-way 5-shot classification in 8-d, 15 query points
per class, class clusters around random centres. Only the first 4
coordinates tell the classes apart; the other 4 are loud noise that a
random embedding passes on to the head. Meta-training the embedding (and
the ridge strength lam) through the head's linear solve learns to look past
it. The figure: query accuracy on held-out tasks with the initial and the
meta-trained embedding (chance is 20%).
"""
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("ridge_head.meta")
WAYS, SHOTS, QUERIES = 5, 5, 15


def few_shot_tasks(rng, n_tasks, dtype="f32"):
    """{'support': {'x': [B, 25, 8], 'y': [B, 25]}, 'query': {'x': [B, 75, 8], 'y': [B, 75]}}."""
    centres = np.zeros((n_tasks, WAYS, 8))
    centres[:, :, :4] = rng.normal(size=(n_tasks, WAYS, 4))        # the informative coordinates
    noise = np.array([0.5] * 4 + [3.0] * 4)                         # per coordinate: signal, then nuisance
    out = {}
    for split, n in (("support", SHOTS), ("query", QUERIES)):
        y = np.tile(np.repeat(np.arange(WAYS), n), (n_tasks, 1))
        x = np.take_along_axis(centres, y[:, :, None], axis=1) + noise * rng.normal(size=(n_tasks, WAYS * n, 8))
        out[split] = {"x": x.astype(dtype.replace("f", "float")), "y": y.astype(np.int64)}
    return out


def accuracy(mod, phi, tasks):
    """Query accuracy of the ridge head fitted on each task's support set (the program's head, in NumPy)."""
    hits = []
    for i in range(len(tasks["support"]["y"])):
        fs = mod.embed(phi, tasks["support"]["x"][i])
        ys = np.eye(WAYS)[tasks["support"]["y"][i]]
        w = fs.T @ np.linalg.solve(fs @ fs.T + phi["lam"] * np.eye(len(fs)), ys)
        hits.append(np.argmax(mod.embed(phi, tasks["query"]["x"][i]) @ w, axis=1) == tasks["query"]["y"][i])
    return float(np.mean(hits))


def main(argv=None):
    ap = flags(__doc__, iterations=2000, meta_batch=4)
    ap.add_argument("--eval-tasks", type=int, default=200)
    args = ap.parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    phi0 = mod.Embedding.init(seed=args.seed)
    phi, log = meta_train(args, lambda p, t: mod.r2d2.value_and_grad(p, t), phi0, Adam(1e-3), few_shot_tasks)
    report(log, "meta-loss (query cross-entropy)", then=f"; learned lam {float(phi['lam']):.3f}")

    held_out = few_shot_tasks(np.random.default_rng([args.seed, 2019]), args.eval_tasks, args.dtype)
    with log_compiles():
        before, after = accuracy(mod, phi0, held_out), accuracy(mod, phi, held_out)
    print(f"held-out query accuracy ({args.eval_tasks} tasks, {WAYS}-way {SHOTS}-shot): "
          f"initial embedding {before:.1%}, meta-trained {after:.1%} (chance {1 / WAYS:.0%})")
    return phi, log


if __name__ == "__main__":
    main()
