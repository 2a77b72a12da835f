"""What `metacc.compile` returns: parameter groups, task types and callable functions.

    mod = metacc.compile("maml.meta")
    theta = mod.Net.init(seed=0)                       # {'w1': array, ...}
    loss = mod.mse(theta, x, y)
    loss, g = mod.mse.value_and_grad(theta, x, y)      # g: {'w1': ..., ...}
    hv = mod.mse.hvp(theta, x, y, v=direction)         # direction: a tree like theta
    outs, out_dots = mod.mse.jvp(theta, x, y, tangents=direction)
    outs, in_bars = mod.mse.vjp(theta, x, y, cotangent=1.0)
    loss, g = mod.maml.value_and_grad(theta, tasks)    # tasks: leading task axis; means over tasks
    loss, g = mod.maml.value_and_grad(theta, tasks, runner=DaskRunner(client))   # in shards, elsewhere
    print(mod.maml.source("grad"))                     # the generated Numba code

Differentiated arguments default to the function's parameter groups
(`wrt=("theta",)` picks others). The extra inputs of hvp/jvp/vjp are keyword
arguments so that they can never be confused with the function's own.
"""
from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import numpy as np

from metacc.dtypes import float_dtype
from metacc.errors import MetaccError, MetaccErrors, did_you_mean
from metacc.labels import LabelError
from metacc.program import Arg, Function, ParamGroup, Program, TaskType
from metacc.runtime.device import is_device_array
from metacc.runtime.initializers import init_field
from metacc.runtime.kernel import Kernel
from metacc.runtime.shards import SeededTasks, make_job
from metacc.runtime.trees import Dims, fast_flatten, flatten_arg, unflatten

KERNELS = ("forward", "grad", "vjp", "jvp", "hvp")


class UnknownName(MetaccError, AttributeError):
    """A module has no params group, task or function of this name. An AttributeError
    too, so that hasattr, getattr(module, name, default) and NumPy's probing work."""

    def __init__(self, message: str, name: str, obj, **kw):
        MetaccError.__init__(self, message, **kw)
        self.name, self.obj = name, obj


def _fields(fields) -> str:
    """Fields as the source declares them: {w: f32[2, 3], ...}, task fields nested by part."""
    tree: dict = {}
    for f in fields:
        node = tree
        parts = f.path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = str(f.type)

    def show(node: dict, top: bool) -> str:
        inner = ", ".join(f"{k}: {show(v, False) if isinstance(v, dict) else v}" for k, v in node.items())
        return f"{{{inner}}}" if top else f"({inner})"
    return show(tree, True)


def _signature(fn: Function) -> str:
    def arg(a: Arg) -> str:
        return f"{a.name}: {a.type_name}" + ("" if a.default is None else f" = {a.default!r}")
    result = fn.result.type_name if not fn.aux else \
        "(" + ", ".join(f"{r.name}: {r.type_name}" for r in fn.results) + ")"
    return f"{fn.kind} {fn.name}({', '.join(arg(a) for a in fn.args)}) -> {result}"


class ParamGroupHandle:
    def __init__(self, group: ParamGroup, dtype: str | None):
        self.group = group
        self.name = group.name
        self.fields = tuple(f.path for f in group.fields)
        self._dtype = dtype

    def init(self, seed: int = 0, dtype: str | None = None) -> dict[str, np.ndarray]:
        """Fresh parameters from the group's initialisers (one generator seeded with `seed`)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise MetaccError(f"{self.name}.init: seed must be a non-negative int", found=repr(seed)[:80])
        rng = np.random.default_rng(seed)
        out = {}
        for f in self.group.fields:
            dt = float_dtype(dtype, f"{self.name}.init", allow_none=True) or self._dtype or \
                (f.type.dtype if f.type.is_float else "f64")
            out[f.path] = init_field(f, rng, dt if f.type.is_float else f.type.dtype, self.name)
        return out

    def __repr__(self) -> str:
        return f"<params {self.name} {_fields(self.group.fields)}>"


class TaskTypeHandle:
    def __init__(self, task: TaskType):
        self.task = task
        self.name = task.name
        self.fields = tuple(f.path for f in task.fields)

    def __repr__(self) -> str:
        return f"<task {self.name} {_fields(self.task.fields)}>"


class FunctionHandle:
    def __init__(self, module: "Module", fn: Function):
        self._m = module
        self.fn = fn
        self.name = fn.name
        self.is_meta = fn.kind == "meta"
        self._kernels: dict = {}
        self._kernel_memo: dict = {}
        self._wrt_memo: dict = {}
        # a tuple result `-> (loss: f32, acc: f32)` comes back as a named tuple of its results
        self.results_type = namedtuple(f"{fn.name}_results", [r.name for r in fn.results], rename=True) \
            if fn.aux else None
        self._n_out = sum(r.n_leaves for r in fn.results)

    # ---- arguments ----
    def _bind(self, args, kwargs) -> list:
        fn = self.fn
        if len(args) > len(fn.args):
            raise MetaccError(f"{fn.name}() takes {len(fn.args)} arguments, got {len(args)}",
                              expected=", ".join(a.name for a in fn.args))
        values = list(args) + [_MISSING] * (len(fn.args) - len(args))
        names = [a.name for a in fn.args]
        for k, v in kwargs.items():
            if k not in names:
                raise MetaccError(f"{fn.name}() has no argument '{k}'", expected=", ".join(names),
                                  hint=did_you_mean(k, names))
            i = names.index(k)
            if values[i] is not _MISSING:
                raise MetaccError(f"{fn.name}(): argument '{k}' given twice")
            values[i] = v
        for i, a in enumerate(fn.args):
            if values[i] is _MISSING:
                if a.default is None:
                    raise MetaccError(f"{fn.name}(): missing argument '{a.name}' ({a.type_name})",
                                      expected=", ".join(names))
                values[i] = a.default
        return values

    def _static(self, values) -> "FunctionHandle":
        """The handle to run: a `static` argument (a compile-time int such as K)
        given a value other than its default selects the program compiled
        with that constant."""
        consts = {}
        for a, v in zip(self.fn.args, values):
            if a.kind == "static":
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise MetaccError(f"{self.fn.name}(): argument '{a.name}' is a compile-time int",
                                      expected="an int", found=type(v).__name__)
                if int(v) != a.default:
                    consts[a.name] = int(v)
        if not consts:
            return self
        try:
            variant = self._m._variant(consts)
        except MetaccErrors:
            raise
        except MetaccError as err:
            # the program's own message (at the line that uses the constant), with the value named
            given = ", ".join(f"{k}={v}" for k, v in consts.items())
            raise MetaccError(f"{self.fn.name}({given}): {err.message}", err.span, expected=err.expected,
                              found=err.found, hint=err.hint, notes=err.notes) from None
        return getattr(variant, self.fn.name)

    def _flatten(self, values) -> tuple[list, Dims]:
        dims = Dims()
        batch: list = [None, None]
        plan = [(a, v, self.is_meta and a.kind == "task") for a, v in zip(self.fn.args, values)
                if a.kind != "static"]
        flat = fast_flatten(plan, dims, batch)
        if flat is not None and batch[0] != 0:
            return flat, dims
        dims = Dims()             # start over, checking each argument in full
        batch = [None, None]
        flat = []
        for a, v in zip(self.fn.args, values):
            if a.kind == "static":
                continue
            batched = self.is_meta and a.kind == "task"
            flat += flatten_arg(a, v, dims, batch if batched else None)
        if self.is_meta and batch[0] == 0:
            raise MetaccError(f"{self.fn.name}: the task batch is empty", found=f"0 tasks in '{batch[1]}'")
        return flat, dims

    def _wrt(self, wrt) -> list[Arg]:
        if wrt is None or isinstance(wrt, str):
            key = wrt
        elif isinstance(wrt, (tuple, list)) and all(isinstance(w, str) for w in wrt):
            key = tuple(wrt)
        else:
            raise MetaccError(f"{self.fn.name}: wrt takes an argument name or a tuple of names",
                              expected=", ".join(repr(a.name) for a in self.fn.args), found=repr(wrt)[:120])
        hit = self._wrt_memo.get(key)
        if hit is None:
            hit = self._wrt_memo[key] = self._resolve_wrt(wrt)
        return hit

    def _resolve_wrt(self, wrt) -> list[Arg]:
        fn = self.fn
        if wrt is None:
            chosen = [a for a in fn.args if a.kind == "params"]
            if not chosen:
                raise MetaccError(f"{fn.name} has no parameter-group argument to differentiate",
                                  hint="name the arguments with wrt=(...)")
            return chosen
        if isinstance(wrt, str):
            wrt = (wrt,)
        names = [a.name for a in fn.args]
        if not wrt:
            raise MetaccError(f"{fn.name}: wrt names no argument", expected=", ".join(names),
                              hint="leave wrt out to differentiate the parameter groups")
        out = []
        for w in wrt:
            if wrt.count(w) > 1:
                raise MetaccError(f"{fn.name}: wrt names '{w}' more than once", found=repr(tuple(wrt)))
            if w not in names:
                raise MetaccError(f"{fn.name}: wrt names unknown argument '{w}'", expected=", ".join(names),
                                  hint=did_you_mean(w, names))
            a = fn.arg(w)
            if not all(f.type.is_float for f in a.leaves):
                raise MetaccError(f"{fn.name}: cannot differentiate with respect to '{w}' ({a.type_name}): "
                                  "it is not a float value")
            out.append(a)
        return out

    def _leaf_ids(self, args: list[Arg]) -> tuple[int, ...]:
        sl = self.fn.leaf_slices()
        return tuple(i for a in args for i in range(sl[a.name].start, sl[a.name].stop))

    def _extra(self, trees, wrt: list[Arg], what: str, dims: Dims) -> list:
        """Tangents / directions / cotangents: one tree per differentiated argument."""
        if len(wrt) == 1:
            trees = (trees,)
        elif not isinstance(trees, (tuple, list)) or len(trees) != len(wrt):
            raise MetaccError(f"{self.fn.name}: {what} needs one tree per differentiated argument",
                              expected=f"a tuple of {len(wrt)} ({', '.join(a.name for a in wrt)})",
                              found=type(trees).__name__)
        flat = []
        for a, t in zip(wrt, trees):
            flat += flatten_arg(a, t, dims, None, name=f"{what}[{a.name}]" if len(wrt) > 1 else what)
        return flat

    def kernel(self, kind: str, wrt: list[Arg] | None = None) -> Kernel:
        if kind not in KERNELS:
            raise MetaccError(f"unknown kernel '{kind}'", expected=", ".join(KERNELS),
                              hint=did_you_mean(kind, KERNELS))
        memo = (kind, tuple(a.name for a in wrt) if wrt else ())
        if memo in self._kernel_memo:
            return self._kernel_memo[memo]
        ids = self._leaf_ids(wrt) if (wrt and kind != "forward") else ()
        key = (kind, ids)
        if key not in self._kernels:
            batched = None
            if self.is_meta:
                batched = tuple(a.kind == "task" for a in self.fn.args for _ in a.leaves)
            self._kernels[key] = Kernel(self._m._key_text, self.fn.name, self.fn.ir, kind, ids, batched,
                                        self._m.dtype or "declared", self._m.cache_dir, self._m.pipeline,
                                        self._m.check_outputs)
        self._kernel_memo[memo] = self._kernels[key]
        return self._kernels[key]

    # ---- results ----
    def _result(self, leaves: list):
        """Every result: one value, or the named tuple of a tuple result."""
        if self.results_type is None:
            return unflatten(self.fn.result, [_out(x) for x in leaves])
        out, k = [], 0
        for r in self.fn.results:
            out.append(unflatten(r, [_out(x) for x in leaves[k:k + r.n_leaves]]))
            k += r.n_leaves
        return self.results_type(*out)

    def _trees(self, wrt: list[Arg], leaves: list):
        out, k = [], 0
        for a in wrt:
            out.append(unflatten(a, [_out(x) for x in leaves[k:k + a.n_leaves]]))
            k += a.n_leaves
        return out[0] if len(out) == 1 else tuple(out)

    # ---- calls ----
    def _drawn(self, values: list) -> list:
        """A SeededTasks in a call without a runner: drawn here, all of it."""
        if not self.is_meta:
            return values
        return [v.draw() if isinstance(v, SeededTasks) else v for v in values]

    def _run_sharded(self, runner, kernel: Kernel, values: list) -> list:
        """The call's task batch in fixed shards on a runner (metacc.runtime.shards)."""
        if not self.is_meta:
            raise MetaccError(f"{self.fn.name}: runner= runs the task batch of a meta function, and "
                              f"{self.fn.name} is a {self.fn.kind}", hint="call it without runner")
        if not (hasattr(runner, "run") and hasattr(runner, "shard_size")):
            raise MetaccError(f"{self.fn.name}: runner must be a LocalRunner or a DaskRunner",
                              found=type(runner).__name__,
                              hint="metacc.runtime.dask_runner.DaskRunner(client), "
                                   "or metacc.runtime.shards.LocalRunner()")
        mask = tuple(a.kind == "task" for a in self.fn.args if a.kind != "static" for _ in a.leaves)
        job = make_job(self.fn.args, values, mask, runner.shard_size, self.fn.name)
        try:
            return list(runner.run(kernel, job))
        except LabelError as err:
            # found in the shards' label figures, combined in task order here: name the input
            return self._located(err, job.whole())

    def _run(self, kernel: Kernel, flat: list, dims: Dims) -> list:
        try:
            return list(kernel(flat))
        except MemoryError as err:
            # the workspace grows with the call's dims (an n x n Gram matrix of n points)
            sizes = ", ".join(f"{d}={n}" for d, n in dims.size.items()) or "no symbolic dims"
            raise MetaccError(f"{self.fn.name}: not enough memory for this call: {err}",
                              found=f"dims {sizes}",
                              hint="call with fewer points (smaller dims) or fewer tasks per call") from None
        except LabelError as err:
            return self._located(err, flat)

    def _located(self, err: LabelError, flat: list):
        """Raise the kernel's label error restated: the kernel knows which of its inputs
        held the labels, named here for the user."""
        leaves = [(a, f) for a in self.fn.args if a.kind != "static" for f in a.leaves]
        names = [f"{a.name}.{f.path}" if f.path else a.name for a, f in leaves]
        batched = [self.is_meta and a.kind == "task" for a, _ in leaves]
        raise err.located(names, flat, self._m.program.source, batched) from None

    def __call__(self, *args, **kwargs):
        values = self._bind(args, kwargs)
        if (h := self._static(values)) is not self:
            return h(*args, **kwargs)
        flat, dims = self._flatten(self._drawn(values))
        return self._result(self._run(self.kernel("forward"), flat, dims))

    def value_and_grad(self, *args, wrt=None, runner=None, **kwargs):
        """(value, gradient): the gradient is a tree like the differentiated argument
        (a tuple of trees when several are differentiated). For a tuple result the value
        is the named tuple of every result, (loss, acc, ...), and the gradient is that of
        the first (JAX's has_aux: `(loss, acc), g = f.value_and_grad(...)`). runner: a meta
        function's task batch run in fixed shards (metacc.runtime.shards.LocalRunner, DaskRunner)."""
        wrt_args = self._wrt(wrt)
        if self.fn.result.kind != "tensor" or self.fn.result.leaves[0].type.rank != 0:
            what = f"its first result `{self.fn.result.name}` is" if self.fn.aux else "returns"
            raise MetaccError(f"{self.fn.name} {what} {self.fn.result.type_name}: grad needs a scalar value",
                              hint="use vjp for functions with other results")
        values = self._bind(args, kwargs)
        if (h := self._static(values)) is not self:
            return h.value_and_grad(*args, wrt=wrt, runner=runner, **kwargs)
        if runner is not None:
            outs = self._run_sharded(runner, self.kernel("grad", wrt_args), values)
        else:
            flat, dims = self._flatten(self._drawn(values))
            outs = self._run(self.kernel("grad", wrt_args), flat, dims)
        n = self._n_out
        value = self._result(outs[:n]) if self.results_type is not None else _out(outs[0])
        return value, self._trees(wrt_args, outs[n:])

    def grad(self, *args, wrt=None, runner=None, **kwargs):
        return self.value_and_grad(*args, wrt=wrt, runner=runner, **kwargs)[1]

    def hvp(self, *args, v, wrt=None, **kwargs):
        """Hessian-vector product H v of the (scalar) value, v a tree like the differentiated argument."""
        return self.grad_and_hvp(*args, v=v, wrt=wrt, **kwargs)[1]

    def grad_and_hvp(self, *args, v, wrt=None, **kwargs):
        wrt_args = self._wrt(wrt)
        values = self._bind(args, kwargs)
        if (h := self._static(values)) is not self:
            return h.grad_and_hvp(*args, v=v, wrt=wrt, **kwargs)
        flat, dims = self._flatten(values)
        flat += self._extra(v, wrt_args, "v", dims)
        outs = self._run(self.kernel("hvp", wrt_args), flat, dims)
        n = len(self._leaf_ids(wrt_args))
        return self._trees(wrt_args, outs[:n]), self._trees(wrt_args, outs[n:])

    def jvp(self, *args, tangents, wrt=None, **kwargs):
        """(outputs, output tangents) for input tangents of the differentiated arguments.
        For a tuple result: (the named tuple of every result, the tangent of the first)."""
        wrt_args = self._wrt(wrt)
        values = self._bind(args, kwargs)
        if (h := self._static(values)) is not self:
            return h.jvp(*args, tangents=tangents, wrt=wrt, **kwargs)
        flat, dims = self._flatten(values)
        flat += self._extra(tangents, wrt_args, "tangents", dims)
        outs = self._run(self.kernel("jvp", wrt_args), flat, dims)
        n = self._n_out
        return self._result(outs[:n]), unflatten(self.fn.result, [_out(x) for x in outs[n:]])

    def vjp(self, *args, cotangent, wrt=None, **kwargs):
        """(outputs, cotangents of the differentiated arguments) for an output cotangent.
        For a tuple result the cotangent is of the first result only; the outputs are
        the named tuple of every result."""
        wrt_args = self._wrt(wrt)
        values = self._bind(args, kwargs)
        if (h := self._static(values)) is not self:
            return h.vjp(*args, cotangent=cotangent, wrt=wrt, **kwargs)
        flat, dims = self._flatten(values)
        res = self.fn.result
        flat += flatten_arg(res, cotangent, dims, None, name="cotangent")
        outs = self._run(self.kernel("vjp", wrt_args), flat, dims)
        n = self._n_out
        return self._result(outs[:n]), self._trees(wrt_args, outs[n:])

    def source(self, kernel: str = "forward", stage: str = "numba", wrt=None) -> str:
        """The code of one kernel: 'numba' (generated source), 'simplified' or 'ir' (IR text),
        or the program after any pass of its pipeline (`metacc show --stages`)."""
        k = self.kernel(kernel, self._wrt(wrt) if kernel != "forward" else None)
        return k.show(stage)

    def __repr__(self) -> str:
        return f"<{_signature(self.fn)}>"


class _Missing:
    pass


_MISSING = _Missing()


def _out(x):
    """Scalars come back as NumPy scalars of their dtype, arrays as they are."""
    return x if isinstance(x, np.ndarray) or is_device_array(x) else np.asarray(x)[()]


class Module:
    """A compiled .meta program. Attributes: its params groups, task types and functions."""

    def __init__(self, program: Program, key_text: str, dtype: str | None, cache_dir: Path,
                 pipeline, reload=None, check_outputs=None):
        self.program = program
        self.pipeline = pipeline         # metacc.pipeline, handed in by the compile driver
        # what checks every call's results (metacc.nonfinite.check_outputs), handed in by the
        # compile driver when check_finite is on; None: off
        self.check_outputs = check_outputs
        self._reload = reload            # constants -> Program (None: fixed program)
        self._variants: dict = {}
        self.dtype = dtype
        self.cache_dir = cache_dir
        self._key_text = key_text
        self._items: dict[str, object] = {}
        for name, g in program.groups.items():
            self._items[name] = ParamGroupHandle(g, dtype)
        for name, t in program.tasks.items():
            self._items[name] = TaskTypeHandle(t)
        for name, f in program.functions.items():
            self._items[name] = FunctionHandle(self, f)

    @property
    def check_finite(self) -> bool:
        """Does every call check that its results are finite (compile(check_finite=...))?"""
        return self.check_outputs is not None

    def _variant(self, consts: dict[str, int]) -> "Module":
        key = tuple(sorted(consts.items()))
        if key not in self._variants:
            if self._reload is None:
                raise MetaccError("this module was built from a Program: its compile-time arguments "
                                  "are fixed", found=", ".join(f"{k}={v}" for k, v in key))
            text = self._key_text + "\n# constants: " + repr(key)
            self._variants[key] = Module(self._reload(consts), text, self.dtype, self.cache_dir, self.pipeline,
                                         check_outputs=self.check_outputs)
        return self._variants[key]

    def __getattr__(self, name: str):
        items = self.__dict__.get("_items", {})
        if name in items:
            return items[name]
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnknownName(f"the program has no params, task or function named '{name}'", name, self,
                          expected=", ".join(items) or "(nothing declared)", hint=did_you_mean(name, items))

    def __repr__(self) -> str:
        name = self.program.source.name
        shown = Path(name).name if name.endswith(".meta") else name
        head = f"<metacc.Module {shown} ({'dtype ' + self.dtype if self.dtype else 'dtypes as declared'})"
        lines = [f"params {g.name} {_fields(g.fields)}" for g in self.program.groups.values()]
        lines += [f"task {t.name} {_fields(t.fields)}" for t in self.program.tasks.values()]
        lines += [_signature(f) for f in self.program.functions.values()]
        if not lines:
            return head + ": nothing declared>"
        return head + "\n" + "\n".join("  " + x for x in lines) + ">"

    def __dir__(self):
        return list(super().__dir__()) + list(self._items)

    def __getitem__(self, name: str):
        if not isinstance(name, str):
            raise MetaccError("a module is indexed by the name of a params group, task or function",
                              expected=", ".join(self._items), found=repr(name)[:80])
        return self.__getattr__(name)
