"""Regenerate the figures the README and docs/ publish, and check them against the text.

    python docs/regenerate.py                 # README walkthrough + every example driver (a few minutes)
    python docs/regenerate.py walkthrough     # only some: walkthrough, drivers, or driver names
    python docs/regenerate.py --demo          # also the sinusoid demo table (docs/demo.md), ~1 min more
    python docs/regenerate.py demo            # only the demo
    python docs/regenerate.py --check         # exit 1 when a published figure differs from this run

Each figure is produced exactly as the README says to produce it: the
walkthrough's .meta and Python blocks are taken from README.md and run as
written (2,000 iterations, seed 0), the drivers run with their defaults
(python examples/NAME.py), the demo with its defaults. Everything runs in
float32 with fixed seeds, and a run gives the same digits on the same build
(whatever the thread count: tasks are combined in task order). Another build
of the kernels (another summation order, another CPU's vector width) rounds
differently, and thousands of Adam steps on a sharp meta-loss carry that
difference into the second digit: the README's walkthrough figures were
0.87 / 0.0067 / 0.97 on one build, 0.853 / 0.00736 / 0.927 on another. So
--check passes a figure equal to the published digits, or within RTOL of
them (said as "drifted"), and fails beyond. Writes out/figures.json.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
DRIVERS = ["sinusoid_maml", "sinusoid_fomaml", "sinusoid_truncated", "sinusoid_checkpointed", "meta_sgd",
           "per_layer_rates", "anil", "inner_adam", "learned_optimizer", "imaml", "ridge_head", "straight_through",
           "data_selection", "conv4_maml"]
# a figure: a decimal or a percentage; counts (10 iterations, 300 tasks) and timings are not figures
FIGURE = re.compile(r"-?\d+\.\d+%?|-?\d+%")
TIMING = re.compile(r"\(\d+(?:\.\d+)? s\)")
RTOL = 0.15             # relative, for values; percentages: PERCENT_ATOL points
PERCENT_ATOL = 3.0


def _blocks(text: str):
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)


def walkthrough() -> dict:
    """The README's 'Write your own inner-loop rule' section, run as written."""
    from metacc.gradcheck import gradcheck
    text = README.read_text()
    meta = next(body for _, body in _blocks(text) if "meta clipped(" in body)
    code = next(body for lang, body in _blocks(text) if lang == "python" and "clipped_sgd.meta" in body)
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d):
        Path("clipped_sgd.meta").write_text(meta)
        scope: dict = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "README walkthrough", "exec"), scope)
        checks = gradcheck("clipped_sgd.meta", "clipped")
    log, rule = scope["log"], scope["params"][1]
    return {"first_50": float(np.mean(log.losses[:50])), "last_50": float(np.mean(log.losses[-50:])),
            "lr": float(rule["lr"]), "clip": float(rule["clip"]),
            "gradcheck_worst": max(c.rel for c in checks), "seconds": round(log.seconds, 1)}


def figures(text: str) -> list[str]:
    return FIGURE.findall(TIMING.sub("", text))


def driver_figures(lines: list[str]) -> list[str]:
    """The figures a driver printed: its meta-loss line and its held-out line."""
    return figures(" ".join(ln for ln in lines if "first 10 iterations" in ln or ln.startswith("held-out")))


def compare(published: list[str], measured: list[str]) -> tuple[str, str]:
    """('same' | 'drifted' | 'differs', detail) for two lists of figures in the same order."""
    if published == measured:
        return "same", ""
    if len(published) != len(measured):
        return "differs", f"{len(published)} figures published, {len(measured)} measured"
    worst = "same"
    for a, b in zip(published, measured):
        if a == b:
            continue
        if a.endswith("%") != b.endswith("%"):
            return "differs", f"{a} vs {b}"
        x, y = float(a.rstrip("%")), float(b.rstrip("%"))
        ok = abs(x - y) <= PERCENT_ATOL if a.endswith("%") else abs(x - y) <= RTOL * max(abs(x), abs(y))
        if not ok:
            return "differs", f"{a} published, {b} measured"
        worst = "drifted"
    return worst, " ".join(f"{a}->{b}" for a, b in zip(published, measured) if a != b)


def walkthrough_sentence(w: dict) -> str:
    """The README's sentence for these figures (what --check looks for)."""
    return (f"Measured: the meta-loss fell from {w['first_50']:.2f} (mean of the first 50 iterations) "
            f"to {w['last_50']:.2f} (last 50) in 2,000 iterations, and the rule learned "
            f"lr = {w['lr']:.4f} and clip = {w['clip']:.2f}")


def run_driver(name: str, argv=(), returned: list | None = None) -> list[str]:
    """A driver's main() with its defaults (or argv); its printed lines (what main returned
    is appended to `returned` when given)."""
    if str(EXAMPLES) not in sys.path:   # as `python examples/NAME.py` does: they import examples/driver.py
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = mod.main(list(argv))
    if returned is not None:
        returned.append(result)
    return out.getvalue().splitlines()


def readme_driver_figures() -> dict[str, str]:
    """name -> the 'measured' cell of the README's table of example drivers."""
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| `(\w+)\.meta` \|.*\| (.*) \|$", line)
        if m and m.group(1) in DRIVERS:
            rows[m.group(1)] = m.group(2)
    return rows


def note(problems: list, what: str, verdict: str, detail: str, text: str) -> None:
    if verdict == "drifted":
        print(f"  {what}: drifted within the tolerance ({detail})")
    elif verdict == "differs":
        problems.append(f"{what}: {detail}\n    published: {text}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="walkthrough, drivers, demo, or driver names "
                    "(default: walkthrough and drivers)")
    ap.add_argument("--demo", action="store_true", help="also the demo's table (10,000 iterations per model)")
    ap.add_argument("--check", action="store_true", help="fail when a published figure differs")
    ap.add_argument("--out", type=Path, default=Path("out") / "figures.json")
    args = ap.parse_args(argv)
    wanted = set(args.only) or {"walkthrough", "drivers"}
    if unknown := wanted - {"walkthrough", "drivers", "demo", *DRIVERS}:
        ap.error(f"no such figure: {', '.join(sorted(unknown))} (walkthrough, drivers, demo, {', '.join(DRIVERS)})")
    if "demo" in wanted:
        args.demo = True
    if "drivers" in wanted:
        wanted |= set(DRIVERS)
    from metacc.runtime.progress import log_compiles
    results: dict = {}
    problems: list[str] = []
    with log_compiles():
        if "walkthrough" in wanted:
            t = time.perf_counter()
            w = results["walkthrough"] = walkthrough()
            sentence = walkthrough_sentence(w)
            print(f"README walkthrough ({time.perf_counter() - t:.0f} s): {sentence}; "
                  f"gradcheck worst relative error {w['gradcheck_worst']:.0e}")
            text = " ".join(README.read_text().split())
            m = re.search(r"Measured: the meta-loss fell from .*? and clip = [\d.]+", text)
            verdict, detail = compare(figures(m.group(0)) if m else [], figures(sentence))
            note(problems, "README walkthrough", verdict, detail, sentence)
        published = readme_driver_figures()
        for name in DRIVERS:
            if name not in wanted:
                continue
            t = time.perf_counter()
            try:
                lines = run_driver(name)
            except Exception as err:  # noqa: BLE001 - report it and go on with the others
                problems.append(f"{name}: failed with its defaults: {type(err).__name__}: {err}")
                continue
            results[name] = lines
            print(f"{name} ({time.perf_counter() - t:.0f} s):\n    " + "\n    ".join(lines))
            if name not in published:
                problems.append(f"{name}: no figure in the README's table of examples")
            else:
                verdict, detail = compare(figures(published[name]), driver_figures(lines))
                note(problems, name, verdict, detail, published[name])
        if args.demo:
            t = time.perf_counter()
            table: list = []
            with tempfile.TemporaryDirectory() as d:
                lines = run_driver("sinusoid_demo", ["--out", d, "--no-progress"], table)
            results["sinusoid_demo"] = {"printed": lines, "results": table[0]}
            print(f"sinusoid_demo ({time.perf_counter() - t:.0f} s):\n    " + "\n    ".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    for p in problems:
        print(f"differs: {p}", file=sys.stderr)
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
