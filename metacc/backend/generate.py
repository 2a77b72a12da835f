"""Whole generated modules: the task kernel and its entry points.

For a function `f` the module holds

    f(ins..., outs..., ws..., dims..., sizes...)   the task kernel (lower.py), jitted;
                         batched: f(task_lo, task_hi, ...) runs a range of tasks
    f_ws(dims...)        workspace elements per dtype
    f_call(ins...)       one call: reads dims, allocates outputs and workspace, runs f
    f_batched(ins...)    (lower_batched only) a task batch: workers (threads; f
                         releases the GIL) each run one contiguous range of tasks
                         in one call of f in their own workspace, each task
                         writing its row of [tasks, ...] result buffers, reduced
                         afterwards in task order, so the result is the same for
                         any number of threads
    f_rows(ins...)       (lower_batched only) the same, every output left as its
                         [tasks, ...] rows: one shard of a batch run elsewhere
    ENTRY_CALL, ENTRY_BATCHED, ENTRY_ROWS   the entries under fixed names, for the runtime

Only `f` is jitted: a jitted entry calling it would make Numba compile the
whole kernel a second time inside the caller (a `prange` wrapper: 22 s more
for P1's meta-gradient), and the entries' work (shapes, allocation, one call per
worker) costs microseconds in Python.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from metacc.backend.describe import format_fusion, format_plan
from metacc.backend.fusion import plan_fusion
from metacc.passes.inline import inline_calls
from metacc.passes.outer import outer_products
from metacc.backend.literals import NP_NAME
from metacc.backend.lower import KernelWriter, shape_code, size_code, size_terms
from metacc.backend.naming import sanitize
from metacc.backend.outline import Nest, outline
from metacc.backend.wrap import wrap_source
from metacc.backend.writer import Writer
from metacc.errors import InternalError
from metacc.ir.core import Func
from metacc.ir.verify import verify
from metacc.passes.driver import Build, Pass, ir_pass, run
from metacc.backend.conv_extern import NAMES as CONV_HELPERS
from metacc.backend.extern import NAMES as EXTERN

REDUCTIONS = ("mean", "sum", "stack")

HEADER = '''"""metacc kernels for {what}.

Generated code: edit the .meta source, not this file.
"""
import numpy as np
from numba import njit

from metacc.runtime import threads

CACHE = True
'''


@dataclass(frozen=True)
class Lowered:
    source: str
    name: str          # the task kernel; entry points are name + '_call' / '_batched'
    fn: Func           # the IR that was lowered (calls inlined)


def lower_source(fn: Func) -> str:
    """Readable Numba source of fn: task kernel, workspace sizes, call entry."""
    return lower(fn).source


def lower(fn: Func, batched: list[bool] | None = None, reduce: list[str] | None = None) -> Lowered:
    verify(fn, "lowering input")
    b = run(BACKEND, Build(fn, batched=tuple(batched) if batched is not None else None,
                           reduce=tuple(reduce) if reduce is not None else None))
    return Lowered(b.source, sanitize(fn.name), b.writer.fn)


# ---- the back end's passes (metacc.pipeline runs them after the IR passes) ----

def _fusion(b: Build) -> Build:
    return replace(b, fusion=plan_fusion(b.fn))


def _plan(b: Build) -> Build:
    kw = KernelWriter(b.fn)
    if b.batched is not None:
        _check_batched(b.fn, list(b.batched), _reduce(b))
    kw.plan_buffers(list(b.batched) if b.batched is not None else None, b.fusion)
    return replace(b, writer=kw)


def _reduce(b: Build) -> list[str]:
    return list(b.reduce) if b.reduce is not None else ["mean"] * len(b.fn.outs)


def _emit(b: Build) -> Build:
    """The module's text from the planned kernel writer."""
    kw, fn = b.writer, b.fn
    name = sanitize(fn.name)
    task_src, in_names, out_args = kw.task(name, pool=True)
    task_src, nests = outline(task_src, kw.name_kinds())
    imports = _imports(kw)
    if nests:       # compiled while worker processes build its nests (metacc.runtime.nests)
        task_src += f"\n\n{name} = compile_then_link({name}, globals())\n"
    parts = [HEADER.format(what=fn.name), imports, _nest_table(nests), task_src, "\n",
             kw.ws_function(name), "\n", _call_fn(kw, name, in_names)]
    entries = [f"ENTRY_CALL = {name}_call"]
    if b.batched is not None:
        parts += ["\n", _batched_fn(kw, name, in_names, list(b.batched), _reduce(b))]
        # every output as its [tasks, ...] rows, unreduced: for a shard of a batch run
        # elsewhere (metacc.runtime.shards), whose sums are combined in shard order
        parts += ["\n", _batched_fn(kw, name, in_names, list(b.batched), ["stack"] * len(fn.outs), "_rows")]
        entries += [f"ENTRY_BATCHED = {name}_batched", f"ENTRY_ROWS = {name}_rows"]
    parts += ["\n\n# entry points, under fixed names for the runtime\n", "\n".join(entries), "\n"]
    return replace(b, source=wrap_source("".join(parts)))


BACKEND = (
    ir_pass("inline", inline_calls, "calls inlined, so fusion and buffer planning see across them "
            "(metacc.passes.inline)"),
    ir_pass("outer_products", outer_products, "matmuls with an inner dimension of 1 as broadcast multiplies "
            "that fuse with their neighbours, transposes of a row or a column as reshapes (metacc.passes.outer)"),
    Pass("fusion", _fusion, "which equations share one loop nest (metacc.backend.fusion)", rewrites_ir=False,
         show=lambda b: format_fusion(b.fn, b.fusion)),
    Pass("plan", _plan, "where every value lives: workspace slots, outputs, locals (metacc.backend.plan)",
         rewrites_ir=False, show=lambda b: format_plan(b.writer.plan, b.writer.slots)),
    Pass("lower", _emit, "the Numba module: task kernel and entry points (metacc.backend.lower)",
         rewrites_ir=False, show=lambda b: b.source),
)


def _import_line(module: str, names: list[str]) -> str:
    """`from module import a, b`, in brackets over several lines when it would be long."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 120:
        return line + "\n"
    rows, row = [], ""
    for n in names:
        if row and len(row) + len(n) > 110:
            rows.append(row.rstrip())
            row = ""
        row += n + ", "
    rows.append(row.rstrip(", "))
    return f"from {module} import (" + "\n    ".join([""] + rows) + ")\n"


def _imports(kw: KernelWriter) -> str:
    """Helpers come from metacc.backend.helpers, or from metacc.backend.extern for
    those the kernel calls by address; the module links those at import, before
    Numba can load the kernel's cached machine code."""
    used = kw.helpers | {"ld", "st"}
    ext = sorted((used & set(EXTERN)) | ({"link"} if kw.links else set()))
    text = f"from metacc.backend.extern import {', '.join(ext)}\n" if ext else ""
    conv = used & set(CONV_HELPERS)
    if conv:
        text += _import_line("metacc.backend.conv_extern", sorted(conv))
    text += f"from metacc.backend.helpers import {', '.join(sorted(used - set(EXTERN) - conv))}\n"
    if kw.batched is not None:
        text += "from metacc.runtime.spin import release_workers\n"
        text += "from metacc.runtime.task_rows import task_reduce\n"
    if kw.links:
        text += f"\nlink({', '.join(repr(x) for x in sorted(kw.links))})\n"
    return text + "\n\n"


def _nest_table(nests: list[Nest]) -> str:
    """The kernel's loop nests (metacc.backend.outline), linked when the module is imported
    (metacc.runtime.nests): each compiled once, or loaded from the cache, under its hash."""
    if not nests:
        return ""
    w = Writer()
    w.line("from metacc.runtime.nests import compile_then_link, link_nests")
    w.line()
    w.comment("loop nests, compiled once each and shared by every kernel that has them (metacc.backend.outline);")
    w.comment("parameters: a buffer (a0, with its length), an int (n0: offsets, sizes, literals), a scalar (s0)")
    w.line("NESTS = {")
    for n in nests:
        w.line(f'    "{n.name}": ("{" ".join(n.kinds)}", """')
        w.lines += n.source.rstrip("\n").split("\n")
        w.line('"""),')
    w.line("}")
    w.line("globals().update(link_nests(NESTS, globals()))")
    return w.text() + "\n\n"


def lower_batched(fn: Func, batched: list[bool], reduce: list[str]) -> str:
    """Source with a `NAME_batched` entry: inputs flagged in `batched` carry a
    leading task axis; each output is reduced over tasks by 'mean', 'sum' or
    kept per task ('stack')."""
    return lower(fn, batched, reduce).source


def _alloc_ws(w: Writer, kw: KernelWriter, name: str, lead: str | None) -> list[str]:
    if not kw.ws_dtypes:
        return []
    ws = [f"ws_{dt}" for dt in kw.ws_dtypes]
    if lead:
        dts = ", ".join(NP_NAME[dt] for dt in kw.ws_dtypes) + ("," if len(ws) == 1 else "")
        w.line(f"{', '.join(ws)}{',' if len(ws) == 1 else ''} = threads.workspaces({lead}, "
               f"{name}_ws({', '.join(kw.dim_args)}), ({dts}))")
        return ws
    w.line(f"sizes = {name}_ws({', '.join(kw.dim_args)})")
    for j, dt in enumerate(kw.ws_dtypes):
        w.line(f"ws_{dt} = threads.workspace((sizes[{j}],), {NP_NAME[dt]})")
    return ws


def _call_fn(kw: KernelWriter, name: str, in_names: list[str]) -> str:
    """Plain Python entry for one call: it reads the dims, allocates outputs and
    workspace and passes everything flat (a jitted wrapper would compile the
    kernel a second time, inlined into it). A task-range kernel runs the range
    0..1 with every batched input as a batch of one."""
    fn = kw.fn
    ranged = kw.batched is not None
    w = Writer()
    with w.block(f"def {name}_call({', '.join(in_names)}):"):
        kw.dims_lines(w, in_names, [0] * len(in_names))
        outs = []
        for a in fn.outs:
            if a.type.rank:
                o = kw.out_args[len(outs)]
                outs.append(o)
                w.line(f"{o} = np.empty({kw.size(a.type.shape)}, {NP_NAME[a.type.dtype]})")
        scalars = []
        if ranged:
            for o, a in zip(kw.scalar_out_args, [a for a in fn.outs if a.type.rank == 0]):
                w.line(f"{o} = np.empty(1, {NP_NAME[a.type.dtype]})")
                scalars.append(o)
        ws = _alloc_ws(w, kw, name, None)
        flat = []
        for n, v, b in zip(in_names, fn.ins, kw.batched or [False] * len(fn.ins)):
            if v.type.rank:
                flat.append(f"{n}.ravel()")
            else:
                flat.append(f"np.full(1, {n}, {NP_NAME[v.type.dtype]})" if b else n)
        lead = ["0", "1", "threads.FLAGS", "0"] if ranged else []     # pool_job 0: no workers to start
        call = f"{name}({', '.join(lead + flat + outs + scalars + ws + kw.dim_args + kw.size_values)})"
        w.line(call if ranged else f"r = {call}")
        res, ai, si = [], 0, 0
        for a in fn.outs:
            if a.type.rank:
                res.append(f"{outs[ai]}.reshape({shape_code(a.type.shape, kw.dim)})")
                ai += 1
            elif ranged:
                res.append(f"{scalars[si]}[0]")
                si += 1
            else:
                # Numba boxes a float32 scalar as a Python float: restore the dtype
                res.append(f"{NP_NAME[a.type.dtype]}(r[{si}])")
                si += 1
        w.returns(res)
    return w.text()


def _check_batched(fn: Func, batched: list[bool], reduce: list[str]) -> None:
    if len(batched) != len(fn.ins) or not any(batched):
        raise InternalError(f"lower_batched({fn.name}): need one flag per input ({len(fn.ins)}), "
                            "at least one batched")
    if len(reduce) != len(fn.outs) or any(r not in REDUCTIONS for r in reduce):
        raise InternalError(f"lower_batched({fn.name}): need one of {REDUCTIONS} per output")
    for a, r in zip(fn.outs, reduce):
        if r != "stack" and not a.type.is_float:
            raise InternalError(f"lower_batched({fn.name}): cannot {r} a {a.type.dtype} output")


def _rows_layout(outs: list, pooled: list[int]) -> dict[str, list[tuple[int, dict, dict]]]:
    """Per dtype, the outputs reduced over tasks that share its rows buffer, in order, each
    with where it starts and ends (per task), as size terms (coefficient per monomial of dims)."""
    groups: dict[str, list[tuple[int, dict, dict]]] = {}
    for j in pooled:
        dt = outs[j].type.dtype
        coef, mono = size_terms(outs[j].type.shape)
        start = groups[dt][-1][2] if dt in groups else {}
        end = dict(start)
        end[mono] = end.get(mono, 0) + coef
        groups.setdefault(dt, []).append((j, start, end))
    return groups


def _times_tasks(terms: dict, dim) -> str:
    """A per-task size (terms) times n_tasks, as code."""
    code = size_code(terms, dim)
    if code in ("0", "1"):
        return "0" if code == "0" else "n_tasks"
    return f"{code} * n_tasks" if code.isdigit() else f"({code}) * n_tasks"


def _size_between(start: dict, end: dict, dim) -> str:
    return size_code({m: end[m] - start.get(m, 0) for m in end}, dim)


def _tuple_code(xs: list[str]) -> str:
    return "(" + ", ".join(xs) + ("," if len(xs) == 1 else "") + ")"


def _batched_fn(kw: KernelWriter, name: str, in_names: list[str], batched: list[bool],
                reduce: list[str], suffix: str = "_batched") -> str:
    """Plain Python: each worker (a thread; the kernel releases the GIL) runs
    one contiguous range of tasks in one kernel call, in its own workspace,
    each task writing its own row of [tasks, ...] result buffers; rows are
    then combined in task order, so the result does not depend on the number
    of threads.

    The outputs reduced over tasks share one buffer per dtype, output after
    output, and one native call (runtime.task_rows.task_reduce) sums them all;
    an output kept per task ('stack') has its own, handed back as it is."""
    fn = kw.fn
    # each output's [tasks, ...] rows, under the kernel's name for it
    ranked, scalar = iter(kw.out_args), iter(kw.scalar_out_args)
    per_task = [next(ranked) if a.type.rank else next(scalar) for a in fn.outs]
    groups = _rows_layout(fn.outs, [j for j, r in enumerate(reduce) if r != "stack"])
    w = Writer()
    consts: list[str] = []      # module-level, before the entry: the sizes when no dim enters them
    with w.block(f"def {name}{suffix}({', '.join(in_names)}):"):
        first = next(j for j, b in enumerate(batched) if b)
        w.line(f"n_tasks = {in_names[first]}.shape[0]")
        kw.dims_lines(w, in_names, [1 if b else 0 for b in batched])
        sizes_of: dict[str, str] = {}
        if groups:
            w.comment("every task's outputs, one buffer per dtype, output after output (each n_tasks rows),")
            w.comment("summed in task order after the run")
        for dt, members in groups.items():
            w.line(f"rows_{dt} = np.empty({_times_tasks(members[-1][2], kw.dim)}, {NP_NAME[dt]})")
            for i, (j, start, end) in enumerate(members):
                lo = _times_tasks(start, kw.dim)
                hi = "" if i == len(members) - 1 else _times_tasks(end, kw.dim)
                w.line(f"{per_task[j]} = rows_{dt}[{'' if lo == '0' else lo}:{hi}]")
            sizes = [_size_between(start, end, kw.dim) for _, start, end in members]
            sizes_code = f"np.array({_tuple_code(sizes)}, np.int64)"
            if all(x.isdigit() for x in sizes):
                sizes_of[dt] = f"{name}{suffix}_sizes_{dt}"
                consts.append(f"{sizes_of[dt]} = {sizes_code}")
            else:
                sizes_of[dt] = sizes_code
            means = [str(reduce[j] == "mean") for j, _, _ in members]
            consts.append(f"{name}{suffix}_means_{dt} = np.array({_tuple_code(means)})")
        for j, a in enumerate(fn.outs):
            if reduce[j] == "stack":
                shape = "n_tasks" if a.type.rank == 0 else f"n_tasks * {kw.size(a.type.shape)}"
                w.line(f"{per_task[j]} = np.empty({shape}, {NP_NAME[a.type.dtype]})")
        w.line("n_workers = threads.n_workers(n_tasks)")
        ws = _alloc_ws(w, kw, name, "n_workers")
        args = []
        for n, v, b in zip(in_names, fn.ins, batched):
            if v.type.rank or b:
                w.line(f"{n} = {n}.ravel()")       # a view: the arguments are C-contiguous
            args.append(n)
        args += [o for o, a in zip(per_task, fn.outs) if a.type.rank]
        args += [o for o, a in zip(per_task, fn.outs) if not a.type.rank]
        w.line("")
        # pool_job: nonzero for the caller's share only, whose kernel starts the others'
        with w.block("def work(worker, pool_job):"):
            w.line("lo, hi = threads.share(n_tasks, n_workers, worker)")
            ws_args = [f"{x}[worker]" for x in ws]
            w.line(f"{name}(lo, hi, threads.FLAGS, pool_job, {', '.join(args + ws_args + kw.dim_args + kw.size_values)})")
        w.line("")
        w.line("threads.run(work, n_workers)")
        for dt in groups:
            w.line(f"sums_{dt} = task_reduce(rows_{dt}, n_tasks, {sizes_of[dt]}, {name}{suffix}_means_{dt})")
        where = {j: (dt, start, end) for dt, members in groups.items() for j, start, end in members}
        res = []
        for j, (a, r) in enumerate(zip(fn.outs, reduce)):
            if r == "stack":
                shape = shape_code((-1,) + a.type.shape, lambda d: "n_tasks" if d == -1 else kw.dim(d))
                res.append(f"{per_task[j]}.reshape({shape})")
                continue
            dt, start, end = where[j]
            lo = size_code(start, kw.dim)
            if a.type.rank == 0:
                res.append(f"sums_{dt}[{lo}]")
                continue
            piece = f"sums_{dt}[{'' if lo == '0' else lo}:{size_code(end, kw.dim)}]"
            res.append(f"{piece}.reshape({shape_code(a.type.shape, kw.dim)})")
        w.returns(res)
    return "".join(c + "\n" for c in consts) + ("\n" if consts else "") + w.text()
