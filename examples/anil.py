"""Meta-train ANIL (anil.meta): the inner loop adapts only the head, the outer loop trains both.

    python examples/anil.py --iterations 500

The body and the head are two parameter groups; the meta-gradient reaches
both, the inner gradient only the head.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("anil.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.01, help="inner learning rate")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = (mod.Body.init(seed=args.seed), mod.Head.init(seed=args.seed + 1))
    step = lambda p, t: mod.anil.value_and_grad(p[0], p[1], t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    params, log = train(step, params, Adam(1e-3),
                        lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    print(f"meta-loss: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    return params, log


if __name__ == "__main__":
    main()
