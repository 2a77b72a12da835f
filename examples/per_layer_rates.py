"""Meta-train MAML with one learnable learning rate per parameter tensor (per_layer_rates.meta).

    python examples/per_layer_rates.py --iterations 500

Six scalar rates (one per weight matrix and bias vector) are meta-learned
with the weights; they start at 0.01.
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("per_layer_rates.meta")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = (mod.Net.init(seed=args.seed), mod.Rates.init())
    step = lambda p, t: mod.per_layer.value_and_grad(p[0], p[1], t, K=args.inner_steps)  # noqa: E731
    params, log = train(step, params, Adam(1e-3),
                        lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    print(f"meta-loss: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    print("learned rates: " + ", ".join(f"{k} {float(v):.4f}" for k, v in params[1].items()))
    return params, log


if __name__ == "__main__":
    main()
