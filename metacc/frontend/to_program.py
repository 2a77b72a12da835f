"""The AST of a source file (`ast.SourceFile`) to a `metacc.program.Program`: checking
it and lowering it (the lowering driver; `to_ast.py` builds what it reads).

Declarations first (groups, tasks, signatures), then every fn and meta on its
own: its standalone IR function takes the flattened arguments in order
(`theta.w1`, ..., `t.support.x`, ..., `alpha`) and returns the flattened
result. Calls between functions are inlined, so a callee is checked on its
own before the first call that inlines it (which also catches recursion).
"""
from __future__ import annotations

import numbers
from dataclasses import replace

from metacc.errors import MetaccError, Source, Span, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend import lowering  # noqa: F401  (every kind of node and builtin registered)
from metacc.frontend.builtins import BUILTINS
from metacc.frontend.calls import check_result, lower_body
from metacc.frontend.context import Ctx, Env, Poisoned
from metacc.frontend.declarations import Declarations, Signature
from metacc.frontend.reporter import Reporter
from metacc.frontend.frame import Frame
from metacc.frontend.stmts import name_value
from metacc.frontend.values import Number, Record, Results, Tensor, Tree, leaves
from metacc.ir.verify import verify
from metacc.program import Function, Program


MAX_CALL_DEPTH = 40         # user function calls inside one another (each is inlined)
MAX_EQUATIONS = 200_000     # equations emitted for the whole program, every inlined copy counted
MAX_INLINED_CALLS = 20_000  # calls inlined for the whole program (about 0.1 ms each)


class Unit:
    def __init__(self, source: Source, source_file: A.SourceFile, float_dtype: str | None = None,
                 constants: dict[str, int] | None = None):
        self.source = source
        self.source_file = source_file
        self.constants = dict(constants or {})
        self.reporter = Reporter()
        self.builtin_names = set(BUILTINS)
        self.decls = Declarations(self.reporter, float_dtype, self.builtin_names)
        self.functions: dict[str, Function] = {}
        self.status: dict[str, str] = {}          # running | ok | failed
        self.lowering: list[str] = []             # functions being lowered, outermost first
        self.emitted = 0                          # equations emitted so far (count_equations)
        self.inlined = 0                          # calls inlined so far
        self.loop_indices: dict = {}              # the IR value of each `repeat K as k` index -> K

    def run(self) -> Program:
        if not self.source_file.decls and not self.reporter.errors:
            raise MetaccError(f"{self.source.name} declares nothing", Span(self.source, 1, 1),
                              hint="a program declares params groups, tasks and fn or meta functions, e.g. "
                                   "`fn f(x: f32) -> f32 { return x * x }`; check that this is the right file")
        self.decls.run(self.source_file)
        self._check_constants()
        for name in self.decls.signatures:
            self.ensure_lowered(name, None)
        if not self.reporter.errors and not any(isinstance(d, A.FnDecl) for d in self.source_file.decls):
            raise MetaccError(f"{self.source.name} declares no fn or meta function: there is nothing to run",
                              Span(self.source, 1, 1),
                              hint="add a `meta` (a meta-loss) or a `fn` that uses these declarations")
        self.reporter.raise_if_any()
        order = [d.name for d in self.source_file.decls if isinstance(d, A.FnDecl)]
        return Program(self.source, dict(self.decls.groups), dict(self.decls.tasks),
                       {n: self.functions[n] for n in order if n in self.functions})

    def after_syntax_errors(self, errors: list[MetaccError], broken: dict[str, str]) -> None:
        """Declarations that did not parse: their errors are reported with the checker's, and what
        uses them stays quiet (as for a declaration with a type error)."""
        for err in errors:
            self.reporter.report(err)
        for name, kind in broken.items():
            if kind in ("params", "task"):
                self.decls.broken_types.add(name)
            else:
                self.decls.failed.add(name)

    def _check_constants(self) -> None:
        """Overrides (`constants={'K': 20}`, `--const K=20`) must name an int argument of a meta
        function and be a whole number: an override that changes nothing is a mistake."""
        if not self.constants:
            return
        known = sorted({a.name for sig in self.decls.signatures.values() if sig.decl.kind == "meta"
                        for a in sig.args if a.kind == "static"})
        for name, value in self.constants.items():
            if name not in known:
                if self.decls.failed:
                    continue        # the argument may be in a signature that has an error (reported)
                raise MetaccError(f"the constant `{name}` is not an int argument of any meta function in "
                                  f"{self.source.name}", expected=", ".join(known) or "(this program has none)",
                                  found=name, hint=did_you_mean(name, known)
                                  or "constants override the defaults of `K: int = ...` arguments of meta functions")
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise MetaccError(f"the constant `{name}` must be a whole number", found=repr(value))

    def ensure_lowered(self, name: str, call_span: Span | None) -> bool:
        """Lower `name` standalone unless done; False when it has errors."""
        state = self.status.get(name)
        if state == "running":
            self.reporter.report(MetaccError(f"recursive call of {name}", call_span,
                                             hint="functions are inlined, so they cannot call themselves; "
                                                  "iterate with repeat K { ... }"))
            return False
        if state is None:
            if len(self.lowering) >= MAX_CALL_DEPTH:
                # each call is inlined (and its callee checked first): a chain this long would
                # exhaust Python's stack
                chain = " -> ".join(self.lowering[:3] + ["..."] + self.lowering[-2:] + [name])
                self.reporter.report(MetaccError(f"function calls nest more than {MAX_CALL_DEPTH} deep ({chain})",
                                                 call_span, hint="call the inner functions from fewer levels, or "
                                                                 "iterate with repeat K { ... }"))
                return False
            self.status[name] = "running"
            self.lowering.append(name)
            fn = None
            try:
                fn = self._lower_standalone(self.decls.signatures[name])
            finally:
                self.lowering.pop()
                self.status[name] = "ok" if fn is not None else "failed"
            if fn is not None:
                self.functions[name] = fn
        return self.status[name] == "ok"

    def count_equations(self, span: Span | None, calls: int = 0) -> None:
        """Called for every equation emitted and every call inlined: inlining multiplies sizes (a
        function that calls the next one twice, thirty levels deep, is 2^30 operations), so the
        totals are bounded, and with them the time the checker takes."""
        self.emitted += 1 - calls
        self.inlined += calls
        if self.emitted > MAX_EQUATIONS or self.inlined > MAX_INLINED_CALLS:
            what = f"{MAX_EQUATIONS} operations" if self.emitted > MAX_EQUATIONS else f"{MAX_INLINED_CALLS} calls"
            raise MetaccError(f"this program grows past {what} when its function calls are inlined", span,
                              hint="every call is inlined: a function that calls another several times, level "
                                   "after level, multiplies its size; iterate with repeat K { ... } instead")

    def _lower_standalone(self, sig: Signature) -> Function | None:
        decl = sig.decl
        frame = Frame(span=decl.name_span)
        env = Env()
        for a in sig.args:
            env.assign(a.name, self._argument(frame, sig, a))
        ctx = Ctx(self, frame, env, {s: s for s in sig.symbols}, sig)
        before = self.reporter.count
        try:
            result = check_result(ctx, lower_body(ctx, decl))
        except MetaccError as err:
            ctx.report(err)
            return None
        except Poisoned:
            return None
        except RecursionError:
            # the parser bounds nesting (parse.MAX_DEPTH); this is only reached from a caller that
            # already stands deep in Python's stack: still an error at this function, not a crash
            self.reporter.report(MetaccError(f"{decl.name} is nested too deeply to compile", decl.name_span,
                                             hint="split long expressions into several assignments"))
            return None
        if self.reporter.count > before:
            return None
        n_aux = 0
        if isinstance(result, Results):
            # outputs computed in the return statement take the declared names (`acc`, not `div`)
            result = replace(result, values=tuple(name_value(ctx, v, n) for v, n in zip(result.values, result.names)))
            n_aux = sum(len(leaves(v)) for v in result.values[1:])
        ir = replace(frame.func(decl.name, [leaf.atom for leaf in leaves(result)], decl.name_span), n_aux=n_aux)
        ir = verify(ir)
        args = tuple(self._program_arg(sig, a) for a in sig.args)
        return Function(decl.name, decl.kind, args, sig.result.to_program(), ir, decl.name_span,
                        tuple(a.to_program() for a in sig.aux))

    def _static(self, sig: Signature, a) -> int:
        if sig.decl.kind == "meta" and a.name in self.constants:
            return int(self.constants[a.name])
        return a.default

    def _program_arg(self, sig: Signature, a):
        arg = a.to_program()
        return replace(arg, default=self._static(sig, a)) if a.kind == "static" else arg

    def _argument(self, frame: Frame, sig: Signature, a):
        if a.kind == "params":
            leaves_ = tuple(Tensor(frame.input(f"{a.name}.{f.path}", f.type), f.span, f"{a.name}.{f.path}")
                            for f in a.group.fields)
            return Tree(a.group, leaves_, a.span, a.name)
        if a.kind == "task":
            leaves_ = tuple(Tensor(frame.input(f"{a.name}.{f.path}", f.type), f.span, f"{a.name}.{f.path}")
                            for f in a.task.fields)
            return Record(a.task, "", leaves_, a.span, a.name)
        if a.kind == "static":
            return Number(self._static(sig, a), a.span, a.name)
        return Tensor(frame.input(a.name, a.type), a.span, a.name)
