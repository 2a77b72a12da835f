"""The CUDA module of one kernel, from the CPU back end's planned kernel writer.

The passes up to `plan` (inline, fusion, buffer plan) are the CPU back end's; the
task body is the one metacc.backend.lower writes, compiled as a numba.cuda device
function whose helpers (ld, st, the matmuls) come from metacc.backend.cuda.device.
Around it:

    f(task_lo, task_hi, ...)   the task body, @cuda.jit(device=True)
    f_ws(dims...)              workspace elements per dtype, per task
    f_tasks[blocks, 32](...)   (a meta function) one thread per task, all tasks in
                               flight; thread `task` runs its task in row `task` of
                               the workspace and writes row `task` of each result
    f_one[1, 1](...)           (a plain call) one thread runs the call
    f_batched / f_call         the host entries: checks, inputs to the device, launch,
                               the reduction over tasks in task order (device.sum_rows)
"""
from __future__ import annotations

from metacc.backend.lower import KernelWriter, shape_code
from metacc.backend.naming import sanitize
from metacc.backend.wrap import wrap_source
from metacc.backend.writer import Writer
from metacc.errors import MetaccError
from metacc.ir.core import Func

TARGET = "cuda"

# what generated code may import from metacc.backend.cuda.device (kept here, so that writing
# the source needs no numba.cuda; tests/cuda checks that the device module has each)
DEVICE_NAMES = ("ld", "st", "copy_n", "fill_n", "mm_nn", "mm_tn", "mm_nt", "mm_tt",
                "sigmoid_f32", "sigmoid_f64", "softplus_f32", "softplus_f64",
                # the convolution family (metacc.backend.cuda.conv_device, re-exported by device)
                "conv2d_nhwc", "conv2d_input_grad_nhwc", "conv2d_filter_grad_nhwc", "window_argmax_nhwc",
                "window_gather_nhwc", "window_scatter_nhwc", "avg_pool_nhwc", "avg_pool_t_nhwc",
                # counter-based random numbers (metacc.backend.cuda.rng_device)
                "fold", "uniform_f32", "uniform_f64", "normal_f32", "normal_f64")

# primitives whose CPU lowering calls helpers the device module does not have yet
UNSUPPORTED = {"solve": "linear solves (lu_solve)"}

HEADER = '''"""metacc CUDA kernels for {what} (numba-cuda).

Generated code: edit the .meta source, not this file.
"""
import numpy as np
from numba import cuda

from metacc.backend.cuda import launch
from metacc.backend.cuda.device import {helpers}

'''


def _eqns(fn: Func):
    for e in fn.eqns:
        yield e
        for p in e.params.values():
            if isinstance(p, Func):
                yield from _eqns(p)


def check_supported(fn: Func) -> None:
    """Refuse, naming the primitive and where it is, what the CUDA target cannot lower yet."""
    for e in _eqns(fn):
        if e.prim in UNSUPPORTED:
            raise MetaccError(f"the cuda target does not support the primitive '{e.prim}' yet "
                              f"({UNSUPPORTED[e.prim]})", e.span if e.span and not e.span.adjoint else None,
                              found=e.prim, hint="compile this program with target='cpu'")


def _args_table(kw: KernelWriter, in_names: list[str], batched) -> str:
    rows = [(n, v.type.dtype, v.type.rank, bool(batched[j]) if batched else False)
            for j, (n, v) in enumerate(zip(in_names, kw.fn.ins))]
    return "ARGS = (" + "".join(f"{r!r}, " for r in rows) + ")\n"


def _inputs(w: Writer, kw: KernelWriter, in_names: list[str], batched) -> None:
    w.line(f"launch.check([{', '.join(in_names)}], ARGS)")
    w.line(f"keep = launch.on_device([{', '.join(in_names)}])     # device arrays in: results stay there")


def _to_device(w: Writer, kw: KernelWriter, in_names: list[str], batched) -> None:
    for j, (n, v) in enumerate(zip(in_names, kw.fn.ins)):
        if v.type.rank or (batched and batched[j]):
            w.line(f"{n} = launch.flat({n}, {v.type.dtype!r})")


def _workspace(w: Writer, kw: KernelWriter, name: str, lead: str | None) -> list[str]:
    if not kw.ws_dtypes:
        return []
    w.line(f"sizes = {name}_ws({', '.join(kw.dim_args)})")
    ws = []
    for j, dt in enumerate(kw.ws_dtypes):
        w.line(f"ws_{dt} = launch.workspace({lead}, sizes[{j}], {dt!r})")
        ws.append(f"ws_{dt}")
    return ws


def _task_kernel(kw: KernelWriter, name: str) -> str:
    w = Writer()
    ws = [f"ws_{dt}" for dt in kw.ws_dtypes]
    flat = kw._kernel_ins + kw.out_args + kw.scalar_out_args
    w.line("@cuda.jit")
    with w.block(f"def {name}_tasks({', '.join(['n_tasks'] + flat + ws + kw.dim_args + kw.size_args)}):"):
        w.line('"""One thread per task: thread `task` runs its task in its own workspace row."""')
        w.line("task = cuda.grid(1)")
        with w.block("if task < n_tasks:"):
            rows = [f"{x}[task]" for x in ws]
            w.line(f"{name}(task, task + 1, {', '.join(flat + rows + kw.dim_args + kw.size_args)})")
    return w.text()


def _batched_entry(kw: KernelWriter, name: str, in_names: list[str], batched, reduce) -> str:
    fn = kw.fn
    ranked, scalar = iter(kw.out_args), iter(kw.scalar_out_args)
    rows = [next(ranked) if a.type.rank else next(scalar) for a in fn.outs]
    w = Writer()
    with w.block(f"def {name}_batched({', '.join(in_names)}):"):
        _inputs(w, kw, in_names, batched)
        first = next(j for j, b in enumerate(batched) if b)
        w.line(f"n_tasks = {in_names[first]}.shape[0]")
        kw.dims_lines(w, in_names, [1 if b else 0 for b in batched])
        _to_device(w, kw, in_names, batched)
        for j, a in enumerate(fn.outs):
            size = "n_tasks" if a.type.rank == 0 else f"n_tasks * {kw.size(a.type.shape)}"
            w.line(f"{rows[j]} = launch.empty({size}, {a.type.dtype!r})")
        ws = _workspace(w, kw, name, "n_tasks")
        args = list(in_names) + [r for r, a in zip(rows, fn.outs) if a.type.rank] \
            + [r for r, a in zip(rows, fn.outs) if not a.type.rank]
        w.line("blocks, threads = launch.grid(n_tasks)")
        w.line(f"{name}_tasks[blocks, threads]({', '.join(['n_tasks'] + args + ws + kw.dim_args + kw.size_values)})")
        res = []
        for j, (a, how) in enumerate(zip(fn.outs, reduce)):
            dt = a.type.dtype
            width = kw.size(a.type.shape) if a.type.rank else "1"
            w.line(f"{rows[j]} = launch.reduce({rows[j]}, n_tasks, {width}, {how!r}, {dt!r})   # in task order")
            if how == "stack":
                shape = shape_code((-1,) + a.type.shape, lambda d: "n_tasks" if d == -1 else kw.dim(d))
                res.append(f"launch.result({rows[j]}, {shape}, keep, {dt!r})")
            elif a.type.rank:
                res.append(f"launch.result({rows[j]}, {shape_code(a.type.shape, kw.dim)}, keep, {dt!r})")
            else:
                res.append(f"launch.scalar({rows[j]}, {dt!r})")
        w.returns(res)
    return w.text()


def _one_kernel(kw: KernelWriter, name: str, scalars: list[str]) -> str:
    w = Writer()
    ws = [f"ws_{dt}" for dt in kw.ws_dtypes]
    flat = kw._kernel_ins + kw.out_args
    w.line("@cuda.jit")
    with w.block(f"def {name}_one({', '.join(flat + scalars + ws + kw.dim_args + kw.size_args)}):"):
        w.line('"""A plain call: one thread runs it; scalar results go to one-element arrays."""')
        w.line(f"r = {name}({', '.join(flat + ws + kw.dim_args + kw.size_args)})")
        for i, s in enumerate(scalars):
            w.line(f"{s}[0] = r[{i}]")
    return w.text()


def _call_entry(kw: KernelWriter, name: str, in_names: list[str], scalars: list[str]) -> str:
    fn = kw.fn
    w = Writer()
    with w.block(f"def {name}_call({', '.join(in_names)}):"):
        _inputs(w, kw, in_names, None)
        kw.dims_lines(w, in_names, [0] * len(in_names))
        _to_device(w, kw, in_names, None)
        outs, si = iter(kw.out_args), iter(scalars)
        res = []
        for a in fn.outs:
            dt = a.type.dtype
            if a.type.rank:
                o = next(outs)
                w.line(f"{o} = launch.empty({kw.size(a.type.shape)}, {dt!r})")
                res.append(f"launch.result({o}, {shape_code(a.type.shape, kw.dim)}, keep, {dt!r})")
            else:
                s = next(si)
                w.line(f"{s} = launch.empty(1, {dt!r})")
                res.append(f"launch.scalar({s}, {dt!r})")
        ws = _workspace(w, kw, name, None)
        w.line(f"{name}_one[1, 1]({', '.join(in_names + kw.out_args + scalars + ws + kw.dim_args + kw.size_values)})")
        w.returns(res)
    return w.text()


def cuda_source(kw: KernelWriter, batched, reduce) -> str:
    """The module's text from a planned KernelWriter (the CPU back end's plan pass)."""
    fn = kw.fn
    check_supported(fn)
    name = sanitize(fn.name)
    task_src, in_names, _ = kw.task(name)
    missing = sorted((kw.helpers | {"ld", "st"}) - set(DEVICE_NAMES))
    if missing:
        raise MetaccError(f"the cuda target has no device version of {', '.join(missing)} yet "
                          f"(needed by {fn.name})", hint="compile this program with target='cpu'")
    decorator, rest = task_src.split("\n", 1)
    task_src = "@cuda.jit(device=True)\n" + rest
    helpers = ", ".join(sorted(kw.helpers | {"ld", "st"}))
    parts = [HEADER.format(what=fn.name, helpers=helpers), _args_table(kw, in_names, batched), "\n\n",
             task_src, "\n\n", kw.ws_function(name, "per dtype per task"), "\n"]
    if batched is not None:
        reduce = list(reduce) if reduce is not None else ["mean"] * len(fn.outs)
        parts += ["\n", _task_kernel(kw, name), "\n\n", _batched_entry(kw, name, in_names, batched, reduce)]
        entries = [f"ENTRY_BATCHED = {name}_batched"]
    else:
        scalars = [f"scalar_out_{i}" for i, a in enumerate(a for a in fn.outs if a.type.rank == 0)]
        parts += ["\n", _one_kernel(kw, name, scalars), "\n\n", _call_entry(kw, name, in_names, scalars)]
        entries = [f"ENTRY_CALL = {name}_call"]
    parts += ["\n\n# entry points, under fixed names for the runtime\n", "\n".join(entries), "\n"]
    return wrap_source("".join(parts))
