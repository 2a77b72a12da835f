"""Tiny versions of the workloads for the CUDA simulator, and the interpreter oracle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metacc.interp import evaluate
from metacc.pipeline import kernel_ir

ROOT = Path(__file__).resolve().parents[2]


def need_simulator():
    """numba.cuda on the simulator, or skip with the reason."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[cuda]')")
    import numba
    from numba import cuda
    if not numba.config.ENABLE_CUDASIM:
        pytest.skip("numba.cuda was imported before NUMBA_ENABLE_CUDASIM=1 could be set")
    return cuda


def p1_text(width: int = 4, steps: int = 2) -> str:
    """P1 (examples/sinusoid_maml.meta) with hidden width `width` and K = `steps`."""
    text = (ROOT / "examples" / "sinusoid_maml.meta").read_text()
    return text.replace("40", str(width)).replace("K: int = 5", f"K: int = {steps}")


def sinusoid_batch(rng, tasks: int, k: int, q: int) -> dict:
    return {"support": {"x": rng.uniform(-5, 5, (tasks, k, 1)), "y": rng.normal(size=(tasks, k, 1))},
            "query": {"x": rng.uniform(-5, 5, (tasks, q, 1)), "y": rng.normal(size=(tasks, q, 1))}}


def leaves(tree, like=None) -> list:
    """A params or task tree's arrays in the program's leaf order: the order of the
    keys of `like` (a tree as init or the caller built it), else of tree itself."""
    if isinstance(tree, dict):
        keys = like if like is not None else tree
        return [x for k in keys for x in leaves(tree[k], like[k] if like is not None else None)]
    return [tree]


def interp_mean(fn_ir, kind: str, wrt, shared_before: list, per_task: list, shared_after: list, tasks: int):
    """The kernel IR of `kind` run by the reference interpreter on each task, averaged
    over tasks (what a meta function's batched kernel returns)."""
    ir = kernel_ir(fn_ir, kind, wrt)
    outs = [evaluate(ir, shared_before + [a[b] for a in per_task] + shared_after) for b in range(tasks)]
    return [np.mean([np.asarray(o[j]) for o in outs], axis=0) for j in range(len(outs[0]))]
