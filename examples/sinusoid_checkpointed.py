"""Meta-train sinusoid MAML (sinusoid_checkpointed.meta: K = 100 inner steps, checkpointed every 10).

    python examples/sinusoid_checkpointed.py --iterations 400

The outer loop of sinusoid_maml.py, with 100 inner steps whose residuals are
kept only every 10th step (the others are recomputed in the backward pass).
The inner rate is 0.003, not P1's 0.01: a hundred steps of 0.01 from the
he_normal initialisation overshoot on the larger-amplitude tasks, and the
meta-loss is NaN within a few outer steps.
"""
from pathlib import Path

import metacc
from metacc.runtime.optim import Adam

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("sinusoid_checkpointed.meta")


def main(argv=None):
    args = flags(__doc__, iterations=400, inner_steps=100, alpha=0.003).parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    step = lambda p, t: mod.maml_long.value_and_grad(p, t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    theta, log = meta_train(args, step, mod.Net.init(seed=args.seed), Adam(1e-3))
    report(log, f"meta-loss (query MSE after {args.inner_steps} steps)")
    return theta, log


if __name__ == "__main__":
    main()
