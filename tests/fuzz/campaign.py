"""A fuzzing campaign: generate cases from a seed, run them in worker processes
with a time bound, classify and record the crashes.

Case i of seed s is a function of (s, i) only, so any finding can be
regenerated (`case(s, i)`) and a campaign split into batches (`start`).
"""
from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import grammar_gen, mutate
from tests.fuzz.oracle import FRONT, classify

ROOT = Path(__file__).resolve().parents[2]
GENERATORS = ("grammar", "token", "semantic")


@dataclass
class Case:
    seed: int
    index: int
    generator: str
    text: str
    kernels: bool
    detail: str = ""
    selftest: str = ""           # 'hang' or 'die': makes the worker misbehave (tests of the runner)

    @property
    def id(self) -> str:
        return f"s{self.seed}-{self.index}"


def case(seed: int, index: int, kernel_rate: float = 0.2) -> Case:
    try:
        return _case(seed, index, kernel_rate)
    except (IndexError, ValueError, KeyError, RecursionError) as err:
        # a bug of the generator, not of metacc: still a case (of an example), and said so
        rng = random.Random(f"metacc-fuzz-fallback:{seed}:{index}")
        return Case(seed, index, GENERATORS[index % 3], mutate.token_mutant(rng), False,
                    f"generator failed: {type(err).__name__}: {err}")


def _case(seed: int, index: int, kernel_rate: float) -> Case:
    rng = random.Random(f"metacc-fuzz:{seed}:{index}")
    gen = GENERATORS[index % 3]
    detail = ""
    if gen == "grammar":
        text = grammar_gen.generate(rng)
    elif gen == "token":
        base = grammar_gen.ProgramGen(rng).program() if rng.random() < 0.3 else None
        text = mutate.token_mutant(rng, base)
    else:
        if rng.random() < 0.5:
            base = rng.choice(mutate.SOURCES)
        else:
            base = grammar_gen.ProgramGen(rng, noise=0.0, max_depth=rng.choice([2, 3])).program()
        text, applied = mutate.semantic_mutant(rng, base)
        detail = ",".join(applied)
    return Case(seed, index, gen, text, rng.random() < kernel_rate, detail)


class Worker:
    def __init__(self, timeout: float, mem_mb: int, logdir: Path):
        fd, self.dump_path = tempfile.mkstemp(prefix="fuzzdump-", suffix=".txt", dir=logdir)
        os.close(fd)
        self.timeout = timeout
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.log = open(logdir / f"worker-{os.getpid()}-{id(self)}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.worker", self.dump_path, str(timeout),
                                      str(mem_mb)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.buf = b""
        self.eof = False
        self.case: Case | None = None
        self.last = time.monotonic()
        self.started = 0.0
        self.stage = ""
        self.done = 0
        msg = self._read(60.0 + timeout)           # imports can be slow on a loaded machine
        if not msg or not msg.get("ready"):
            raise RuntimeError(f"fuzz worker did not start (log: {self.log.name})")

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def _read(self, wait: float):
        deadline = time.monotonic() + wait
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def submit(self, c: Case) -> None:
        self.case, self.stage = c, ""
        self.started = self.last = time.monotonic()
        req = {"text": c.text, "kernels": c.kernels, **({"selftest": c.selftest} if c.selftest else {})}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()

    def poll(self):
        """None while the case runs; else its result dict (a hang or a dead worker included)."""
        self._fill()
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            msg = json.loads(line)
            if "beat" in msg:
                self.stage, self.last = msg["beat"], time.monotonic()
            elif "done" in msg:
                self.done += 1
                res = msg["done"]
                res["seconds"] = round(time.monotonic() - self.started, 3)
                return res
        if self.eof:
            return {"outcome": "crash", "exc": "worker died", "stage": self.stage,
                    "message": f"exit status {self.proc.wait()}", "dump": self._dump()}
        if time.monotonic() - self.last > self.timeout + 2.0:
            time.sleep(0.2)                           # let faulthandler finish writing
            self.kill()
            return {"outcome": "crash", "exc": "hang", "stage": self.stage,
                    "message": f"no progress for {self.timeout:g} s in stage {self.stage!r}", "dump": self._dump()}
        return None

    def _fill(self) -> None:
        while not self.eof:
            r, _, _ = select.select([self.proc.stdout], [], [], 0)
            if not r:
                return
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.eof = True
                return
            self.buf += chunk

    def _dump(self) -> str:
        try:
            return Path(self.dump_path).read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.log.close()
        Path(self.dump_path).unlink(missing_ok=True)
        if Path(self.log.name).stat().st_size == 0:
            Path(self.log.name).unlink()              # keep only logs with something in them


@dataclass
class Report:
    count: int = 0
    outcomes: dict = field(default_factory=dict)        # ok / error / crash
    by_generator: dict = field(default_factory=dict)    # generator -> outcome -> n
    classes: dict = field(default_factory=dict)         # class -> [case ids]
    kernel_cases: int = 0
    kernels_built: int = 0
    seconds: float = 0.0
    slowest: list = field(default_factory=list)         # (seconds, id)
    crashes: list = field(default_factory=list)         # (class, Case, result)
    interrupted: bool = False

    def add(self, c: Case, res: dict) -> None:
        self.count += 1
        out = res["outcome"]
        self.outcomes[out] = self.outcomes.get(out, 0) + 1
        g = self.by_generator.setdefault(c.generator, {})
        g[out] = g.get(out, 0) + 1
        if c.kernels and out == "ok" and res.get("kernels_built"):
            self.kernel_cases += 1          # accepted, and every kernel kind built
        self.kernels_built += res.get("kernels_built", 0)
        if res.get("seconds") is not None:
            self.slowest = sorted(self.slowest + [(res["seconds"], c.id)], reverse=True)[:5]
        if out == "crash":
            cls = classify(res, c.text)
            self.classes.setdefault(cls, []).append(c.id)
            self.crashes.append((cls, c, res))

    @property
    def new_classes(self) -> dict:
        return {k: v for k, v in self.classes.items() if k not in FRONT}

    def summary(self) -> dict:
        return {"count": self.count, "interrupted": self.interrupted, "outcomes": self.outcomes, "by_generator": self.by_generator,
                "programs_with_all_kernels_built": self.kernel_cases, "kernels_built": self.kernels_built,
                "seconds": round(self.seconds, 1), "slowest": [f"{s:.2f}s {i}" for s, i in self.slowest],
                "classes": {k: {"n": len(v), "cases": v[:20], "owner": "front" if k in FRONT else "fuzz"}
                            for k, v in sorted(self.classes.items())}}


def record(findings: Path, cls: str, c: Case, res: dict) -> Path:
    d = findings / cls.replace(":", "_").replace("/", "_").replace("@", "_at_")[:120]
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{c.id}.meta").write_text(c.text, encoding="utf-8")
    meta = {"class": cls, "case": c.id, "generator": c.generator, "detail": c.detail, "kernels": c.kernels,
            **{k: v for k, v in res.items()}}
    (d / f"{c.id}.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return d


def run_campaign(count: int, seed: int = 0, *, start: int = 0, jobs: int = 1, timeout: float = 5.0,
                 kernel_rate: float = 0.2, mem_mb: int = 2048, findings: Path | None = None,
                 recycle: int = 400, progress=None, cases=None) -> Report:
    """Run `count` generated cases (or the given `cases`, a list of Case)."""
    report = Report()
    logdir = Path(findings) if findings else Path(tempfile.mkdtemp(prefix="metacc-fuzz-"))
    logdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    todo = iter(cases if cases is not None else (case(seed, i, kernel_rate) for i in range(start, start + count)))
    workers: list[Worker] = []
    try:
        return _loop(report, workers, todo, jobs, timeout, mem_mb, logdir, findings, recycle, progress, t0)
    except KeyboardInterrupt:
        report.interrupted = True           # SIGINT/SIGTERM: stop, and report what ran
        report.seconds = time.monotonic() - t0
        return report


def _loop(report, workers, todo, jobs, timeout, mem_mb, logdir, findings, recycle, progress, t0) -> Report:
    try:
        workers += [Worker(timeout, mem_mb, logdir) for _ in range(max(1, jobs))]
        idle = list(workers)
        busy: list[Worker] = []
        exhausted = False
        while True:
            while idle and not exhausted:
                c = next(todo, None)
                if c is None:
                    exhausted = True
                    break
                w = idle.pop()
                w.submit(c)
                busy.append(w)
            if not busy:
                break
            select.select(busy, [], [], 0.5)
            for w in list(busy):
                res = w.poll()
                if res is None:
                    continue
                busy.remove(w)
                c = w.case
                report.add(c, res)
                if res["outcome"] == "crash" and findings is not None:
                    record(Path(findings), report.crashes[-1][0], c, res)
                if w.proc.poll() is not None or w.done >= recycle:
                    w.close()
                    workers.remove(w)
                    w = Worker(timeout, mem_mb, logdir)
                    workers.append(w)
                idle.append(w)
                if progress:
                    progress(report)
    finally:
        for w in workers:
            w.close()
    report.seconds = time.monotonic() - t0
    return report
