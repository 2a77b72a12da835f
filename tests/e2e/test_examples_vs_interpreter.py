"""Every example's compiled kernels against the reference interpreter (float64, rtol 1e-10).

For each examples/*.meta, compiled in float64 (the session-shared modules of
tests/e2e/compiled.py, cached under METACC_CACHE_DIR), on small deterministic
random inputs: the meta function's forward and value_and_grad kernels, called
through the public API, against `metacc.interp.evaluate` of the kernel's IR
at stage "ir" (straight from AD, before the simplification passes), so the
passes and the backend are checked together. A meta function's compiled result
(one batched call) must equal the mean over tasks of the interpreter run on
each task alone. P1's plain function `mse` is checked for every kernel kind.

The interpreter's inputs are built here from the signature (leaf by leaf, by
field path), not by the runtime's flattening, and the compiled results are
read back by field name, so a leaf put in the wrong slot also fails.

A new example is picked up by the glob and fails until CASES says how to call it.
One exception to rtol 1e-10: imaml's gradient with the example's cg(tol=1e-8), which
rounding alone moves by more (see CG_LINE); it is checked to 1e-10 with cg(tol=1e-13).
`-m slow` adds the exhaustive sweep: every function of every example with
every applicable kernel kind.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest

import metacc
from metacc.interp import evaluate
from metacc.ir.types import NUMPY_DTYPE
from metacc.runtime.tasks import SinusoidFamily, linear_regression_tasks, sinusoid_tasks
from tests.e2e.compiled import EXAMPLES, module

RTOL = 1e-10
ATOL = 1e-12          # times the output's scale (largest magnitude of the interpreter's leaf)
N_TASKS = 3
PROGRAMS = sorted(p.stem for p in EXAMPLES.glob("*.meta"))


# ---- inputs per example ------------------------------------------------------------------

def _perturbed(group: dict, rng, scale: float = 0.1) -> dict:
    """Init values times (1 + scale * noise): constant initialisers (rates of 0.01 everywhere)
    would hide a leaf or an index read from the wrong place."""
    return {k: v * (1 + scale * rng.normal(size=np.shape(v))) for k, v in group.items()}


def _sinusoid(seed: int) -> dict:
    return sinusoid_tasks(np.random.default_rng(seed), N_TASKS, k=5, q=5, dtype="f64")


def _few_shot(seed: int, ways: int = 5, shots: int = 2, queries: int = 3) -> dict:
    """Classes around random centres in 8-d, labels int64 (ridge_head's FewShot tasks)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("support", shots), ("query", queries)):
        y = np.tile(np.repeat(np.arange(ways), n), (N_TASKS, 1))
        centres = rng.normal(size=(N_TASKS, ways, 8)) * 2
        x = np.take_along_axis(centres, y[:, :, None], axis=1) + rng.normal(size=(N_TASKS, ways * n, 8))
        out[split] = {"x": x, "y": y.astype(np.int64)}
    return out


def _maml(mod, fn, kw=None, scale=1.0):
    theta = {k: scale * v for k, v in mod.Net.init(seed=0).items()}
    return fn, (theta, _sinusoid(1)), kw or {}, None


def _two_groups(mod, fn, first, second, kw=None):
    rng = np.random.default_rng(2)
    groups = (_perturbed(getattr(mod, first).init(seed=0), rng), _perturbed(getattr(mod, second).init(seed=1), rng))
    return fn, (*groups, _sinusoid(1)), kw or {}, None


def _learned_optimizer(mod):
    rng = np.random.default_rng(3)
    w0 = {"w": 0.1 * rng.normal(size=(10, 1))}          # Linear.init() is zeros
    tasks = linear_regression_tasks(np.random.default_rng(3), N_TASKS, n=20, d=10, dtype="f64")
    # wrt=phi as the driver and test_meta_gradients use it (the same kernel)
    return "learned_optimizer", (mod.Opt.init(seed=0), tasks, w0), {}, ("phi",)


def _imaml(mod):
    # amplitudes up to 1 keep the support MSE's curvature well below 2 / lr, so the
    # 1500 SGD steps converge (every test here turns a ConvergenceWarning into an
    # error). Two tasks: the interpreter takes seconds per task through the steps.
    tasks = SinusoidFamily(amplitude=(0.1, 1.0)).sample(np.random.default_rng(4), 2, k=5, q=5, dtype="f64")
    return "imaml", (mod.Net.init(seed=0), tasks), {}, None


def _ridge_head(mod):
    phi = _perturbed(mod.Embedding.init(seed=0), np.random.default_rng(5))
    return "r2d2", (phi, _few_shot(6)), {}, None


def _straight_through(mod):
    rng = np.random.default_rng(7)
    batch = {"x": rng.normal(size=(N_TASKS, 6, 8)), "t": rng.integers(0, 2, size=(N_TASKS, 6, 1)).astype(np.float64)}
    return "ste", (mod.Weights.init(seed=0), batch), {}, None


def _data_selection(mod, fn="select"):
    rng = np.random.default_rng(8)
    tasks = {"support": {"x": rng.normal(size=(N_TASKS, 6, 4)), "y": rng.normal(size=(N_TASKS, 6, 1)),
                         "f": rng.normal(size=(N_TASKS, 6, 2))},
             "query": {"x": rng.normal(size=(N_TASKS, 5, 4)), "y": rng.normal(size=(N_TASKS, 5, 1))},
             "seed": rng.integers(0, 2 ** 62, size=N_TASKS)}
    # non-zero selector weights: keep probabilities away from 1/2, both masks of a task differ
    sel = {"w": rng.normal(size=(2, 1)), "b": rng.normal(size=1)}
    return fn, (_perturbed(mod.Net.init(seed=0), rng) | {"w": rng.normal(size=(4, 1))}, sel, tasks,
                np.uint64(3)), {}, None


def _conv4(mod):
    """Conv4 at full size (28x28x1, 64 filters) with 5 support and 5 query images per task;
    batch-norm scales and shifts moved off 1 and 0."""
    rng = np.random.default_rng(12)
    norm = {k: v + 0.2 * rng.normal(size=np.shape(v)) for k, v in mod.Norm.init(seed=1).items()}
    labels = np.tile(np.arange(5), (N_TASKS, 1)).astype(np.int64)
    tasks = {s: {"x": rng.normal(size=(N_TASKS, 5, 28, 28, 1)), "y": labels} for s in ("support", "query")}
    return "maml", (mod.Conv.init(seed=0), norm, tasks), {}, None


# name -> mod -> (meta function, positional arguments, keyword arguments, wrt (None: the params groups))
CASES = {
    "sinusoid_maml": lambda m: _maml(m, "maml"),
    "sinusoid_fomaml": lambda m: _maml(m, "fomaml"),
    "sinusoid_truncated": lambda m: _maml(m, "truncated_maml"),
    # scaled-down weights keep 100 steps of alpha = 0.01 from diverging (as in test_meta_gradients)
    "sinusoid_checkpointed": lambda m: _maml(m, "maml_long", scale=0.5),
    "inner_adam": lambda m: _maml(m, "inner_adam"),
    "meta_sgd": lambda m: _two_groups(m, "meta_sgd", "Net", "Rates"),
    "per_layer_rates": lambda m: _two_groups(m, "per_layer", "Net", "Rates"),
    # alpha = 0.001: at 0.01 the he_normal features make the inner loop diverge at initialisation
    "anil": lambda m: _two_groups(m, "anil", "Body", "Head", {"alpha": 0.001}),
    "learned_optimizer": _learned_optimizer,
    "imaml": _imaml,
    "ridge_head": _ridge_head,
    "straight_through": _straight_through,
    "data_selection": _data_selection,
    "conv4_maml": _conv4,
}
# an example's further meta functions: (name, function) -> mod -> the same tuple as CASES
MORE_CASES = {("data_selection", "select_relaxed"): lambda m: _data_selection(m, "select_relaxed")}


# imaml's implicit gradient stops conjugate gradient at the program's cg(tol=1e-8): the
# result is only defined to about that residual, and rounding alone moves it by more
# than 1e-10 (in the interpreter, theta moved by 2e-16 relative moves the gradient by
# ~5e-10; compiled vs interpreter differ by ~2e-10 to 2.4e-9). Its derivative kernels
# are held to 1e-10 on the program with cg(tol=1e-13) (`imaml_tight_cg`), and the
# example's own to CG_TOL_LEVEL.
CG_LINE = "implicit cg(iters=100, tol=1e-8)"
CG_TOL_LEVEL = 1e-7


@lru_cache(maxsize=None)
def imaml_tight_cg():
    src = (EXAMPLES / "imaml.meta").read_text()
    assert CG_LINE in src, "imaml.meta's solver line changed: update CG_LINE"
    return metacc.compile(src.replace(CG_LINE, CG_LINE.replace("1e-8", "1e-13")), dtype="f64")


def case(name: str, fn: str | None = None):
    """The inputs of an example's meta function (fn: one of MORE_CASES; default: the one of CASES)."""
    if name not in CASES:
        pytest.fail(f"examples/{name}.meta has no inputs in {__name__}.CASES: add a case saying how "
                    "to call its meta function")
    mod = module(name, "f64")
    fn, args, kw, wrt = (MORE_CASES[name, fn] if (name, fn) in MORE_CASES else CASES[name])(mod)
    return mod, getattr(mod, fn), args, kw, wrt


# ---- flattening by field path, independent of the runtime's ---------------------------

def _get(tree, path: str):
    for part in path.split(".") if path else ():
        tree = tree[part]
    return tree


def _leaves(arg, value) -> list:
    """arg's leaves in IR order (a tensor argument is its own single leaf)."""
    return [np.asarray(_get(value, f.path), dtype=NUMPY_DTYPE[f.type.dtype]) for f in arg.leaves]


def _trees(args, value) -> list:
    """The leaves of one tree per arg (a single arg's result comes back as the tree itself)."""
    value = (value,) if len(args) == 1 else value
    assert len(value) == len(args)
    return [leaf for a, v in zip(args, value) for leaf in _leaves(a, v)]


def _bound(handle, args, kw) -> list:
    values = handle._bind(args, kw)
    assert handle._static(values) is handle, "the inputs must use the compiled static constants"
    return values


def _interp_inputs(handle, values) -> tuple[list, list[bool]]:
    """The IR's inputs and, per input, whether it carries the task axis."""
    flat, batched = [], []
    for a, v in zip(handle.fn.args, values):
        if a.kind == "static":
            continue
        leaves = _leaves(a, v)
        flat += leaves
        batched += [handle.is_meta and a.kind == "task"] * len(leaves)
    return flat, batched


def reference(handle, kind, wrt_args, values, extra: list) -> list:
    """The interpreter on the kernel's stage-"ir" IR; a meta function: the mean over tasks."""
    kernel = handle.kernel(kind, wrt_args if kind != "forward" else None)
    ir = kernel.ir("ir")
    flat, batched = _interp_inputs(handle, values)
    if not handle.is_meta:
        return [np.asarray(x) for x in evaluate(ir, flat + extra)]
    n_tasks = {x.shape[0] for x, b in zip(flat, batched) if b}
    assert len(n_tasks) == 1
    per_task = [evaluate(ir, [x[t] if b else x for x, b in zip(flat, batched)] + extra)
                for t in range(n_tasks.pop())]
    return [np.mean([np.asarray(p[j]) for p in per_task], axis=0) for j in range(len(per_task[0]))]


def assert_close(got: list, want: list, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} outputs, the interpreter has {len(want)}"
    scale_all = max((float(np.max(np.abs(w))) for w in want if w.size), default=0.0)
    for j, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g)
        assert g.shape == w.shape, f"{what} output {j}: shape {g.shape} vs {w.shape}"
        assert g.dtype == np.float64, f"{what} output {j}: dtype {g.dtype}"
        assert np.all(np.isfinite(w)), f"{what} output {j}: the interpreter's value is not finite"
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL * (scale or scale_all),
                                   err_msg=f"{what} output {j}")


# ---- one kernel kind, through the public API ------------------------------------------

def _wrt_args(handle, wrt):
    if wrt is None and not any(a.kind == "params" for a in handle.fn.args):
        wrt = [a.name for a in handle.fn.args
               if a.kind != "static" and a.leaves and all(f.type.is_float for f in a.leaves)]
    return handle._wrt(wrt), (tuple(wrt) if wrt is not None else None)


def _direction(wrt_args, values, handle, rng) -> tuple:
    """A random tree per differentiated argument, shaped like the argument."""
    trees = []
    for a in wrt_args:
        v = values[[b.name for b in handle.fn.args].index(a.name)]
        if a.kind == "tensor":
            trees.append(rng.normal(size=np.shape(v)))
        else:
            trees.append({f.path: rng.normal(size=np.shape(_get(v, f.path))) for f in a.leaves})
    return trees[0] if len(trees) == 1 else tuple(trees)


def check_kind(handle, kind, args, kw, wrt=None, seed=0) -> None:
    """Compiled kernel `kind` of handle vs the interpreter (raises ConvergenceWarning as an error)."""
    rng = np.random.default_rng(seed)
    values = _bound(handle, args, kw)
    wrt_args, wrt_names = _wrt_args(handle, wrt)
    res = handle.fn.result
    what = f"{handle.name}:{kind}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", metacc.ConvergenceWarning)
        if kind == "forward":
            got, extra = _trees([res], handle(*args, **kw)), []
        elif kind == "grad":
            value, g = handle.value_and_grad(*args, wrt=wrt_names, **kw)
            got, extra = [np.asarray(value)] + _trees(wrt_args, g), []
        elif kind == "hvp":
            v = _direction(wrt_args, values, handle, rng)
            g, hv = handle.grad_and_hvp(*args, v=v, wrt=wrt_names, **kw)
            got, extra = _trees(wrt_args, g) + _trees(wrt_args, hv), _trees(wrt_args, v)
        elif kind == "jvp":
            t = _direction(wrt_args, values, handle, rng)
            outs, dots = handle.jvp(*args, tangents=t, wrt=wrt_names, **kw)
            got, extra = _trees([res], outs) + _trees([res], dots), _trees(wrt_args, t)
        elif kind == "vjp":
            ct = rng.normal(size=np.shape(handle(*args, **kw)))
            outs, bars = handle.vjp(*args, cotangent=ct, wrt=wrt_names, **kw)
            got, extra = _trees([res], outs) + _trees(wrt_args, bars), _trees([res], ct)
        else:
            raise AssertionError(kind)
        want = reference(handle, kind, wrt_args, values, extra)
    assert_close(got, want, what)
    if kind != "forward":          # the derivative part is not trivially zero
        n_value = {"grad": 1, "hvp": len(got) // 2, "jvp": len(got) // 2, "vjp": res.n_leaves}[kind]
        assert any(np.any(np.asarray(x) != 0) for x in got[n_value:]), f"{what}: every derivative is 0"


# ---- the default run: each example's meta function, forward and value_and_grad ---------

@pytest.mark.parametrize("name,kind", [(n, k)
                                       for n in PROGRAMS for k in ("forward", "grad")
                                       if (n, k) != ("imaml", "grad")])      # see CG_LINE
def test_meta_function_matches_interpreter(name, kind):
    mod, handle, args, kw, wrt = case(name)
    assert handle.is_meta
    check_kind(handle, kind, args, kw, wrt)


@pytest.mark.parametrize("name,fn", sorted(MORE_CASES))
def test_further_meta_function_gradient_matches_interpreter(name, fn):
    mod, handle, args, kw, wrt = case(name, fn)
    assert handle.is_meta and handle.name == fn
    check_kind(handle, "grad", args, kw, wrt)


def test_imaml_implicit_gradient_matches_interpreter_with_cg_solved_tightly():
    """The example with cg(tol=1e-13) instead of 1e-8: the implicit gradient to rtol 1e-10."""
    _, _, args, kw, wrt = case("imaml")
    check_kind(imaml_tight_cg().imaml, "grad", args, kw, wrt)


def test_imaml_example_gradient_matches_interpreter_to_its_cg_tolerance():
    """The example's own gradient kernel (cg tol 1e-8): within CG_TOL_LEVEL of the leaf's scale,
    not 1e-10 (see CG_LINE); the value is exact to 1e-10."""
    mod, handle, args, kw, wrt = case("imaml")
    values = _bound(handle, args, kw)
    wrt_args, _ = _wrt_args(handle, wrt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", metacc.ConvergenceWarning)
        value, g = handle.value_and_grad(*args, **kw)
        want = reference(handle, "grad", wrt_args, values, [])
    got = [np.asarray(value)] + _trees(wrt_args, g)
    assert_close(got[:1], want[:1], "imaml:grad value")
    assert len(got) == len(want)
    for j, (x, w) in enumerate(zip(got[1:], want[1:]), 1):
        scale = float(np.max(np.abs(w)))
        assert scale > 0 and np.max(np.abs(x - w)) <= CG_TOL_LEVEL * scale, (j, np.max(np.abs(x - w)) / scale)


def test_every_example_has_inputs_here():
    assert set(PROGRAMS) <= set(CASES), sorted(set(PROGRAMS) - set(CASES))
    assert len(PROGRAMS) >= 12


def test_batched_result_is_the_mean_not_one_task():
    """The per-task interpreter results differ, so matching their mean means something."""
    mod, handle, args, kw, wrt = case("sinusoid_maml")
    values = _bound(handle, args, kw)
    flat, batched = _interp_inputs(handle, values)
    ir = handle.kernel("forward").ir("ir")
    losses = [float(evaluate(ir, [x[t] if b else x for x, b in zip(flat, batched)])[0]) for t in range(N_TASKS)]
    assert len(set(losses)) == N_TASKS
    assert float(handle(*args, **kw)) == pytest.approx(np.mean(losses), rel=RTOL)


def _p1_mse_inputs(mod):
    rng = np.random.default_rng(8)
    theta = _perturbed(mod.Net.init(seed=0), rng)
    x = rng.uniform(-5, 5, size=(7, 1))
    return theta, x, np.sin(x - 0.3) * 2


@pytest.mark.parametrize("kind", ["forward", "grad", "hvp", "jvp", "vjp"])
def test_p1_mse_every_kernel_kind(kind):
    mod = module("sinusoid_maml", "f64")
    assert not mod.mse.is_meta
    check_kind(mod.mse, kind, _p1_mse_inputs(mod), {}, seed=9)


# ---- -m slow: every function of every example, every applicable kernel kind -----------

def _generic_inputs(mod, handle, rng, sizes) -> tuple:
    """Random arguments for a plain function from its signature (params groups: their
    initialisers, perturbed; symbolic dims: `sizes`, else 3)."""
    out = []
    for a in handle.fn.args:
        if a.kind == "static":
            break
        if a.kind == "params":
            out.append(_perturbed(getattr(mod, a.type_name).init(seed=len(out)), rng))
            continue
        if a.kind == "task":        # one task: every leaf generically (labels as below)
            tree: dict = {}
            for f in a.leaves:
                *parents, last = f.path.split(".")
                node = tree
                for part in parents:
                    node = node.setdefault(part, {})
                node[last] = _generic_leaf(f.type, rng, sizes)
            out.append(tree)
            continue
        (f,) = a.leaves
        t = f.type
        shape = tuple(d if isinstance(d, int) else sizes.get(d, 3) for d in t.shape)
        if t.dtype == "i64":        # class labels: 0 and 1 are classes of any classifier
            out.append(_generic_leaf(t, rng, sizes))
            continue
        if not t.is_float:
            raise AssertionError(f"{handle.name}: no generic input for {a.name}: {t}")
        if a.default is not None:
            out.append(float(a.default))
        elif t.rank == 0:
            out.append(float(rng.uniform(0.5, 1.5)))
        else:
            out.append(rng.normal(size=shape))
    return tuple(out)


def _generic_leaf(t, rng, sizes):
    shape = tuple(d if isinstance(d, int) else sizes.get(d, 3) for d in t.shape)
    if t.dtype == "i64":
        return rng.integers(0, 2, size=shape).astype(np.int64)
    if not t.is_float:
        raise AssertionError(f"no generic input for {t}")
    return rng.normal(size=shape)


def _applicable(handle) -> list[str]:
    res = handle.fn.result
    scalar = res.kind == "tensor" and res.leaves[0].type.rank == 0
    return ["forward", "jvp", "vjp"] + (["grad", "hvp"] if scalar else [])


def _all_functions():
    return [(name, fn) for name in PROGRAMS for fn in module(name, "f64").program.functions]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["forward", "grad", "hvp", "jvp", "vjp"])
@pytest.mark.parametrize("name,fn", _all_functions())
def test_every_function_every_kind(name, fn, kind):
    # imaml's derivatives are only defined to its CG tolerance: the sweep uses cg(tol=1e-13)
    mod = imaml_tight_cg() if name == "imaml" else module(name, "f64")
    handle = getattr(mod, fn)
    if kind not in _applicable(handle):
        pytest.skip(f"{fn} returns {handle.fn.result.type_name}: no {kind}")
    if handle.is_meta:
        _, meta, args, kw, wrt = case(name, fn)
        assert meta.name == fn
    else:
        args, kw, wrt = _generic_inputs(mod, handle, np.random.default_rng(10), {"n": 6}), {}, None
    check_kind(handle, kind, args, kw, wrt, seed=11)
