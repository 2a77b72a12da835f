"""Meta-train sinusoid MAML (sinusoid_truncated.meta: only the last T of K inner steps differentiated).

    python examples/sinusoid_truncated.py --iterations 2000

The same outer loop and inner rate (0.003) as sinusoid_maml.py, which says
why; the first K - T inner steps are first-order (@truncate(T)).
"""
from pathlib import Path

import metacc
from metacc.runtime.optim import Adam

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("sinusoid_truncated.meta")


def main(argv=None):
    ap = flags(__doc__, iterations=2000, inner_steps=5, alpha=0.003)
    ap.add_argument("--truncate", type=int, default=2, help="differentiate the last T steps")
    args = ap.parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    step = lambda p, t: mod.truncated_maml.value_and_grad(p, t, alpha=args.alpha, K=args.inner_steps,  # noqa: E731
                                                          T=args.truncate)
    theta, log = meta_train(args, step, mod.Net.init(seed=args.seed), Adam(1e-3))
    report(log, f"meta-loss (query MSE after {args.inner_steps} steps)")
    return theta, log


if __name__ == "__main__":
    main()
