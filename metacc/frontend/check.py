"""Checking a parsed module and lowering it to a `metacc.program.Program`.

Declarations first (groups, tasks, signatures), then every fn and meta on its
own: its standalone IR function takes the flattened arguments in order
(`theta.w1`, ..., `t.support.x`, ..., `alpha`) and returns the flattened
result. Calls between functions are inlined, so a callee is checked on its
own before the first call that inlines it (which also catches recursion).
"""
from __future__ import annotations

from dataclasses import replace

from metacc.errors import MetaccError, Source, Span
from metacc.frontend import ast as A
from metacc.frontend.calls import check_result, lower_body
from metacc.frontend.context import Ctx, Env, Poisoned
from metacc.frontend.declarations import Declarations, Signature
from metacc.frontend.diagnostics import Reporter
from metacc.frontend.frame import Frame
from metacc.frontend.values import Number, Record, Tensor, Tree, leaves
from metacc.ir.verify import verify
from metacc.program import Function, Program


class Unit:
    def __init__(self, source: Source, module: A.Module, float_dtype: str | None = None,
                 constants: dict[str, int] | None = None):
        from metacc.frontend.builtins import BUILTINS
        self.source = source
        self.module = module
        self.constants = dict(constants or {})
        self.reporter = Reporter()
        self.builtin_names = set(BUILTINS)
        self.decls = Declarations(self.reporter, float_dtype, self.builtin_names)
        self.functions: dict[str, Function] = {}
        self.status: dict[str, str] = {}          # running | ok | failed

    def run(self) -> Program:
        self.decls.run(self.module)
        for name in self.decls.signatures:
            self.ensure_lowered(name, None)
        self.reporter.raise_if_any()
        order = [d.name for d in self.module.decls if isinstance(d, A.FnDecl)]
        return Program(self.source, dict(self.decls.groups), dict(self.decls.tasks),
                       {n: self.functions[n] for n in order if n in self.functions})

    def ensure_lowered(self, name: str, call_span: Span | None) -> bool:
        """Lower `name` standalone unless done; False when it has errors."""
        state = self.status.get(name)
        if state == "running":
            self.reporter.report(MetaccError(f"recursive call of {name}", call_span,
                                             hint="functions are inlined, so they cannot call themselves; "
                                                  "iterate with repeat K { ... }"))
            return False
        if state is None:
            self.status[name] = "running"
            fn = self._lower_standalone(self.decls.signatures[name])
            self.status[name] = "ok" if fn is not None else "failed"
            if fn is not None:
                self.functions[name] = fn
        return self.status[name] == "ok"

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
        if self.reporter.count > before:
            return None
        ir = verify(frame.func(decl.name, [leaf.atom for leaf in leaves(result)], decl.name_span))
        args = tuple(self._program_arg(sig, a) for a in sig.args)
        return Function(decl.name, decl.kind, args, sig.result.to_program(), ir, decl.name_span)

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
