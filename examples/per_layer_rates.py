"""Meta-train MAML with one learnable learning rate per parameter tensor (per_layer_rates.meta).

    python examples/per_layer_rates.py --iterations 2000

Six scalar rates (one per weight matrix and bias vector) are meta-learned
with the weights; they start at 0.003. Each group gets its own Adam: the
weights step by 1e-3, the rates by 1e-5. One Adam step of 1e-3 moves a rate
of 0.003 by a third, and a few such steps take the inner loop past the
step size it can take (the meta-loss went to inf within 1,200 iterations).
"""
from pathlib import Path

import metacc
from metacc.runtime.optim import Adam

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

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
    args = flags(__doc__, iterations=2000, inner_steps=5).parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    params = (mod.Net.init(seed=args.seed), mod.Rates.init())
    step = lambda p, t: mod.per_layer.value_and_grad(p[0], p[1], t, K=args.inner_steps)  # noqa: E731
    params, log = meta_train(args, step, params, PerGroup(Adam(1e-3), Adam(1e-5)))
    report(log)
    print("learned rates: " + ", ".join(f"{k} {float(v):.4f}" for k, v in params[1].items()))
    return params, log


if __name__ == "__main__":
    main()
