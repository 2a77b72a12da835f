"""Run a fuzzing campaign from the command line.

    python -m tests.fuzz.run --count 20000 --seed 0 --timeout 5 --findings out/fuzz

Prints a summary (JSON) and writes every crash (the program and what happened)
under --findings, one folder per crash class. Exit status 1 when any crash was
found (--known-ok: only for classes outside oracle.FRONT, the front-end classes
of issue 9, all fixed now).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from tests.fuzz.campaign import run_campaign


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300, help="number of programs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index (to run a campaign in batches)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds one stage of a case may take")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--kernel-rate", type=float, default=0.2, help="share of cases whose kernels are built")
    ap.add_argument("--mem-mb", type=int, default=2048, help="address-space limit of a worker (0: none)")
    ap.add_argument("--findings", default="out/fuzz", help="where crashes are written")
    ap.add_argument("--known-ok", action="store_true",
                    help="exit 0 when every crash is in a known front-end class (oracle.FRONT)")
    args = ap.parse_args(argv)
    findings = Path(args.findings)
    last = [time.monotonic()]

    def progress(rep):
        if time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print(f"[fuzz] {rep.count}/{args.count} {rep.outcomes} classes={ {k: len(v) for k, v in rep.classes.items()} }",
                  file=sys.stderr, flush=True)

    # SIGTERM stops the campaign like Ctrl-C: the summary of what ran is still written
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rep = run_campaign(args.count, args.seed, start=args.start, jobs=args.jobs, timeout=args.timeout,
                       kernel_rate=args.kernel_rate, mem_mb=args.mem_mb, findings=findings, progress=progress)
    summary = {"seed": args.seed, "start": args.start, **rep.summary()}
    findings.mkdir(parents=True, exist_ok=True)
    (findings / f"summary-s{args.seed}-{args.start}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    bad = rep.new_classes if args.known_ok else rep.classes
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
