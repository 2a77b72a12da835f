"""The worker process: reads cases (JSON lines) on stdin, answers on stdout.

    python -m tests.fuzz.worker DUMPFILE TIMEOUT MEM_MB

Before each stage it sends a heartbeat and re-arms faulthandler to dump every
thread's Python stack into DUMPFILE after TIMEOUT seconds, so that when the
runner kills a hung worker it can still say where it hung (a hang inside C
code, such as Python's big-integer power, never returns to the interpreter, so
no in-process alarm could report it). MEM_MB bounds the address space, so a
memory blow-up is a MemoryError, not a swapping machine.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import warnings


def main() -> None:
    dump_path, timeout, mem_mb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                        # anything metacc prints goes to the log, not the protocol
    if mem_mb > 0:
        import resource
        limit = mem_mb * 2 ** 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    from tests.fuzz.oracle import evaluate
    import metacc.cli, metacc.kinds, metacc.pipeline, metacc.frontend.parse  # noqa: F401,E401 - warm imports
    metacc.frontend.parse.parser()
    dump = open(dump_path, "w")
    proto.write(json.dumps({"ready": True}) + "\n")

    def beat(stage: str) -> None:
        faulthandler.dump_traceback_later(timeout, repeat=False, file=dump)
        proto.write(json.dumps({"beat": stage}) + "\n")

    for line in sys.stdin:
        req = json.loads(line)
        dump.seek(0)
        dump.truncate()
        if req.get("selftest"):              # the runner's own tests: a hang and a crash it must survive
            beat("selftest")
            if req["selftest"] == "hang":
                time.sleep(10 ** 6)
            os._exit(3)
        result = evaluate(req["text"], req["kernels"], beat)
        faulthandler.cancel_dump_traceback_later()
        proto.write(json.dumps({"done": result}) + "\n")


if __name__ == "__main__":
    main()
