"""Meta-train Meta-SGD (meta_sgd.meta): the weights and a learning rate per weight, together.

    python examples/meta_sgd.py --iterations 500

The parameters are two groups, (theta, alpha); value_and_grad differentiates
both (every params argument by default) and returns a pair of gradient trees,
which Adam updates as one tuple.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("meta_sgd.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = (mod.Net.init(seed=args.seed), mod.Rates.init())
    params, log = train(lambda p, t: mod.meta_sgd.value_and_grad(p[0], p[1], t), params, Adam(1e-3),
                        lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    rates = params[1]
    print(f"meta-loss: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    print("learned rates, mean per tensor: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in rates.items()))
    return params, log


if __name__ == "__main__":
    main()
