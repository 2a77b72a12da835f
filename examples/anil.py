"""Meta-train ANIL (anil.meta): the inner loop adapts only the head, the outer loop trains both.

    python examples/anil.py --iterations 2000

The body and the head are two parameter groups; the meta-gradient reaches
both, the inner gradient only the head. The figure: the query MSE of
held-out 10-shot tasks before adaptation (alpha = 0: no step) and after the
K inner head steps, beside what predicting 0 everywhere scores.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.progress import log_compiles
from metacc.runtime.tasks import SINUSOID, sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("anil.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--inner-steps", type=int, default=5)
    # the head's curvature allows at most ~0.0015 at initialisation (see anil.meta)
    ap.add_argument("--alpha", type=float, default=0.001, help="inner learning rate")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (outer loop)")
    ap.add_argument("--eval-tasks", type=int, default=300)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = (mod.Body.init(seed=args.seed), mod.Head.init(seed=args.seed + 1))
    step = lambda p, t: mod.anil.value_and_grad(p[0], p[1], t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    params, log = train(step, params, Adam(args.lr),
                        lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    print(f"meta-loss: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")

    # held-out tasks from their own generator; one compiled call scores them all
    held_out = SINUSOID.sample(np.random.default_rng([args.seed, 2020]), args.eval_tasks, k=10, q=100,
                               dtype=args.dtype)
    with log_compiles():
        before = float(mod.anil(*params, held_out, alpha=0.0, K=args.inner_steps))
        after = float(mod.anil(*params, held_out, alpha=args.alpha, K=args.inner_steps))
    zero = float(np.mean(np.asarray(held_out["query"]["y"], np.float64) ** 2))
    print(f"held-out query MSE ({args.eval_tasks} tasks, 10 shots): before adaptation {before:.3f}, "
          f"after {args.inner_steps} head steps {after:.3f} (predicting 0: {zero:.3f})")
    return params, log


if __name__ == "__main__":
    main()
