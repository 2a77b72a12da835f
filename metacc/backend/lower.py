"""Lowering one IR function to the body of a Numba kernel.

`KernelWriter.task(fn)` writes

    def NAME(inputs..., outputs..., ws_f64, ...):
        n = x.shape[0]                      # symbolic dims, read from the inputs
        h = ws_f64[at_f64:...].reshape(...) # every buffer, carved once per call
        ...                                 # fused loop nests, matmuls, scans as loops
        return (scalar outputs,)

Array outputs are written into the output arguments (computed in place where
the value is produced by a loop this kernel writes), scalar outputs are
returned. Scan bodies are inlined as loops; their buffers are carved at entry
too, so no iteration allocates. See plan.py for where values live and
fusion.py for which equations share a loop nest.
"""
from __future__ import annotations

from metacc.backend.fusion import Group
from metacc.backend.literals import NP_NAME, lit
from metacc.backend.naming import CodeNames
from metacc.backend.plan import BodyPlan, ScanPlan, Slots, plan_body
from metacc.backend.pointwise import expr
from metacc.backend.writer import Writer
from metacc.ir.core import Atom, Eqn, Func, Lit, Var
from metacc.ir.types import Dim


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


class KernelWriter:
    """Writes one task kernel; holds the namespace, dims and helpers it needs."""

    def __init__(self, fn: Func):
        self.fn = fn
        self.names = CodeNames()
        self.helpers: set[str] = set()
        self.dims: dict[str, str] = {}
        self.slots = Slots()
        self.w = Writer(1)
        self._span: str | None = None

    # ---- small pieces ----
    def dim(self, d: Dim) -> str:
        return str(d) if isinstance(d, int) else self.dims[d]

    def atom(self, a: Atom) -> str:
        if isinstance(a, Lit):
            return lit(a.value, a.type.dtype)
        return self.names(a)

    def at(self, a: Atom, idx: list[str]) -> str:
        """a (held in memory or a scalar) at index idx."""
        if isinstance(a, Lit) or a.type.rank == 0:
            return self.atom(a)
        return f"{self.names(a)}[{', '.join(idx)}]"

    def span(self, eqns) -> None:
        spans = []
        for e in eqns:
            s = e.span.short() if e.span else None
            if s and s not in spans:
                spans.append(s)
        if not spans:
            return
        text = spans[0] if len(spans) == 1 else spans[0] + ", " + ", ".join(s.rsplit(":", 1)[1] for s in spans[1:])
        if text != self._span:
            self.w.comment(text)
            self._span = text

    def copy(self, dst: str, src: Atom, rank: int) -> None:
        self.w.line(f"{dst}[...] = {self.atom(src)}" if rank else f"{dst} = {self.atom(src)}")

    # ---- the kernel ----
    def task(self, name: str, out_names: list[str] | None = None) -> tuple[str, list[str], list[str]]:
        """Source of the task kernel; also its argument names and workspace dtypes."""
        fn = self.fn
        for s in fn.symbols():
            self.dims[s] = self.names.dim(s)
        in_names = [self.names(v) for v in fn.ins]
        plan = plan_body(fn, self.names, self.slots, list(fn.outs))
        out_args: list[str] = []
        copies: list[tuple[str, Atom, int]] = []
        self.scalar_outs: list[str] = []
        for j, a in enumerate(fn.outs):
            if a.type.rank == 0:
                self.scalar_outs.append(self.atom(a))
            elif isinstance(a, Var) and plan.storage.get(a) == "dest" and self.names(a) not in out_args:
                out_args.append(self.names(a))
            else:
                dst = self.names.fresh(f"out{j}")
                out_args.append(dst)
                copies.append((dst, a, a.type.rank))
        self.out_args = out_args
        # sizes
        body = Writer(1)
        self.w = body
        self.emit_body(plan)
        for dst, a, rank in copies:
            self.copy(dst, a, rank)
        ret = ", ".join(self.scalar_outs)
        body.line(f"return ({ret}{',' if len(self.scalar_outs) == 1 else ''})")

        head = Writer(1)
        for s in fn.symbols():
            v, axis = next((v, i) for v in fn.ins for i, d in enumerate(v.type.shape) if d == s)
            head.line(f"{self.dims[s]} = {self.names(v)}.shape[{axis}]")
        ws_dtypes = sorted({s.type.dtype for s in self.slots.items})
        if self.slots.items:
            head.comment("buffers: carved from the workspace once per call, reused by every iteration")
            for dt in ws_dtypes:
                head.line(f"at_{dt} = 0")
            for s in self.slots.items:
                dt = s.type.dtype
                size = size_code(dict([size_terms(s.type.shape)[::-1]]), self.dim)
                view = f"ws_{dt}[at_{dt}:at_{dt} + {size}]"
                if s.type.rank != 1:
                    view += f".reshape({shape_code(s.type.shape, self.dim)})"
                head.line(f"{s.name} = {view}")
                head.line(f"at_{dt} += {size}")
        args = in_names + out_args + [f"ws_{dt}" for dt in ws_dtypes]
        src = Writer()
        src.line('@njit(error_model="numpy", cache=CACHE)')
        src.line(f"def {name}({', '.join(args)}):")
        src.lines += head.lines + body.lines
        self.ws_dtypes = ws_dtypes
        return src.text(), in_names, out_args

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
        self._plan = plan
        for e in plan.fn.eqns:
            if e in fusion.absorbed:
                continue
            g = fusion.group_of.get(e)
            if g is not None:
                if e is g.members[-1]:
                    self.emit_group(g, plan)
                continue
            self.span([e])
            getattr(self, f"emit_{e.prim}")(e, plan)

    def emit_group(self, g: Group, plan: BodyPlan) -> None:
        self.span(g.members)
        w = self.w
        r = len(g.domain)
        idx = [f"i{a}" for a in range(r)]
        for s in g.sinks:
            v = s.outs[0]
            init = lit(0, v.type.dtype) if s.prim != "reduce_max" else lit(float("-inf"), v.type.dtype)
            w.line(f"{self.names(v)} = {init}" if v.type.rank == 0 else f"{self.names(v)}[...] = {init}")
        depth = w.depth
        for a in range(r):
            w.line(f"for i{a} in range({self.dim(g.domain[a])}):")
            w.depth += 1
        local: dict[Var, str] = {}

        def read(j, at_idx, e=None):
            a = cur.ins[j]
            if isinstance(a, Var) and a in local:
                return local[a]
            return self.at(a, at_idx)

        for cur in g.members:
            if cur in g.sinks:
                self._sink(cur, g, idx, local)
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
                w.line(f"{self.names(v)}[{', '.join(idx)}] = {t}")
                local[v] = t
            else:
                w.line(f"{self.names(v)}[{', '.join(idx)}] = {code}")
        w.depth = depth

    def _sink(self, e: Eqn, g: Group, idx: list[str], local: dict) -> None:
        x, v = e.ins[0], e.outs[0]
        val = local[x] if isinstance(x, Var) and x in local else self.at(x, idx)
        r = len(g.domain)
        if e.prim == "sum_to":
            target = e.params["shape"]
            lead = r - len(target)
            oidx = ["0" if t == 1 and g.domain[lead + a] != 1 else idx[lead + a] for a, t in enumerate(target)]
        else:
            axes = {a % r for a in e.params["axes"]} if r else set()
            if e.params.get("keepdims"):
                oidx = ["0" if a in axes else idx[a] for a in range(r)]
            else:
                oidx = [idx[a] for a in range(r) if a not in axes]
        tgt = self.names(v) + (f"[{', '.join(oidx)}]" if oidx else "")
        if e.prim == "reduce_max":
            self.w.line(f"{tgt} = np.maximum({tgt}, {val})")
        else:
            self.w.line(f"{tgt} += {val}")

    # ---- standalone kernels ----
    def _operand(self, a: Var, plan: BodyPlan) -> tuple[str, bool]:
        """(name, transposed): a matmul operand, reading through an absorbed transpose."""
        for t, (src, _) in plan.fusion.absorbed.items():
            if t.outs[0] is a:
                return self.names(src), True
        return self.names(a), False

    def emit_matmul(self, e: Eqn, plan: BodyPlan) -> None:
        a, b = e.ins
        out = self.names(e.outs[0])
        (an, at), (bn, bt) = self._operand(a, plan), self._operand(b, plan)
        m, kk = (self.dim(d) for d in a.type.shape)
        n = self.dim(b.type.shape[1])
        zero = lit(0, e.outs[0].type.dtype)
        A = (lambda i, q: f"{an}[{q}, {i}]") if at else (lambda i, q: f"{an}[{i}, {q}]")
        w = self.w
        if bt:          # B = W^T: rows of A against rows of W, a dot product per element
            Bt = lambda q, j: f"{bn}[{j}, {q}]"
            with w.block(f"for i0 in range({m}):"):
                with w.block(f"for i1 in range({n}):"):
                    s = self.names.fresh("acc")
                    w.line(f"{s} = {zero}")
                    with w.block(f"for i2 in range({kk}):"):
                        w.line(f"{s} += {A('i0', 'i2')} * {Bt('i2', 'i1')}")
                    w.line(f"{out}[i0, i1] = {s}")
            return
        # B in row-major: broadcast one element of A along a row of B (vectorises over j)
        s = self.names.fresh("a_iq")
        w.line(f"{out}[...] = {zero}")
        outer, inner = ("i2", "i0") if at else ("i0", "i2")
        bounds = {"i0": m, "i2": kk}
        with w.block(f"for {outer} in range({bounds[outer]}):"):
            with w.block(f"for {inner} in range({bounds[inner]}):"):
                w.line(f"{s} = {A('i0', 'i2')}")
                with w.block(f"for i1 in range({n}):"):
                    w.line(f"{out}[i0, i1] += {s} * {bn}[i2, i1]")

    def emit_solve(self, e: Eqn, plan: BodyPlan) -> None:
        lu, piv = plan.lu[e]
        self.helpers.add("lu_solve")
        out = self.names(e.outs[0])
        self.w.line(f"{lu}[...] = {self.atom(e.ins[0])}")
        self.w.line(f"{out}[...] = {self.atom(e.ins[1])}")
        self.w.line(f"lu_solve({lu}, {out}, {piv})")

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
        tgt = self.names(v) + (f"[{', '.join(oidx)}]" if oidx else "")
        w.line(f"{tgt} = {bi}")
        w.depth = depth

    def emit_reshape(self, e: Eqn, plan: BodyPlan) -> None:
        x, v = e.ins[0], e.outs[0]
        name = self.names(v)
        if v.type.rank == 0:
            self.w.line(f"{name} = {self.at(x, ['0'] * x.type.rank)}")
        elif x.type.rank == 0:
            self.w.line(f"{name}[{', '.join(['0'] * v.type.rank)}] = {self.atom(x)}")
        else:
            self.w.line(f"{name} = {self.names(x)}.reshape({shape_code(v.type.shape, self.dim)})")

    def emit_scan(self, e: Eqn, plan: BodyPlan) -> None:
        sp: ScanPlan = plan.scans[e]
        body = sp.body.fn
        nc, nk, length = e.params["n_consts"], e.params["n_carry"], e.params["length"]
        w = self.w
        consts, inits, xs = e.ins[:nc], e.ins[nc:nc + nk], e.ins[nc + nk:]
        b_consts, b_carry, b_xs = body.ins[:nc], body.ins[nc:nc + nk], body.ins[nc + nk:]
        w.comment(f"scan: {length} steps{' in reverse' if e.params.get('reverse') else ''}")
        for bv, a in zip(b_consts, consts):
            if isinstance(a, Var):
                self.names.bind(bv, self.names(a))
            else:
                w.line(f"{self.names(bv)} = {self.atom(a)}")
        carry_outs = body.outs[:nk]
        for i, (c, init) in enumerate(zip(b_carry, inits)):
            cn, mode = self.names(c), sp.modes[i]
            if mode in ("swap", "stage"):
                buf0, buf1 = sp.spare[i]
                w.line(f"{cn} = {buf0}")
                w.line(f"{cn}[...] = {self.atom(init)}")
                other = self.names(carry_outs[i]) if mode == "swap" else self._spare_name(c)
                w.line(f"{other} = {buf1}")
            else:
                w.line(f"{cn} = {self.atom(init)}")
        k = self.names.fresh("k")
        rng = f"range({length} - 1, -1, -1)" if e.params.get("reverse") else f"range({length})"
        ys_bufs = [self.names(v) for v in e.outs[nk:]]
        depth = w.depth
        w.line(f"for {k} in {rng}:")
        w.depth += 1
        for bv, x in zip(b_xs, xs):
            w.line(f"{self.names(bv)} = {self.names(x)}[{k}]")
        ys_outs = body.outs[nk:]
        dest_rows = set()
        for j, y in enumerate(ys_outs):
            if isinstance(y, Var) and sp.body.storage.get(y) == "dest" and y not in dest_rows:
                dest_rows.add(y)
                w.line(f"{self.names(y)} = {ys_bufs[j]}[{k}]")
        saved_span, self._span = self._span, None
        self.emit_body(sp.body)
        self._plan = plan
        self._span = saved_span
        seen = set()
        for j, y in enumerate(ys_outs):
            if isinstance(y, Var) and y in dest_rows and y not in seen:
                seen.add(y)
                continue
            if y.type.rank == 0:
                w.line(f"{ys_bufs[j]}[{k}] = {self.atom(y)}")
            else:
                w.line(f"{ys_bufs[j]}[{k}][...] = {self.atom(y)}")
        scalars_c, scalars_o = [], []
        for i, (c, o) in enumerate(zip(b_carry, carry_outs)):
            if sp.modes[i] == "stage":
                w.line(f"{self._spare_name(c)}[...] = {self.atom(o)}")
        for i, (c, o) in enumerate(zip(b_carry, carry_outs)):
            cn, mode = self.names(c), sp.modes[i]
            if mode == "swap":
                w.line(f"{cn}, {self.names(o)} = {self.names(o)}, {cn}")
            elif mode == "rebind":
                w.line(f"{cn} = {self.names(o)}")
            elif mode == "stage":
                sn = self._spare_name(c)
                w.line(f"{cn}, {sn} = {sn}, {cn}")
            else:
                scalars_c.append(cn)
                scalars_o.append(self.atom(o))
        if scalars_c:
            w.line(f"{', '.join(scalars_c)} = {', '.join(scalars_o)}")
        w.depth = depth
        for v, c in zip(e.outs[:nk], b_carry):
            w.line(f"{self.names(v)} = {self.names(c)}")

    def _spare_name(self, c: Var) -> str:
        if not hasattr(self, "_spares"):
            self._spares: dict[Var, str] = {}
        if c not in self._spares:
            self._spares[c] = self.names.fresh(self.names(c) + "_next")
        return self._spares[c]

    # scalar-only or trivially handled primitives that are not pointwise
    def emit_call(self, e: Eqn, plan: BodyPlan) -> None:   # pragma: no cover - inlined before lowering
        raise AssertionError("calls are inlined before lowering")
