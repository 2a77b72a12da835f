"""Meta-train the learned optimizer of learned_optimizer.meta (P6) on linear-regression tasks.

    python examples/learned_optimizer.py --iterations 300

Only phi (the update rule's MLP) is meta-learned: the optimizee's starting
weights w0 are fixed at zero, so the gradient is taken with wrt=("phi",).
The meta-loss is the sum of the optimizee's losses over its T = 10 steps.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import linear_regression_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("learned_optimizer.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--meta-batch", type=int, default=16)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    phi = mod.Opt.init(seed=args.seed)
    w0 = mod.Linear.init()
    step = lambda p, t: mod.learned_optimizer.value_and_grad(p, t, w0, wrt=("phi",))  # noqa: E731
    phi, log = train(step, phi, Adam(1e-2),
                     lambda: linear_regression_tasks(rng, args.meta_batch, n=20, d=10, dtype=args.dtype),
                     args.iterations)
    print(f"sum of optimizee losses over 10 steps: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    return phi, log


if __name__ == "__main__":
    main()
