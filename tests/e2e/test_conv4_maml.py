"""Conv4 MAML (examples/conv4_maml.meta) at a tiny size, float64: derivatives from outside.

The example compiled with 3 filters and 16x16 images (16 -> 8 -> 4 -> 2 -> 1, so all four
blocks, batch norm, ReLU, max-pool and the flatten keep their structure), 2 tasks of 5
support and 5 query images, K = 2 inner steps of alpha = 0.4 (the example's):

- the compiled full second-order meta-gradient against central differences of the
  meta-loss and against the reference interpreter (rtol 1e-10);
- Finn et al.'s convention (batch norm not adapted) against central differences;
- the HVP symmetric (u.Hv = v.Hu) and equal to central differences of the meta-gradient;
- the first-order meta-gradient against central differences of the query loss at the
  adapted weights (the loss it is the exact gradient of), the adapted weights computed
  step by step from `ce`'s gradient, itself checked against differences of `ce`;
- `accuracy` against NumPy's argmax of the logits at the adapted weights.

The finite differences evaluate the interpreter (metacc.interp), never a derivative.
The derivative kernels are checked on their IR through the interpreter and, compiled,
against it (test_compiled_kernels_equal_the_interpreter): with the loop nests outlined
(metacc/backend/outline.py) a Conv4 kernel builds in seconds, not minutes.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pytest

import metacc
from tests.e2e.compiled import EPS, EXAMPLES, check_gradient, dot, moved, random_like
from tests.e2e.test_examples_vs_interpreter import _bound, _trees, _wrt_args, check_kind, reference

FILTERS, HW, N_TASKS, K, ALPHA = 3, 16, 2, 2, 0.4
# the example's literal sizes -> tiny ones, and K = 2 as every function's default (the
# interpreter comparison runs the kernels of the compiled constants)
SIZES = {r"\b64\b": str(FILTERS), r"\b28, 28\b": f"{HW}, {HW}", r"\bK: int = 1\b": f"K: int = {K}"}


@lru_cache(maxsize=None)
def tiny():
    src = (EXAMPLES / "conv4_maml.meta").read_text()
    for big, small in SIZES.items():
        assert re.search(big, src), f"conv4_maml.meta no longer has {big!r}: update SIZES"
        src = re.sub(big, small, src)
    return metacc.compile(src, dtype="f64")


def _groups(mod, seed: int = 0) -> tuple[dict, dict]:
    """The initialisers' values, batch norm's moved off 1 and 0 (exact ones and zeros would
    hide a field read from the wrong place)."""
    rng = np.random.default_rng(seed)
    norm = {k: v + 0.2 * rng.normal(size=v.shape) for k, v in mod.Norm.init(seed=1).items()}
    return mod.Conv.init(seed=0), norm


def _tasks(seed: int = 1, n_tasks: int = N_TASKS) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(5), (n_tasks, 1)).astype(np.int64)
    return {split: {"x": rng.normal(size=(n_tasks, 5, HW, HW, 1)), "y": labels} for split in ("support", "query")}


def _one(tasks: dict, i: int) -> dict:
    return {s: {k: v[i] for k, v in d.items()} for s, d in tasks.items()}


# ---- the interpreter on a kernel's IR (a meta function: the mean over tasks) -------------

def interp(handle, kind: str, args: tuple, extra: tuple = ()) -> list:
    wrt_args, _ = _wrt_args(handle, None)
    return reference(handle, kind, wrt_args, _bound(handle, args, {}), _trees(wrt_args, extra) if extra else [])


def interp_value(handle, args: tuple) -> float:
    return float(interp(handle, "forward", args)[0])


def as_groups(handle, leaves: list) -> tuple:
    """Flat derivative leaves back into one dict per differentiated group."""
    wrt_args, _ = _wrt_args(handle, None)
    out, it = [], iter(leaves)
    for a in wrt_args:
        out.append({f.path: next(it) for f in a.leaves})
    assert next(it, None) is None
    return tuple(out)


def interp_grad(handle, args: tuple) -> tuple[float, tuple]:
    outs = interp(handle, "grad", args)
    return float(outs[0]), as_groups(handle, outs[1:])


@pytest.fixture(scope="module")
def setup():
    mod = tiny()
    return mod, _groups(mod), _tasks()


# ---- the compiled meta-gradient -------------------------------------------------------------

def test_compiled_second_order_meta_gradient_matches_finite_differences(setup):
    mod, groups, tasks = setup
    loss, grads = mod.maml.value_and_grad(*groups, tasks)
    value = lambda gs: interp_value(mod.maml, (*gs, tasks))     # noqa: E731
    assert abs(float(loss) - value(groups)) <= 1e-10 * abs(float(loss))
    for g in grads:             # both groups receive a meta-gradient
        assert max(float(np.max(np.abs(v))) for v in g.values()) > 1e-6
    check_gradient(value, groups, grads, coords_per_group=3)


def test_compiled_meta_gradient_equals_the_interpreter(setup):
    mod, groups, tasks = setup
    check_kind(mod.maml, "grad", (*groups, tasks), {})


# ---- the other derivatives, on their IR -------------------------------------------------------

def test_finn_convention_meta_gradient_matches_finite_differences(setup):
    """Finn et al.'s: the inner loop leaves Norm alone; the meta-gradient still reaches it."""
    mod, groups, tasks = setup
    loss, grads = interp_grad(mod.maml_finn, (*groups, tasks))
    assert abs(loss - interp_value(mod.maml, (*groups, tasks))) > 1e-6     # the conventions differ
    assert max(float(np.max(np.abs(v))) for v in grads[1].values()) > 1e-6
    check_gradient(lambda gs: interp_value(mod.maml_finn, (*gs, tasks)), groups, grads, coords_per_group=3)


def test_hvp_is_symmetric_and_matches_differences_of_the_gradient(setup):
    mod, groups, tasks = setup
    rng = np.random.default_rng(5)
    u, v = random_like(groups, rng), random_like(groups, rng)
    n = sum(len(g) for g in groups)
    hu = as_groups(mod.maml, interp(mod.maml, "hvp", (*groups, tasks), u)[n:])
    hv = as_groups(mod.maml, interp(mod.maml, "hvp", (*groups, tasks), v)[n:])
    uhv, vhu = dot(u, hv), dot(v, hu)
    assert abs(uhv) > 1e-6
    assert abs(uhv - vhu) <= 1e-8 * max(1.0, abs(uhv)), (uhv, vhu)
    plus = interp_grad(mod.maml, (*moved(groups, v, EPS), tasks))[1]
    minus = interp_grad(mod.maml, (*moved(groups, v, -EPS), tasks))[1]
    for gi in range(2):
        for name in groups[gi]:
            fd = (plus[gi][name] - minus[gi][name]) / (2 * EPS)
            scale = max(1.0, float(np.max(np.abs(fd))))
            assert np.max(np.abs(fd - hv[gi][name])) <= 1e-6 * scale, (gi, name)


def _adapted(mod, groups, task) -> tuple[dict, dict]:
    """K steps of SGD on the support loss, both groups adapted (learn2learn's convention)."""
    p, m = groups
    x, y = task["support"]["x"], task["support"]["y"]
    for _ in range(K):
        _, (gp, gm) = interp_grad(mod.ce, (p, m, x, y))
        p = {k: p[k] - ALPHA * gp[k] for k in p}
        m = {k: m[k] - ALPHA * gm[k] for k in m}
    return p, m


def test_support_loss_gradient_matches_finite_differences(setup):
    """What _adapted steps with is itself checked against differences of `ce`."""
    mod, groups, tasks = setup
    x, y = tasks["support"]["x"][0], tasks["support"]["y"][0]
    _, grads = interp_grad(mod.ce, (*groups, x, y))
    check_gradient(lambda gs: interp_value(mod.ce, (*gs, x, y)), groups, grads, coords_per_group=3)


def test_first_order_is_the_query_loss_gradient_at_the_adapted_weights(setup):
    mod, groups, tasks = setup
    loss, g_fo = interp_grad(mod.fomaml, (*groups, tasks))
    adapted = [_adapted(mod, groups, _one(tasks, i)) for i in range(N_TASKS)]

    def query_loss(direction, step):
        """Mean over tasks of the query loss with every task's adapted weights moved alike."""
        total = 0.0
        for i, w in enumerate(adapted):
            q = _one(tasks, i)["query"]
            total += interp_value(mod.ce, (*moved(w, direction, step), q["x"], q["y"]))
        return total / N_TASKS

    zero = tuple({k: np.zeros_like(v) for k, v in g.items()} for g in groups)
    assert abs(loss - query_loss(zero, 0.0)) <= 1e-10 * abs(loss)
    rng = np.random.default_rng(7)
    for _ in range(3):
        d = random_like(groups, rng)
        fd = (query_loss(d, EPS) - query_loss(d, -EPS)) / (2 * EPS)
        assert abs(fd - dot(g_fo, d)) <= 1e-6 * max(1.0, abs(fd)), (fd, dot(g_fo, d))
    _, g_full = interp_grad(mod.maml, (*groups, tasks))        # and it is not the full meta-gradient
    assert abs(dot(g_full, d) - dot(g_fo, d)) > 1e-6


def test_accuracy_after_adaptation(setup):
    """accuracy(...) of one task: the share of query images whose largest logit, at the
    weights _adapted computes, is the label."""
    mod, groups, tasks = setup
    task = _one(tasks, 0)
    acc = interp_value(mod.accuracy, (*groups, task))
    p, m = _adapted(mod, groups, task)
    (logits,) = interp(mod.net, "forward", (p, m, task["query"]["x"]))
    assert acc == pytest.approx(np.mean(np.argmax(logits, axis=1) == task["query"]["y"]), abs=1e-12)


# ---- the same kernels compiled ----------------------------------------------------------------

@pytest.mark.parametrize("fn,kind", [("maml_finn", "grad"), ("fomaml", "grad"), ("maml", "hvp"),
                                     ("accuracy", "forward")])
def test_compiled_kernels_equal_the_interpreter(setup, fn, kind):
    mod, groups, tasks = setup
    check_kind(getattr(mod, fn), kind, (*groups, _one(tasks, 0) if fn == "accuracy" else tasks), {})
