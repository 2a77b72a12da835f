"""Meta-train sinusoid MAML (sinusoid_fomaml.meta: first-order MAML, the Hessian term dropped).

    python examples/sinusoid_fomaml.py --iterations 2000

Every iteration samples 25 fresh tasks and takes one Adam step on the mean
meta-gradient, which one compiled call computes for the whole batch.

The inner rate is 0.003, not P1's 0.01: from the he_normal initialisation
five steps of 0.01 overshoot, and with them full MAML's meta-loss stayed at
~5.3 for 3,000 iterations, worse than predicting 0 everywhere (~4.15);
with 0.003 it falls to ~0.4 in 2,000.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("sinusoid_fomaml.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.003, help="inner learning rate (see above)")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    theta = mod.Net.init(seed=args.seed)
    step = lambda p, t: mod.fomaml.value_and_grad(p, t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    theta, log = train(step, theta, Adam(1e-3),
                       lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    print(f"meta-loss (query MSE after {args.inner_steps} steps): first 10 iterations "
          f"{np.mean(log.losses[:10]):.3f}, last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    return theta, log


if __name__ == "__main__":
    main()
