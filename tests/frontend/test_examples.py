"""Every example program parses, checks, verifies and evaluates."""
from __future__ import annotations

import numpy as np
import pytest

from metacc.frontend import load
from metacc.interp import evaluate
from metacc.ir.verify import verify
from tests.frontend.helpers import EXAMPLES, random_inputs, subprograms

NAMES = [p.name for p in EXAMPLES]


def test_the_examples_are_all_there():
    assert {"sinusoid_maml.meta", "sinusoid_fomaml.meta", "sinusoid_truncated.meta",
            "sinusoid_checkpointed.meta", "meta_sgd.meta", "learned_optimizer.meta", "ridge_head.meta",
            "imaml.meta", "straight_through.meta"} <= set(NAMES)


@pytest.mark.parametrize("path", EXAMPLES, ids=NAMES)
def test_example_checks_and_its_ir_verifies(path):
    program = load(path)
    assert any(f.kind == "meta" for f in program.functions.values())
    for f in program.functions.values():
        verify(f.ir)
        assert [v.name for v in f.ir.ins] == [f"{a.name}.{leaf.path}" if leaf.path else a.name
                                              for a in f.args for leaf in a.leaves]
        assert all(e.span is not None for e in subprograms(f.ir)), f.name


def _has_control(fn) -> bool:
    return any(e.prim in ("grad", "argmin") for e in subprograms(fn))


@pytest.mark.parametrize("path", EXAMPLES, ids=NAMES)
def test_fn_level_functions_evaluate_to_finite_values(path):
    program = load(path, float_dtype="f64")
    rng = np.random.default_rng(0)
    plain = [f for f in program.functions.values() if not _has_control(f.ir)]
    for f in plain:
        outs = evaluate(f.ir, random_inputs(f.ir, rng))
        assert len(outs) == len(f.ir.outs)
        for o, t in zip(outs, f.ir.out_types):
            assert np.all(np.isfinite(o)), f.name
            assert o.ndim == t.rank


@pytest.mark.parametrize("path", EXAMPLES, ids=NAMES)
def test_meta_functions_evaluate_through_ad_expansion(path):
    pytest.importorskip("metacc.ad.expand")
    program = load(path, float_dtype="f64", constants={"K": 3} if "checkpointed" in path.name else None)
    rng = np.random.default_rng(1)
    for f in program.functions.values():
        if f.kind != "meta":
            continue
        args = random_inputs(f.ir, rng, scale=0.3)
        # hyperparameters (rates, Adam's betas) take their declared defaults, not noise
        slices = f.leaf_slices()
        for a in f.args:
            if a.default is not None and a.kind != "static":
                args[slices[a.name].start] = np.asarray(a.default, dtype=args[slices[a.name].start].dtype)
        if path.name == "ridge_head.meta":
            # labels must index the 5 ways
            args = [a % 5 if a.dtype == np.int64 else a for a in args]
        (loss,) = evaluate(f.ir, args)
        assert loss.shape == () and np.isfinite(loss), f.name
