"""Declarations: params groups, task types and function signatures.

Turns the AST's declarations into `metacc.program` objects (ParamGroup,
TaskType) and `Signature`s, checking everything that can be checked without
looking into function bodies: known type names, concrete parameter shapes,
initialisers and their arguments, defaults, and what a `meta` must take and
return.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from metacc.errors import MetaccError, Span, did_you_mean
from metacc.frontend import ast as A
from metacc.frontend.convert import MAX_ELEMENTS, MAX_SIZE, check_elements, check_float_range
from metacc.frontend.reporter import Reporter
from metacc.ir.types import FLOAT_DTYPES, TensorType
from metacc.program import Arg, Field, Init, ParamGroup, TaskType

DTYPE_NAMES = ("f32", "f64", "i64", "bool")

# initialiser -> (number of arguments, what they are)
INITS = {
    "he_normal": (0, ""), "glorot_normal": (0, ""), "zeros": (0, ""), "ones": (0, ""),
    "normal": (1, "std"), "uniform": (2, "lo, hi"), "const": (1, "value"),
}


@dataclass(frozen=True)
class ArgSig:
    """One declared argument (or, with name '', the declared result)."""
    name: str
    kind: str                       # params | task | tensor | key | static
    type_name: str
    span: Span
    type_span: Span
    type: TensorType | None = None  # tensor and key arguments
    group: ParamGroup | None = None
    task: TaskType | None = None
    default: int | float | bool | None = None

    def to_program(self) -> Arg:
        if self.kind == "params":
            fields = self.group.fields
        elif self.kind == "task":
            fields = self.task.fields
        elif self.kind == "static":
            fields = ()
        else:
            fields = (Field("", self.type, None, self.type_span),)
        return Arg(self.name, self.kind, self.type_name, tuple(fields), self.default, self.span)


@dataclass(frozen=True)
class Signature:
    decl: A.FnDecl
    args: tuple[ArgSig, ...]
    result: ArgSig
    default_float: str              # dtype of numbers that meet no other operand (zeros(...), 0.0 carried)
    symbols: tuple[str, ...]        # dims named by the arguments' types
    aux: tuple[ArgSig, ...] = ()    # the results after the first of `-> (loss: f32, acc: f32)`

    @property
    def results(self) -> tuple[ArgSig, ...]:
        return (self.result,) + self.aux

    @property
    def name(self) -> str:
        return self.decl.name

    def arg(self, name: str) -> ArgSig | None:
        return next((a for a in self.args if a.name == name), None)


def _arg_types(a: ArgSig) -> list[TensorType]:
    if a.task is not None:
        return [f.type for f in a.task.fields]
    return [a.type] if a.type is not None else []


class _Broken(Exception):
    """A type whose declaration had an error (already reported): what uses it is skipped quietly."""


class Declarations:
    """Resolves the declarations of one source file; errors go to the reporter."""

    def __init__(self, reporter: Reporter, float_dtype: str | None = None, builtin_names=()):
        self.reporter = reporter
        self.float_dtype = float_dtype
        self.builtin_names = set(builtin_names)
        self.groups: dict[str, ParamGroup] = {}
        self.tasks: dict[str, TaskType] = {}
        self.signatures: dict[str, Signature] = {}
        self.fn_decls: dict[str, A.FnDecl] = {}
        self.failed: set[str] = set()       # declared functions whose signature has an error
        self.broken_types: set[str] = set() # groups and tasks whose declaration has an error

    # ---- driver ----
    def run(self, source_file: A.SourceFile) -> None:
        seen: dict[str, Span] = {}
        for d in source_file.decls:
            name_span = d.name_span if isinstance(d, A.FnDecl) else d.span
            if d.name in seen:
                self._error(MetaccError(f"`{d.name}` is declared twice", name_span,
                                        notes=[("first declared here", seen[d.name])],
                                        hint="params groups, tasks and functions share one namespace"))
                continue
            seen[d.name] = name_span
            if isinstance(d, A.ParamsDecl):
                self._guard(self._params, d)
            elif isinstance(d, A.TaskDecl):
                self._guard(self._task, d)
            else:
                if d.name in self.builtin_names or d.name in DTYPE_NAMES:
                    self._error(MetaccError(f"`{d.name}` is a builtin and cannot be redefined", d.name_span,
                                            hint="choose another name for this function"))
                    continue
                self.fn_decls[d.name] = d
        for d in self.fn_decls.values():
            try:
                self._signature(d)
            except MetaccError as err:
                self._error(err)
            except _Broken:
                pass
            if d.name not in self.signatures:
                self.failed.add(d.name)

    def _guard(self, fn, decl):
        """Declare a group or task; one with any error is left out (and uses of it stay quiet)."""
        before = self.reporter.count
        try:
            fn(decl)
        except MetaccError as err:
            self._error(err)
        if self.reporter.count > before:
            self.groups.pop(decl.name, None)
            self.tasks.pop(decl.name, None)
            self.broken_types.add(decl.name)

    def _error(self, err: MetaccError):
        self.reporter.report(err)

    # ---- types ----
    def dtype(self, name: str) -> str:
        if self.float_dtype and name in FLOAT_DTYPES:
            return self.float_dtype
        return name

    def tensor_type(self, t: A.TypeExpr, *, symbols: bool, what: str) -> TensorType:
        if t.name not in DTYPE_NAMES:
            raise MetaccError(f"unknown element type `{t.name}` for {what}", t.span,
                              expected="f32, f64, i64 or bool", found=t.name,
                              hint=did_you_mean(t.name, DTYPE_NAMES))
        shape = []
        for d in t.dims or ():
            if isinstance(d.value, str):
                if not symbols:
                    raise MetaccError(f"{what} needs a concrete shape, not the symbol `{d.value}`", d.span,
                                      expected="a whole number", found=d.value,
                                      hint="parameters have fixed sizes; symbolic dims such as n belong "
                                           "to data (task fields and fn arguments)")
            elif not 1 <= d.value <= MAX_SIZE:
                raise MetaccError(f"a dimension must be between 1 and {MAX_SIZE}, not {d.value}", d.span)
            shape.append(d.value)
        check_elements(shape, t.span, what)
        return TensorType(self.dtype(t.name), tuple(shape))

    def _no_dims(self, t: A.TypeExpr, kind: str):
        if t.dims is not None:
            raise MetaccError(f"{kind} `{t.name}` takes no dimensions", t.span, found=f"{t.name}[...]",
                              hint=f"write just `{t.name}`")

    # ---- params groups ----
    def _params(self, d: A.ParamsDecl):
        fields, names = [], {}
        for f in d.fields:
            if f.name in names:
                self._error(MetaccError(f"field `{f.name}` is declared twice in params {d.name}", f.span,
                                        notes=[("first declared here", names[f.name])]))
                continue
            names[f.name] = f.span
            try:
                typ = self.tensor_type(f.type, symbols=False, what=f"params field {d.name}.{f.name}")
                if not typ.is_float:
                    raise MetaccError(f"params field {d.name}.{f.name} must be f32 or f64, not {typ.dtype}",
                                      f.type.span, hint="parameters are differentiated, so they are floats; "
                                                        "integer data belongs in a task")
                fields.append(Field(f.name, typ, self._init(f, typ) if f.init else None, f.span))
            except MetaccError as err:
                self._error(err)
        if not d.fields:
            raise MetaccError(f"params {d.name} has no fields", d.span, hint="declare e.g. `w: f32[4, 4] = he_normal`")
        total = sum(math.prod(f.type.shape) for f in fields)
        if total > MAX_ELEMENTS:
            # each field fits, but init() and every kernel hold the whole group at once
            raise MetaccError(f"params {d.name} has {total:.3g} elements in all: at most {MAX_ELEMENTS} are allowed",
                              d.span, hint="one parameter group holds at most 2^31 - 1 numbers (8 GiB in f32)")
        self.groups[d.name] = ParamGroup(d.name, tuple(fields), d.span)

    def _init(self, f: A.ParamField, typ: TensorType) -> Init:
        i = f.init
        if i.name not in INITS:
            raise MetaccError(f"unknown initialiser `{i.name}`", i.span, expected=", ".join(INITS), found=i.name,
                              hint=did_you_mean(i.name, INITS))
        n, what = INITS[i.name]
        if len(i.args) != n:
            form = f"{i.name}({what})" if n else i.name
            raise MetaccError(f"initialiser {i.name} takes {n} argument{'s' if n != 1 else ''}, got {len(i.args)}",
                              i.span, expected=form, found=f"{len(i.args)} argument(s)", hint=f"write `{form}`")
        if i.name in ("he_normal", "glorot_normal") and typ.rank < 2:
            raise MetaccError(f"{i.name} needs a weight matrix (rank 2 or more), but {f.name} is {typ}", i.span,
                              hint="biases and scalars usually start at zeros or const(v)")
        if i.name == "normal" and i.args[0] <= 0:
            raise MetaccError("normal(std) needs a positive standard deviation", i.span)
        if i.name == "uniform" and not i.args[0] < i.args[1]:
            raise MetaccError("uniform(lo, hi) needs lo < hi", i.span)
        return Init(i.name, tuple(float(a) for a in i.args))

    # ---- tasks ----
    def _task(self, d: A.TaskDecl):
        fields: list[Field] = []
        self._task_fields(d.name, d.fields, "", fields)
        if not d.fields:
            raise MetaccError(f"task {d.name} has no fields", d.span)
        self.tasks[d.name] = TaskType(d.name, tuple(fields), d.span)

    def _task_fields(self, task: str, items, prefix: str, out: list[Field]):
        seen: dict[str, Span] = {}
        for f in items:
            if f.name in seen:
                self._error(MetaccError(f"field `{f.name}` is declared twice in task {task}", f.span,
                                        notes=[("first declared here", seen[f.name])]))
                continue
            seen[f.name] = f.span
            path = f"{prefix}{f.name}"
            if f.type is None:
                self._task_fields(task, f.children, path + ".", out)
                continue
            try:
                out.append(Field(path, self.tensor_type(f.type, symbols=True, what=f"task field {task}.{path}"),
                                 None, f.span))
            except MetaccError as err:
                self._error(err)

    # ---- signatures ----
    def arg_type(self, name: str, t: A.TypeExpr, span: Span, default) -> ArgSig:
        if t.name in self.broken_types:
            raise _Broken(t.name)
        common = dict(name=name, type_name=t.name, span=span, type_span=t.span)
        if t.name in DTYPE_NAMES:
            typ = self.tensor_type(t, symbols=True, what=f"`{name}`" if name else "the result")
            return ArgSig(kind="tensor", type=typ, **{**common, "type_name": str(typ)})
        if t.name == "key":
            self._no_dims(t, "type")
            return ArgSig(kind="key", type=TensorType("key", ()), **common)
        if t.name == "int":
            self._no_dims(t, "type")
            return ArgSig(kind="static", **common)
        if t.name in self.groups:
            self._no_dims(t, "params group")
            return ArgSig(kind="params", group=self.groups[t.name], **common)
        if t.name in self.tasks:
            self._no_dims(t, "task")
            return ArgSig(kind="task", task=self.tasks[t.name], **common)
        known = list(DTYPE_NAMES) + ["key", "int"] + list(self.groups) + list(self.tasks)
        raise MetaccError(f"unknown type `{t.name}`", t.span,
                          expected="f32, f64, i64, bool, key, int, a params group or a task", found=t.name,
                          hint=did_you_mean(t.name, known))

    def _signature(self, d: A.FnDecl):
        args, names = [], {}
        failed = False
        for p in d.params:
            if p.name in names:
                self._error(MetaccError(f"argument `{p.name}` is declared twice", p.span,
                                        notes=[("first declared here", names[p.name])]))
                failed = True
                continue
            names[p.name] = p.span
            try:
                a = self.arg_type(p.name, p.type, p.span, p.default)
                args.append(self._with_default(a, p))
            except MetaccError as err:
                self._error(err)
                failed = True
            except _Broken:
                failed = True
        result, aux = self._results(d)
        if failed:
            return
        # dims named by tensor arguments and by the fields of task arguments are in scope in the body
        symbols = list(dict.fromkeys(s for a in args for t in _arg_types(a) for s in t.symbols))
        for a in args:
            if a.name in symbols:
                raise MetaccError(f"`{a.name}` names both an argument and a dimension", a.span,
                                  hint="rename one of them")
        for r in (result,) + aux:
            missing = [s for s in r.type.symbols if s not in symbols] if r.type else []
            if missing:
                raise MetaccError(f"the result dimension `{missing[0]}` is not the dimension of any argument",
                                  r.type_span, hint="every symbolic dim of the result must appear in an "
                                                    "argument's type")
        if d.kind == "meta":
            self._meta_rules(d, args, result, aux)
        self.signatures[d.name] = Signature(d, tuple(args), result, self._default_float(args + [result, *aux]),
                                            tuple(symbols), aux)

    def _with_default(self, a: ArgSig, p: A.Param) -> ArgSig:
        if p.default is None:
            if a.kind == "static":
                raise MetaccError(f"`{p.name}: int` needs a default value", p.span,
                                  hint=f"int arguments are compile-time constants: write `{p.name}: int = 5`")
            return a
        value = p.default.value
        ok = (a.kind == "static" and p.default.is_int) or (a.kind == "tensor" and a.type.rank == 0
                                                           and a.type.dtype != "bool"
                                                           and (a.type.is_float or p.default.is_int))
        if not ok:
            raise MetaccError(f"`{p.name}: {a.type_name}` cannot have the default {value}", p.default.span,
                              hint="defaults are numbers for scalar arguments (f32, f64, i64) and "
                                   "whole numbers for int")
        if a.kind == "tensor":
            check_float_range(value, a.type.dtype, p.default.span, what="the default")
        return replace(a, default=value)

    def _results(self, d: A.FnDecl) -> tuple[ArgSig, tuple[ArgSig, ...]]:
        """The first result and the others (none unless the result is `-> (a: T, b: U, ...)`)."""
        if not isinstance(d.result, A.TupleType):
            return self._result("", d.result), ()
        items = d.result.items
        if len(items) == 1:
            only = items[0]
            raise MetaccError("a tuple result has at least two results", d.result.span,
                              found=f"({only.name}: {only.type.name}...)",
                              hint=f"write one result without parentheses: `-> {only.type.name}"
                                   f"{'[...]' if only.type.dims else ''}`")
        seen: dict[str, Span] = {}
        for item in items:
            if item.name in seen:
                raise MetaccError(f"the result `{item.name}` is named twice", item.span,
                                  notes=[("first named here", seen[item.name])],
                                  hint="each result has its own name (it labels the output in Python)")
            seen[item.name] = item.span
        sigs = [self._result(item.name, item.type) for item in items]
        return sigs[0], tuple(sigs[1:])

    def _result(self, name: str, t: A.TypeExpr) -> ArgSig:
        r = self.arg_type(name, t, t.span, None)
        if r.kind not in ("tensor", "params", "key"):
            raise MetaccError(f"a function returns a tensor or a params group, not {r.kind} `{r.type_name}`",
                              t.span)
        return r

    def _meta_rules(self, d: A.FnDecl, args: list[ArgSig], result: ArgSig, aux: tuple[ArgSig, ...] = ()):
        if not (result.kind == "tensor" and result.type.rank == 0 and result.type.is_float):
            first = f"the first result `{result.name}` of meta {d.name} must be" if aux \
                else f"meta {d.name} must return"
            raise MetaccError(f"{first} a float scalar (its meta-loss)", result.type_span,
                              expected="f32 or f64", found=result.type_name,
                              hint="reduce the loss with sum(...) or mean(...)")
        for a in aux:
            if not (a.kind == "tensor" and a.type.is_float):
                raise MetaccError(f"the result `{a.name}` of meta {d.name} must be a float tensor: it is the "
                                  f"mean over the task batch", a.type_span, expected="f32 or f64 (any shape)",
                                  found=a.type_name,
                                  hint="cast it, e.g. `acc: f32` and `return loss, mean(f32(argmax(z, axis=1) == y))`")
        if not any(a.kind == "params" for a in args):
            raise MetaccError(f"meta {d.name} takes no params group", d.name_span,
                              hint="the meta-gradient is taken with respect to params arguments, "
                                   "e.g. `theta: Net`")
        tasks = [a for a in args if a.kind == "task"]
        if len(tasks) != 1:
            raise MetaccError(f"meta {d.name} must take exactly one task argument, got {len(tasks)}",
                              tasks[1].span if len(tasks) > 1 else d.name_span,
                              hint="declare the episode's data as `task T { ... }` and take `t: T`; "
                                   "tasks are batched along a leading axis at run time")

    def _default_float(self, args: list[ArgSig]) -> str:
        """The one float dtype among the arguments and result, else f32."""
        if self.float_dtype:
            return self.float_dtype
        dtypes = set()
        for a in args:
            leaves = (a.group.fields if a.group else a.task.fields if a.task else ())
            dtypes |= {f.type.dtype for f in leaves if f.type.is_float}
            if a.type is not None and a.type.is_float:
                dtypes.add(a.type.dtype)
        return dtypes.pop() if len(dtypes) == 1 else "f32"
