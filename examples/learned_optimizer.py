"""Meta-train the learned optimizer of learned_optimizer.meta (P6) on linear-regression tasks.

    python examples/learned_optimizer.py --iterations 300

Only phi (the update rule's MLP) is meta-learned: the optimizee's starting
weights w0 are fixed at zero, so the gradient is taken with wrt=("phi",).
The meta-loss is the sum of the optimizee's losses over its T = 10 steps.
"""
from pathlib import Path

import metacc
from metacc.runtime.optim import Adam
from metacc.runtime.tasks import linear_regression_tasks

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("learned_optimizer.meta")


def regression_tasks(rng, n_tasks, dtype):
    """Linear-regression tasks of 20 points in 10-d."""
    return linear_regression_tasks(rng, n_tasks, n=20, d=10, dtype=dtype)


def main(argv=None):
    args = flags(__doc__, iterations=300, meta_batch=16).parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    phi = mod.Opt.init(seed=args.seed)
    w0 = mod.Linear.init()
    step = lambda p, t: mod.learned_optimizer.value_and_grad(p, t, w0, wrt=("phi",))  # noqa: E731
    phi, log = meta_train(args, step, phi, Adam(1e-2), regression_tasks)
    report(log, "sum of optimizee losses over 10 steps")
    return phi, log


if __name__ == "__main__":
    main()
