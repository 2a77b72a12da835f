"""Meta-train sinusoid MAML (sinusoid_fomaml.meta: first-order MAML, the Hessian term dropped).

    python examples/sinusoid_fomaml.py --iterations 2000

The same outer loop and inner rate (0.003) as sinusoid_maml.py, which says
why; only the meta-gradient differs: each inner gradient is a constant, so
the Jacobian of an inner step is I instead of I - alpha H.
"""
from pathlib import Path

import metacc
from metacc.runtime.optim import Adam

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("sinusoid_fomaml.meta")


def main(argv=None):
    args = flags(__doc__, iterations=2000, inner_steps=5, alpha=0.003).parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    step = lambda p, t: mod.fomaml.value_and_grad(p, t, alpha=args.alpha, K=args.inner_steps)  # noqa: E731
    theta, log = meta_train(args, step, mod.Net.init(seed=args.seed), Adam(1e-3))
    report(log, f"meta-loss (query MSE after {args.inner_steps} steps)")
    return theta, log


if __name__ == "__main__":
    main()
