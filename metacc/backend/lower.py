"""Lowering one IR function to a Numba task kernel.

    def NAME(inputs..., outputs..., ws_f64, ..., dims...):
        h1 = h0 + 40 * k                  # buffer offsets in the workspace, laid out once
        for i0 in range(k):               # fused loop nests
            ...
        mm_nn(...)                         # matmuls, copies, solves: compiled helpers
                                           # (matmuls and fills called by address)
        for k_1 in range(5):               # scans as loops; carries swap offsets
            ...
        return (scalar outputs,)

Every array is 1-D and addressed as (array, offset) in row-major order: inputs
and outputs arrive flattened, every intermediate lives at an offset of the
workspace (one array per dtype). That keeps the number of array variables in
the kernel tiny, which is what Numba's compile time grows with, and makes a
carried buffer's rotation a swap of two integers. Symbolic dims arrive as
integer arguments (the entry points read them from the arrays' shapes).
See plan.py for where values live and fusion.py for which equations share a
loop nest.
"""
from __future__ import annotations

import math

from metacc.backend.conv_lower import ConvLowering
from metacc.backend.fusion import FusionPlan, Group
from metacc.backend.literals import lit
from metacc.backend.naming import CodeNames, output_names
from metacc.backend.plan import BodyPlan, ScanPlan, Slots, plan_body
from metacc.backend.pointwise import ELEMENTWISE, expr
from metacc.backend.writer import Writer
from metacc.errors import InternalError
from metacc.ir.core import Atom, Eqn, Func, Lit, Var
from metacc.ir.printer import AdjointHeadings
from metacc.ir.scan import ScanLayout
from metacc.ir.types import Dim

FLAT_OK = ELEMENTWISE | {"full", "dim_size"}


def shape_code(shape: tuple[Dim, ...], dim) -> str:
    parts = [dim(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def size_terms(shape: tuple[Dim, ...]) -> tuple[int, tuple[str, ...]]:
    """Number of elements as coefficient x monomial of symbols."""
    coef, syms = 1, []
    for d in shape:
        if isinstance(d, int):
            coef *= d
        else:
            syms.append(d)
    return coef, tuple(sorted(syms))


def size_code(terms: dict[tuple[str, ...], int], dim) -> str:
    parts = []
    for mono, coef in sorted(terms.items(), key=lambda kv: (len(kv[0]), kv[0])):
        if coef == 0:
            continue
        factors = ([str(coef)] if coef != 1 or not mono else []) + [dim(s) for s in mono]
        parts.append(" * ".join(factors))
    return " + ".join(parts) or "0"


def _plus(a: str, b: str) -> str:
    if a == "0":
        return b
    if b == "0":
        return a
    return f"{a} + {b}"


def _inner_reduced(e: Eqn, domain: tuple[Dim, ...], looped: list[int]) -> int | None:
    """For a sink whose summed axes are exactly the innermost loops of its nest,
    the number of loops outside them (so each output element is complete when
    they end); None otherwise."""
    r = len(domain)
    if e.prim == "sum_to":
        lead = r - len(e.params["shape"])
        summed = set(range(lead)) | {lead + a for a, t in enumerate(e.params["shape"])
                                     if t == 1 and domain[lead + a] != 1}
    else:
        summed = {a % r for a in e.params["axes"]}
    inner = [a for a in looped if a in summed]
    if not inner:
        return None
    p = looped.index(inner[0])
    return p if inner == looped[p:] else None


class KernelWriter(ConvLowering):
    """Writes one task kernel; holds the namespace, dims and buffer locations.
    The convolution family's emit_* methods come from ConvLowering (conv_lower.py)."""

    def __init__(self, fn: Func):
        self.fn = fn
        self.names = CodeNames()
        self.helpers: set[str] = set()
        self.links: set[str] = set()               # C entry points called, "mm_nn_f32" (backend/extern.py)
        self.dims: dict[str, str] = {}
        self.slots = Slots()
        self.loc: dict[Var, tuple[str, str]] = {}
        self.fixed: dict[int, str] = {}           # fixed sizes passed as arguments (opaque_dim)
        self.w = Writer(1)
        self._span: str | None = None              # the last plain `# file:line` comment
        self._headings = AdjointHeadings()         # the last `# adjoint of:` comment
        self._flat: list[str] | None = None        # identity index of a flat loop nest
        self._rows: tuple | None = None            # (index, its code, domain) of a nest run as rows x last axis
        self.plan: BodyPlan | None = None          # set by plan_buffers

    # ---- small pieces ----
    def dim(self, d: Dim) -> str:
        return str(d) if isinstance(d, int) else self.dims[d]

    def opaque_dim(self, d: Dim) -> str:
        """A size for a helper call, passed in at run time even when it is fixed:
        LLVM inlines the helper and, seeing a constant trip count like 40,
        unrolls the loop instead of vectorising it (3.5x slower matmuls)."""
        if isinstance(d, str):
            return self.dims[d]
        if d not in self.fixed:
            self.fixed[d] = self.names.fresh(f"size{d}")
        return self.fixed[d]

    def size(self, shape) -> str:
        return size_code(dict([size_terms(shape)[::-1]]), self.dim)

    def atom(self, a: Atom) -> str:
        if isinstance(a, Lit):
            return lit(a.value, a.type.dtype)
        return self.names(a)

    def flat_index(self, shape, idx: list[str]) -> str:
        if self._flat is not None and idx == self._flat:
            return "i0"
        if self._rows is not None and idx == self._rows[0] and tuple(shape) == self._rows[2]:
            return self._rows[1]
        terms, stride = [], []
        acc: list[str] = []
        for d in reversed(shape):
            stride.append(" * ".join(acc) if acc else "1")
            if d != 1:
                acc = [self.dim(d)] + acc
        stride.reverse()
        for i, s, d in zip(idx, stride, shape):
            if i == "0" or d == 1:
                continue
            if s != "1" and not i.isidentifier():
                i = f"({i})"
            terms.append(i if s == "1" else f"{i} * {s}")
        return " + ".join(terms) or "0"

    def at(self, a: Atom, idx: list[str]) -> str:
        """a's element at index idx (a scalar reads as itself)."""
        if isinstance(a, Lit) or a.type.rank == 0:
            return self.atom(a)
        base, off = self.loc[a]
        return f"ld({base}, {_plus(off, self.flat_index(a.type.shape, idx))})"

    def store(self, v: Var, idx: list[str], code: str) -> None:
        base, off = self.loc[v]
        self.w.line(f"st({base}, {_plus(off, self.flat_index(v.type.shape, idx))}, {code})")

    def span(self, eqns) -> None:
        """Comment the code about to be written with the .meta lines it comes from; code of a
        backward sweep opens with the statement it is the adjoint of (`# adjoint of: ...`)."""
        spans = []
        for e in eqns:
            s = e.span.short() if e.span and not e.span.adjoint else None
            if s and s not in spans:
                spans.append(s)
        lines = self._headings.heading([e.span for e in eqns])
        if spans:
            text = spans[0] + "".join(", " + s.rsplit(":", 1)[1] for s in spans[1:])
            if text != self._span:
                lines.insert(0, text)
                self._span = text
        elif lines:
            self._span = None
        for text in lines:
            self.w.comment(text)

    def copy(self, dst: tuple[str, str], src: Atom) -> None:
        if src.type.rank == 0:
            self.w.line(f"st({dst[0]}, {dst[1]}, {self.atom(src)})")
            return
        base, off = self.loc[src]
        self.w.line(f"copy_n({dst[0]}, {dst[1]}, {base}, {off}, {self.size(src.type.shape)})")
        self.helpers.add("copy_n")

    # ---- the kernel ----
    def plan_buffers(self, batched: list[bool] | None = None, fusion: FusionPlan | None = None) -> BodyPlan:
        """Name the dims and inputs and plan where every value lives (plan.py), from
        `fusion` when the fusion pass has already grouped the equations; task()
        then writes the kernel from this plan."""
        fn = self.fn
        for s in fn.symbols():
            self.dims[s] = self.names.dim(s)
        in_names = [self.names(v) for v in fn.ins]
        self.batched = batched
        per_task: list[str] = []               # lines at the top of the task loop
        kernel_ins = list(in_names)
        for j, (v, n) in enumerate(zip(fn.ins, in_names)):
            if batched is not None and batched[j]:
                if v.type.rank:
                    at = self.names.fresh(f"{n}_at")
                    per_task.append(f"{at} = task * {self.size(v.type.shape)}")
                    self.loc[v] = (n, at)
                else:                          # a scalar per task: read it into the name the body uses
                    kernel_ins[j] = self.names.fresh(f"{n}_all")
                    per_task.append(f"{n} = ld({kernel_ins[j]}, task)")
            elif v.type.rank:
                self.loc[v] = (n, "0")
        # output arguments are named after what they are (g_theta_w1, loss), before the
        # plan names the body's values, so that those names stay free for them
        self._out_names = [self.names.fresh(n) if a.type.rank or batched is not None else None
                           for a, n in zip(fn.outs, output_names(fn.outs))]
        self.plan = plan_body(fn, self.names, self.slots, list(fn.outs), fusion)
        self._per_task, self._kernel_ins, self._in_names = per_task, kernel_ins, in_names
        return self.plan

    def task(self, name: str, batched: list[bool] | None = None,
             pool: bool = False) -> tuple[str, list[str], list[str]]:
        """Source of the task kernel; also its input and output argument names.

        With `batched` (a flag per input), the kernel runs a range of tasks:

            def NAME(task_lo, task_hi, inputs..., outputs..., ws..., dims...):
                (workspace layout)
                for task in range(task_lo, task_hi):
                    x_at = task * 10      # each batched input's and output's row
                    ...

        batched inputs arrive whole ([tasks, ...] flattened), every output as
        [tasks, ...] rows (scalars too: `outN[task]`), and one call runs many
        tasks, so a batch costs one Python call per worker, not one per task.

        With `pool` (CPU), a task-range kernel also takes `pool_flags, pool_job`
        after the range and starts with `release_workers(pool_flags, pool_job)`:
        the caller's kernel starts the other threads' shares once it has
        released the GIL (metacc.runtime.spin)."""
        if self.plan is None:          # not planned by the pipeline's plan pass
            self.plan_buffers(batched)
        fn, plan, batched, per_task = self.fn, self.plan, self.batched, self._per_task
        kernel_ins, in_names, out_names = self._kernel_ins, self._in_names, self._out_names
        out_args: list[str] = []
        copies: list[tuple[str, Atom]] = []
        self.scalar_outs: list[str] = []
        self.scalar_out_args: list[str] = []
        self.out_at: dict[str, str] = {}
        for j, a in enumerate(fn.outs):
            if a.type.rank == 0:
                self.scalar_outs.append(self.atom(a))
                if batched is not None:
                    self.scalar_out_args.append(out_names[j])
                continue
            if isinstance(a, Var) and plan.storage.get(a) == "dest" and not self.names.has(a):
                # computed straight into its output argument: the value takes the output's name
                self.names.bind(a, out_names[j])
                out_args.append(out_names[j])
            elif isinstance(a, Var) and plan.storage.get(a) == "dest" and self.names(a) not in out_args:
                out_args.append(self.names(a))
            else:
                dst = out_names[j]
                out_args.append(dst)
                copies.append((dst, a))
            if batched is not None and out_args[-1] not in self.out_at:
                at = self.names.fresh(f"{out_args[-1]}_at")
                per_task.append(f"{at} = task * {self.size(a.type.shape)}")
                self.out_at[out_args[-1]] = at
        self.out_args = out_args
        self._place(plan)
        body = Writer(1 if batched is None else 2)
        self.w = body
        for line in per_task:
            body.line(line)
        self.emit_body(plan)
        for dst, a in copies:
            self.copy((dst, self.out_at.get(dst, "0")), a)
        if batched is None:
            ret = ", ".join(self.scalar_outs)
            body.line(f"return ({ret}{',' if len(self.scalar_outs) == 1 else ''})")
        else:
            for dst, v in zip(self.scalar_out_args, self.scalar_outs):
                body.line(f"st({dst}, task, {v})")

        head = Writer(1)
        pool = pool and batched is not None
        if pool:
            head.line("release_workers(pool_flags, pool_job)")
        self._slot_shape: dict[str, tuple] = {}
        self.ws_dtypes = sorted({s.type.dtype for s in self.slots.items})
        if self.slots.items:
            self._layout(head)
        if batched is not None:
            head.line("for task in range(task_lo, task_hi):")
        self.dim_args = [self.dims[s] for s in fn.symbols()]
        self.size_args = [self.fixed[v] for v in sorted(self.fixed)]
        self.size_values = [str(v) for v in sorted(self.fixed)]
        args = (["task_lo", "task_hi"] if batched is not None else []) \
            + (["pool_flags", "pool_job"] if pool else []) + kernel_ins + out_args \
            + self.scalar_out_args + [f"ws_{dt}" for dt in self.ws_dtypes] + self.dim_args + self.size_args
        src = Writer()
        src.line('@njit(error_model="numpy", nogil=True, cache=CACHE)')
        src.line(f"def {name}({', '.join(args)}):")
        src.lines += head.lines + body.lines
        return src.text(), in_names, out_args

    def name_kinds(self) -> dict[str, str]:
        """What the written kernel's names hold, for outlining (metacc.backend.outline):
        "a:<dtype>" a 1-D buffer argument, "s:<dtype>" a scalar, "i" an integer argument.
        The offsets and counters of the body are ints the outliner infers itself."""
        fn, kinds = self.fn, {}
        for j, (v, n) in enumerate(zip(fn.ins, self._kernel_ins)):
            kinds[n] = f"a:{v.type.dtype}" if v.type.rank or n != self._in_names[j] else f"s:{v.type.dtype}"
            if n != self._in_names[j]:              # a batched scalar, read per task into its name
                kinds[self._in_names[j]] = f"s:{v.type.dtype}"
        tensors = [a for a in fn.outs if a.type.rank]
        for name, a in zip(self.out_args, tensors):
            kinds[name] = f"a:{a.type.dtype}"
        for name, a in zip(self.scalar_out_args, [a for a in fn.outs if a.type.rank == 0]):
            kinds[name] = f"a:{a.type.dtype}"
        for dt in self.ws_dtypes:
            kinds[f"ws_{dt}"] = f"a:{dt}"
        for name in ["task_lo", "task_hi"] + self.dim_args + self.size_args:
            kinds[name] = "i"

        def scalars(plan: BodyPlan) -> None:
            for v, kind in plan.storage.items():
                if kind == "scalar" and self.names.has(v):
                    kinds.setdefault(self.names(v), f"s:{v.type.dtype}")
            for sp in plan.scans.values():
                scalars(sp.body)
        scalars(self.plan)
        return kinds

    def _layout(self, head: Writer) -> None:
        """The workspace layout as one table: each buffer's offset, fixed for the whole call.

        Each buffer lies right after the previous one of its dtype: one assignment per
        buffer and the fewest operations (a running `at += size` is a variable Numba sees
        assigned a hundred times; closed forms repeat the products). Buffers of a fixed
        size come first, at literal offsets: Numba types and lowers `b = 1240` about five
        times faster than `b = a + 40` (Conv4's meta-gradient has 341 such buffers). The
        assignments sit several to a row, in aligned columns; the same statements one per
        line would open a kernel with up to a hundred lines of arithmetic."""
        by_dtype: dict[str, list[str]] = {}
        fixed = [s for s in self.slots.items if all(isinstance(d, int) for d in s.type.shape)]
        is_fixed = {id(s) for s in fixed}
        end: dict[str, int] = {}                # where the fixed-size buffers of a dtype end
        for s in fixed:
            dt = s.type.dtype
            by_dtype.setdefault(dt, []).append(f"{s.name} = {end.get(dt, 0)}")
            end[dt] = end.get(dt, 0) + math.prod(s.type.shape)
        last: dict[str, str] = {}
        for s in self.slots.items:
            if id(s) in is_fixed:
                continue
            dt = s.type.dtype
            at = _plus(last[dt], self.size(self._slot_shape[last[dt]])) if dt in last else str(end.get(dt, 0))
            by_dtype.setdefault(dt, []).append(f"{s.name} = {at}")
            last[dt] = s.name
            self._slot_shape[s.name] = s.type.shape
        head.comment("workspace layout: where each buffer starts in ws_<dtype> (in elements), fixed for")
        head.comment("the whole call; a buffer starts where the one before it (of its dtype) ends")
        room = 116 - 4 * head.depth
        for dt, cells in by_dtype.items():
            head.comment(f"ws_{dt}: {len(cells)} buffer{'s' if len(cells) > 1 else ''}")
            # aligned columns as wide as the median cell (a wider one takes two), as many
            # to a row as fit
            unit = sorted(len(c) + 2 for c in cells)[len(cells) // 2]
            row = ""
            for c in cells:
                if row and len(row) + len(c) > room:
                    head.line(row.rstrip()[:-1])
                    row = ""
                row += f"{c};".ljust(-(-(len(c) + 2) // unit) * unit)
            head.line(row.rstrip()[:-1])

    def _place(self, plan: BodyPlan) -> None:
        """Locations of a body's slot and dest values (others are placed as they are emitted)."""
        for v, kind in plan.storage.items():
            if kind == "slot":
                self.loc[v] = (f"ws_{v.type.dtype}", self.names(v))
            elif kind == "dest" and plan.fn is self.fn:
                self.loc[v] = (self.names(v), self.out_at.get(self.names(v), "0"))
        for sp in plan.scans.values():
            self._place(sp.body)

    def dims_lines(self, w: Writer, names: list[str], offset: list[int]) -> None:
        """Bind each symbolic dim from the first input that has it (axis shifted by offset[j],
        1 where the input carries a leading task axis). Shared by the CPU and CUDA entries."""
        for s in self.fn.symbols():
            j, axis = next((j, i) for j, v in enumerate(self.fn.ins) for i, d in enumerate(v.type.shape) if d == s)
            w.line(f"{self.dims[s]} = {names[j]}.shape[{axis + offset[j]}]")

    def ws_function(self, name: str, per: str = "per dtype") -> str:
        """`def NAME_ws(dims...)`: the workspace elements `per` dtype, as the entries size it."""
        w = Writer()
        sizes = self.ws_sizes()
        with w.block(f"def {name}_ws({', '.join(self.dim_args)}):"):
            w.line(f'"""Workspace elements {per} ({", ".join(self.ws_dtypes) or "none"})."""')
            w.line(f"return ({''.join(sizes[dt] + ', ' for dt in self.ws_dtypes)})")
        return w.text()

    def ws_sizes(self) -> dict[str, str]:
        """Workspace size per dtype as code over the dims locals."""
        out = {}
        for dt in self.ws_dtypes:
            terms: dict[tuple[str, ...], int] = {}
            for s in self.slots.items:
                if s.type.dtype == dt:
                    coef, mono = size_terms(s.type.shape)
                    terms[mono] = terms.get(mono, 0) + coef
            out[dt] = size_code(terms, self.dim)
        return out

    # ---- bodies ----
    def emit_body(self, plan: BodyPlan) -> None:
        fusion = plan.fusion
        for e in plan.fn.eqns:
            if e in fusion.absorbed:
                continue
            g = fusion.group_of.get(e)
            if g is not None:
                if e is g.members[-1]:
                    self.emit_group(g, plan)
                continue
            self.span([e])
            emit = getattr(self, f"emit_{e.prim}", None)
            if emit is None:
                raise InternalError(f"the Numba backend cannot lower '{e.prim}' equations"
                                    + (" (run metacc.passes.lower_cg first)" if e.prim == "cg_solve" else ""))
            emit(e, plan)

    def _flat_ok(self, g: Group) -> bool:
        """Can the nest run as one loop over all elements (every read at the same element)?"""
        for e in g.members:
            if e in g.sinks:
                if e.prim == "sum_to" and tuple(e.params["shape"]) != g.domain:
                    return False
                if e.prim != "sum_to" and e.outs[0].type.rank != 0:
                    return False
                continue
            if e.prim not in FLAT_OK:
                return False
            for a in e.ins:
                if isinstance(a, Var) and a.type.rank and a.type.shape != g.domain:
                    return False
        return True

    def _rows_ok(self, g: Group) -> bool:
        """Can a nest of rank 3 and up run as two loops, rows (every axis but the last) x the
        last axis? Yes when every member is elementwise and reads either whole-domain values
        or values that vary along the last axis only (a bias [c]), and every sink sums into
        the last axis or into a scalar. A Conv4 kernel is full of [n, h, w, c] nests of bias,
        relu and their adjoints; four loops each made its build minutes long."""
        dom = g.domain
        if len(dom) < 3 or dom[-1] == 1:
            return False

        def along_last(shape) -> bool:
            return all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, dom[-1]))
        for e in g.members:
            if e in g.sinks:
                v = e.outs[0]
                if v.type.rank == 0 and e.prim in ("reduce_sum", "reduce_max"):
                    continue
                if e.prim == "sum_to" and along_last(tuple(e.params["shape"])):
                    continue
                return False
            if e.prim not in FLAT_OK:
                return False
            for a in e.ins:
                if isinstance(a, Var) and a.type.rank and a.type.shape != dom and not along_last(a.type.shape):
                    return False
        return True

    def emit_group(self, g: Group, plan: BodyPlan) -> None:
        self.span(g.members)
        w = self.w
        r = len(g.domain)
        # an axis of length 1 gets no loop (Numba spends as long on a loop of one
        # iteration as on any other)
        idx = ["0" if d == 1 else f"i{a}" for a, d in enumerate(g.domain)]
        looped = [a for a, d in enumerate(g.domain) if d != 1]
        wide: dict[Eqn, str] = {}
        rows: dict[Eqn, tuple[int, str]] = {}     # sink -> (loops outside its sum, accumulator)
        # in program order: g.sinks is a set of identity-hashed equations, whose order
        # would change with memory addresses from one run to the next
        for s in [m for m in g.members if m in g.sinks]:
            v = s.outs[0]
            init = lit(0, v.type.dtype) if s.prim != "reduce_max" else lit(float("-inf"), v.type.dtype)
            if v.type.rank == 0 and s.prim != "reduce_max" and v.type.dtype == "f32":
                # an f32 total accumulates in f64: summed in f32 one element after
                # another, sum(ones(2^25)) stops at 2^24. The f64 running sum errs
                # by at most n * 2^-53 of sum|x|, far inside NumPy's pairwise f32
                # bound, and costs nothing: the loop is bound by the latency of
                # the add chain, the same in f64, and the widening is off it
                wide[s] = self.names.fresh(self.names(v) + "_acc")
                # (the one deliberate float64 in float32 code: np.float64(0), never a bare 0.0)
                w.line(f"{wide[s]} = np.float64(0)")
            elif v.type.rank == 0:
                w.line(f"{self.names(v)} = {init}")
            elif s.prim != "reduce_max" and v.type.dtype == "f32" and \
                    (p := _inner_reduced(s, g.domain, looped)) is not None:
                # each element is a sum over the innermost loops (a row sum): an f64
                # local per element, written once when its loops end
                rows[s] = (p, self.names.fresh(self.names(v) + "_acc"))
            else:
                base, off = self.loc[v]
                w.line(f"fill_n({base}, {off}, {self.size(v.type.shape)}, {init})")
                self.helpers.add("fill_n")
                self.links.add(f"fill_n_{v.type.dtype}")
        depth = w.depth
        # image-shaped nests (rank 3 and up: [n, h, w, c]) loop to sizes passed in at run
        # time: with constant trip counts LLVM unrolls and re-vectorises every level of
        # every nest, and a Conv4 MAML kernel spent minutes there
        bound = self.opaque_dim if r >= 3 else self.dim
        flat = len(looped) > 1 and self._flat_ok(g)
        as_rows = not flat and not rows and self._rows_ok(g)
        if flat:
            self._flat = idx
            w.line(f"for i0 in range({self.size(g.domain)}):")
            w.depth += 1
        elif as_rows:
            last = f"i{r - 1}"
            idx = ["i0"] + ["0"] * (r - 2) + [last]
            self._rows = (idx, f"i0 * {self.dim(g.domain[-1])} + {last}", tuple(g.domain))
            w.line(f"for i0 in range({self.size(g.domain[:-1])}):")
            w.line(f"    for {last} in range({bound(g.domain[-1])}):")
            w.depth += 2
        else:
            for j, a in enumerate(looped):
                for s, (p, acc) in rows.items():
                    if p == j:
                        w.line(f"{acc} = np.float64(0)")
                w.line(f"for i{a} in range({bound(g.domain[a])}):")
                w.depth += 1
        local: dict[Var, str] = {}
        cur: Eqn | None = None

        def read(j, at_idx):
            a = cur.ins[j]
            if isinstance(a, Var) and a in local:
                return local[a]
            return self.at(a, at_idx)

        for cur in g.members:
            if cur in g.sinks:
                self._sink(cur, g, idx, local, wide.get(cur) or rows.get(cur, (0, None))[1])
                continue
            v = cur.outs[0]
            code = expr(cur, idx, read, self.dim, self.helpers)
            kind = plan.storage[v]
            if r == 0 or kind == "local":
                w.line(f"{self.names(v)} = {code}")
                local[v] = self.names(v)
            elif plan.fusion.in_group_users.get(v, 0):
                t = self.names.fresh(self.names(v) + "_e")
                w.line(f"{t} = {code}")
                self.store(v, idx, t)
                local[v] = t
            else:
                self.store(v, idx, code)
        for j in range(len(looped) - 1, -1, -1):
            for s, (p, acc) in rows.items():
                if p == j:
                    w.depth = depth + j
                    self.store(s.outs[0], self._sink_index(s, g, idx), f"np.float32({acc})")
        w.depth = depth
        self._flat = None
        self._rows = None
        for s, acc in wide.items():
            w.line(f"{self.names(s.outs[0])} = np.float32({acc})")

    def _sink(self, e: Eqn, g: Group, idx: list[str], local: dict, acc: str | None = None) -> None:
        x, v = e.ins[0], e.outs[0]
        val = local[x] if isinstance(x, Var) and x in local else self.at(x, idx)
        if acc is not None:
            self.w.line(f"{acc} += {val}")
        elif v.type.rank == 0:
            tgt = self.names(v)
            self.w.line(f"{tgt} = np.maximum({tgt}, {val})" if e.prim == "reduce_max" else f"{tgt} += {val}")
        else:
            oidx = self._sink_index(e, g, idx)
            cur = self.at(v, oidx)
            self.store(v, oidx, f"np.maximum({cur}, {val})" if e.prim == "reduce_max" else f"{cur} + {val}")

    @staticmethod
    def _sink_index(e: Eqn, g: Group, idx: list[str]) -> list[str]:
        """The index of a sink's output element that the domain element idx adds to."""
        r = len(g.domain)
        if e.prim == "sum_to":
            target = e.params["shape"]
            lead = r - len(target)
            return ["0" if t == 1 and g.domain[lead + a] != 1 else idx[lead + a] for a, t in enumerate(target)]
        axes = {a % r for a in e.params["axes"]} if r else set()
        if e.params.get("keepdims"):
            return ["0" if a in axes else idx[a] for a in range(r)]
        return [idx[a] for a in range(r) if a not in axes]

    # ---- standalone kernels ----
    def _operand(self, a: Var, plan: BodyPlan) -> tuple[tuple[str, str], bool]:
        """(location, transposed): a matmul operand, reading through an absorbed transpose."""
        for t, (src, _) in plan.fusion.absorbed.items():
            if t.outs[0] is a:
                return self.loc[src], True
        return self.loc[a], False

    def emit_matmul(self, e: Eqn, plan: BodyPlan) -> None:
        a, b = e.ins
        (al, at), (bl, bt) = self._operand(a, plan), self._operand(b, plan)
        m, kk = (self.opaque_dim(d) for d in a.type.shape)
        n = self.opaque_dim(b.type.shape[1])
        helper = f"mm_{'t' if at else 'n'}{'t' if bt else 'n'}"
        self.helpers.add(helper)
        self.links.add(f"{helper}_{e.outs[0].type.dtype}")
        ol = self.loc[e.outs[0]]
        self.w.line(f"{helper}({al[0]}, {al[1]}, {bl[0]}, {bl[1]}, {ol[0]}, {ol[1]}, {m}, {kk}, {n})")

    def emit_solve(self, e: Eqn, plan: BodyPlan) -> None:
        lu, piv = plan.lu[e]
        self.helpers.add("lu_solve")
        a, b = (self.loc[x] for x in e.ins)
        o = self.loc[e.outs[0]]
        n, m = (self.opaque_dim(d) for d in e.ins[1].type.shape)
        dt = e.ins[0].type.dtype
        self.w.line(f"lu_solve({a[0]}, {a[1]}, {b[0]}, {b[1]}, {o[0]}, {o[1]}, ws_{dt}, {lu}, ws_i64, {piv}, {n}, {m})")

    def emit_argmax(self, e: Eqn, plan: BodyPlan) -> None:
        x, v = e.ins[0], e.outs[0]
        r = x.type.rank
        axis = e.params["axis"] % r
        w = self.w
        depth = w.depth
        oidx = []
        for a in range(r):
            if a != axis:
                w.line(f"for i{a} in range({self.dim(x.type.shape[a])}):")
                w.depth += 1
                oidx.append(f"i{a}")
        best, bi, t, val = (self.names.fresh(s) for s in ("best", "best_i", "t", "val"))

        def xat(i):
            return self.at(x, [i if a == axis else f"i{a}" for a in range(r)])
        w.line(f"{best} = {xat('0')}")
        w.line(f"{bi} = 0")
        with w.block(f"for {t} in range(1, {self.dim(x.type.shape[axis])}):"):
            w.line(f"{val} = {xat(t)}")
            # first maximum wins; a NaN is the maximum, as in np.argmax
            with w.block(f"if {val} > {best} or ({val} != {val} and {best} == {best}):"):
                w.line(f"{best} = {val}")
                w.line(f"{bi} = {t}")
        if v.type.rank == 0:
            w.line(f"{self.names(v)} = {bi}")
        else:
            self.store(v, oidx, bi)
        w.depth = depth

    def emit_reshape(self, e: Eqn, plan: BodyPlan) -> None:
        x, v = e.ins[0], e.outs[0]
        if v.type.rank == 0:
            self.w.line(f"{self.names(v)} = {self.at(x, ['0'] * x.type.rank)}")
        elif x.type.rank == 0:
            self.store(v, ["0"] * v.type.rank, self.atom(x))
        elif plan.storage[v] in ("slot", "dest") and v in self.loc:
            self.copy(self.loc[v], x)
        else:
            self.loc[v] = self.loc[x]       # same elements, same order: no code at all

    def emit_scan(self, e: Eqn, plan: BodyPlan) -> None:
        sp: ScanPlan = plan.scans[e]
        body = sp.body.fn
        layout, length = ScanLayout.of(e), e.params["length"]
        w = self.w
        consts, inits, xs = layout.split_ins(e.ins)
        b_consts, b_carry, b_xs = layout.split_ins(body.ins)
        carry_res, ys_out = layout.split_outs(e.outs)
        carry_outs, ys_outs = layout.split_outs(body.outs)
        w.comment(f"scan: {length} steps{' in reverse' if e.params.get('reverse') else ''}")
        for bv, a in zip(b_consts, consts):
            if isinstance(a, Var):
                self.names.bind(bv, self.names(a))
                if a.type.rank:
                    self.loc[bv] = self.loc[a]
            else:
                w.line(f"{self.names(bv)} = {self.atom(a)}")
        for i, (c, init) in enumerate(zip(b_carry, inits)):
            cn, mode = self.names(c), sp.modes[i]
            if c.type.rank:
                self.loc[c] = (f"ws_{c.type.dtype}", cn)
            if mode in ("swap", "stage"):
                # the carry starts in buf0; iteration j reads buf[j % 2] and writes buf[1 - j % 2]
                self.copy((f"ws_{c.type.dtype}", sp.spare[i][0]), init)
            elif mode == "keep":
                if c.type.rank:
                    base, off = self.loc[init]
                    w.line(f"{cn} = {off}")
                    self.loc[c] = (base, cn)
                else:
                    w.line(f"{cn} = {self.atom(init)}")
            elif mode == "rebind":
                # the carry only ever points at ys rows in the workspace: start from a copy
                w.line(f"{cn} = {sp.spare[i][0]}")
                self.copy(self.loc[c], init)
            else:
                w.line(f"{cn} = {self.atom(init)}")
        if not ys_out and all(m == "keep" for m in sp.modes):
            # every carry comes out as it went in and nothing is stacked: the body's
            # work can reach nothing, so it is not run
            w.comment("the loop leaves its carries unchanged and stacks nothing: skipped")
            for v, c in zip(carry_res, b_carry):
                w.line(f"{self.names(v)} = {self.names(c)}")
                if c.type.rank:
                    self.loc[v] = (self.loc[c][0], self.names(v))
            return
        k = self.names.fresh("k")
        rng = f"range({length} - 1, -1, -1)" if e.params.get("reverse") else f"range({length})"
        depth = w.depth
        w.line(f"for {k} in {rng}:")
        w.depth += 1
        rotating = [i for i, m in enumerate(sp.modes) if m in ("swap", "stage")]
        if rotating:
            # Each of the two buffers of a rotating carry is an offset assigned once per
            # iteration, from the iteration's parity, not swapped at its end: a swapped local
            # is a variable defined twice, and Numba's SSA pass costs (variables defined more
            # than once) x (statements of the kernel); a checkpointed K = 100 kernel spent a
            # third of its build there
            flip = self.names.fresh("flip")
            w.line(f"{flip} = {f'({length} - 1 - {k})' if e.params.get('reverse') else k} % 2")
            for i in rotating:
                c, (buf0, buf1) = b_carry[i], sp.spare[i]
                cn = self.names(c)
                other = self.names(carry_outs[i]) if sp.modes[i] == "swap" else self._spare_name(c)
                w.line(f"{cn} = {buf0} + {flip} * ({buf1} - {buf0})")
                w.line(f"{other} = {buf0} + {buf1} - {cn}")
        for bv, x in zip(b_xs, xs):
            base, off = self.loc[x]
            row = self.size(bv.type.shape)
            if bv.type.rank == 0:
                w.line(f"{self.names(bv)} = ld({base}, {_plus(off, k)})")
            else:
                w.line(f"{self.names(bv)} = {_plus(off, f'{k} * {row}')}")
                self.loc[bv] = (base, self.names(bv))
        dest_rows = set()
        for j, y in enumerate(ys_outs):
            if isinstance(y, Var) and sp.body.storage.get(y) == "dest" and y not in dest_rows:
                dest_rows.add(y)
                base, off = self.loc[ys_out[j]]
                w.line(f"{self.names(y)} = {_plus(off, f'{k} * {self.size(y.type.shape)}')}")
                self.loc[y] = (base, self.names(y))
        saved_span, self._span = self._span, None
        saved_headings, self._headings = self._headings, AdjointHeadings()
        self.emit_body(sp.body)
        self._span, self._headings = saved_span, saved_headings
        seen = set()
        for j, y in enumerate(ys_outs):
            if isinstance(y, Var) and y in dest_rows and y not in seen:
                seen.add(y)
                continue
            base, off = self.loc[ys_out[j]]
            self.copy((base, _plus(off, f"{k} * {self.size(y.type.shape)}")), y)
        scalars_c, scalars_o = [], []
        for i, (c, o) in enumerate(zip(b_carry, carry_outs)):
            if sp.modes[i] == "stage":
                self.copy(self.loc_of_spare(c), o)
        for i, (c, o) in enumerate(zip(b_carry, carry_outs)):
            cn, mode = self.names(c), sp.modes[i]
            # rotating (swap, stage) carries are placed at the top of the next iteration, and
            # a kept one stays where it is: only a rebound carry and the scalars move here
            if mode == "rebind":
                w.line(f"{cn} = {self.names(o)}")
            elif mode not in ("swap", "stage", "keep"):
                scalars_c.append(cn)
                scalars_o.append(self.atom(o))
        if scalars_c:
            # in brackets, so that a long rotation can be folded (the same statement to Python)
            w.line(f"({', '.join(scalars_c)}) = ({', '.join(scalars_o)})" if len(scalars_c) > 1
                   else f"{scalars_c[0]} = {scalars_o[0]}")
        w.depth = depth
        for i, (v, c) in enumerate(zip(carry_res, b_carry)):
            if sp.modes[i] in ("swap", "stage"):
                # after `length` iterations the carry is in buf[length % 2]
                w.line(f"{self.names(v)} = {sp.spare[i][length % 2]}")
            else:
                w.line(f"{self.names(v)} = {self.names(c)}")
            if c.type.rank:
                base = self.loc[c][0] if sp.modes[i] == "keep" else f"ws_{c.type.dtype}"
                self.loc[v] = (base, self.names(v))

    def _spare_name(self, c: Var) -> str:
        if not hasattr(self, "_spares"):
            self._spares: dict[Var, str] = {}
        if c not in self._spares:
            self._spares[c] = self.names.fresh(self.names(c) + "_next")
        return self._spares[c]

    def loc_of_spare(self, c: Var) -> tuple[str, str]:
        return (f"ws_{c.type.dtype}", self._spare_name(c))
