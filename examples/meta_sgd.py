"""Meta-train Meta-SGD (meta_sgd.meta): the weights and a learning rate per weight, together.

    python examples/meta_sgd.py --iterations 500

The parameters are two groups, (theta, alpha); value_and_grad differentiates
both (every params argument by default) and returns a pair of gradient trees,
which Adam updates as one tuple.
"""
from pathlib import Path

import numpy as np

import metacc
from metacc.runtime.optim import Adam

from driver import flags, meta_train, report     # examples/driver.py: what every driver shares

PROGRAM = Path(__file__).with_name("meta_sgd.meta")


def main(argv=None):
    args = flags(__doc__, iterations=500).parse_args(argv)
    mod = metacc.compile(PROGRAM, dtype=args.dtype)
    params = (mod.Net.init(seed=args.seed), mod.Rates.init())
    params, log = meta_train(args, lambda p, t: mod.meta_sgd.value_and_grad(p[0], p[1], t), params, Adam(1e-3))
    report(log)
    print("learned rates, mean per tensor: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in params[1].items()))
    return params, log


if __name__ == "__main__":
    main()
