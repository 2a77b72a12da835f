"""Meta-train MAML with one learnable learning rate per parameter tensor (per_layer_rates.meta).

    python examples/per_layer_rates.py --iterations 2000

Six scalar rates (one per weight matrix and bias vector) are meta-learned
with the weights; they start at 0.003. Each group gets its own Adam: the
weights step by 1e-3, the rates by 1e-5. One Adam step of 1e-3 moves a rate
of 0.003 by a third, and a few such steps take the inner loop past the
step size it can take (the meta-loss went to inf within 1,200 iterations).
"""
import argparse
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import sinusoid_tasks
from metacc.runtime.train import train

PROGRAM = Path(__file__).with_name("per_layer_rates.meta")


class PerGroup:
    """One optimizer per parameter group: (Adam(1e-3), Adam(1e-5)) for (theta, rates)."""

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    def init(self, params):
        return tuple(o.init(p) for o, p in zip(self.optimizers, params))

    def update(self, grads, state, params):
        new = [o.update(g, s, p) for o, g, s, p in zip(self.optimizers, grads, state, params)]
        return tuple(p for p, _ in new), tuple(s for _, s in new)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--meta-batch", type=int, default=25)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = (mod.Net.init(seed=args.seed), mod.Rates.init())
    step = lambda p, t: mod.per_layer.value_and_grad(p[0], p[1], t, K=args.inner_steps)  # noqa: E731
    params, log = train(step, params, PerGroup(Adam(1e-3), Adam(1e-5)),
                        lambda: sinusoid_tasks(rng, args.meta_batch, k=10, dtype=args.dtype), args.iterations)
    print(f"meta-loss: first 10 iterations {np.mean(log.losses[:10]):.3f}, "
          f"last 10 {np.mean(log.losses[-10:]):.3f} ({log.seconds:.1f} s)")
    print("learned rates: " + ", ".join(f"{k} {float(v):.4f}" for k, v in params[1].items()))
    return params, log


if __name__ == "__main__":
    main()
