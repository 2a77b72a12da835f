"""The `metacc` command line.

    metacc check FILE...                        check programs; one OK line per file
    metacc show FILE [--fn NAME] [--kernel K] --stage ast|ir|simplified|numba|cuda|PASS
                                                print the program after a stage of the compilation
    metacc show --stages                        the pass list of each kernel kind
    metacc residuals FILE --fn NAME [--dims k=10,q=10] [--batch 25] [--const K=100]
                                                what the backward pass saves, in bytes
    metacc explain FILE --fn NAME               which derivative terms annotations drop
    metacc gradcheck FILE --fn NAME [--wrt ARG] compiled gradient vs central finite differences

Both tables are open for extension: COMMANDS maps a subcommand to its help,
its options and its action; SHOW_STAGES maps a `show --stage` name to a
function of a `ShowRequest` returning text, and any other stage name is a pass
of the kernel's pipeline (metacc.pipeline), printed after it runs. Stages may
add options to `show` in `_show_options` (the request carries every parsed
option). Any MetaccError is printed to stderr and exits with 1, without a
traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from metacc import __version__
from metacc.ad import expand
from metacc.ad.activity import collecting
from metacc.ad.vjp import check_connected_inputs, metric_cut
from metacc.convergence import SGD_TOL
from metacc.errors import MetaccError, MetaccErrors, Source, did_you_mean
from metacc.explain import explain
from metacc.frontend import load, read_source
from metacc.frontend.ast_dump import dump
from metacc.frontend.convert import MAX_SIZE
from metacc.gradcheck import argmin_eqns, gradcheck, implicit_solves
from metacc.ir.printer import format_func
from metacc.kinds import KINDS, default_wrt, wrt_names
from metacc.residuals import report


@dataclass
class ShowRequest:
    path: str
    fn: str | None
    args: argparse.Namespace            # every option of `show`, for stages that add their own
    _program: object = field(default=None, repr=False)

    def program(self):
        if self._program is None:
            self._program = load(self.path, constants=getattr(self.args, "const", None) or None)
        return self._program

    def functions(self) -> list:
        """The selected function (--fn) or all of them, in source order."""
        functions = self.program().functions
        if self.fn is None:
            return list(functions.values())
        if self.fn not in functions:
            names = ", ".join(functions) or "(none)"
            raise MetaccError(f"{self.path} has no function `{self.fn}`", expected=f"one of: {names}",
                              found=self.fn, hint=did_you_mean(self.fn, functions))
        return [functions[self.fn]]


def show_ast(req: ShowRequest) -> str:
    from metacc.frontend.parse import parse

    # the syntax tree only: it is shown even when the program does not check
    source_file = parse(Source(req.path, read_source(req.path)))
    if req.fn is None:
        return dump(source_file)
    decls = [d for d in source_file.decls if d.name == req.fn]
    if not decls:
        names = ", ".join(d.name for d in source_file.decls) or "(none)"
        raise MetaccError(f"{req.path} has no declaration `{req.fn}`", expected=f"one of: {names}", found=req.fn)
    return dump(decls[0])


def _kernels(req: ShowRequest):
    """(function, kind, wrt, batched) of the requested kernel of each selected function."""
    kind = req.args.kernel or "forward"
    out = []
    for f in req.functions():
        if kind == "meta_grad" and f.kind != "meta":
            raise MetaccError(f"--kernel meta_grad needs a meta program; {f.name} is a fn",
                              hint="use --kernel grad for a fn that returns a scalar, vjp or jvp for any other")
        wrt = wrt_names(f, req.args.wrt) if req.args.wrt else default_wrt(f)
        # what the runtime compiles: a meta function's forward and meta-gradient run over a range of tasks
        batched = None
        if f.kind == "meta" and kind in ("forward", "meta_grad", "grad"):
            batched = tuple(a.kind == "task" for a in f.args for _ in a.leaves)
        out.append((f, kind, None if kind == "forward" else wrt, batched))
    return out


def show_kernel(req: ShowRequest, stage: str, target: str = "cpu") -> str:
    """The program after any pass of the kernel's pipeline (metacc.pipeline, or the CUDA
    target's: metacc.backend.cuda.pipeline)."""
    from metacc.compiler import target_pipeline
    show_stage = target_pipeline(target).show_stage
    return "\n\n".join(show_stage(f.ir, kind, wrt, batched, stage) for f, kind, wrt, batched in _kernels(req))


def show_ir(req: ShowRequest) -> str:
    if not req.args.kernel:
        return "\n\n".join(format_func(f.ir) for f in req.functions())
    return show_kernel(req, "ir")


def show_simplified(req: ShowRequest) -> str:
    return show_kernel(req, "simplified")


def show_numba(req: ShowRequest) -> str:
    """What the runtime compiles: for a meta function's forward and meta-gradient, the
    kernel over a range of tasks with its batched entry."""
    return show_kernel(req, "numba")


def show_cuda(req: ShowRequest) -> str:
    """The CUDA target's module (metacc.backend.cuda): the same planned task body as a
    numba.cuda device function, its launch kernel and host entry."""
    return show_kernel(req, "cuda", target="cuda")


# `--stage` names with their own printer; any other is a pass name of the kernel's pipeline
SHOW_STAGES: dict[str, Callable[[ShowRequest], str]] = {
    "ast": show_ast,
    "ir": show_ir,
    "simplified": show_simplified,
    "numba": show_numba,
    "cuda": show_cuda,
}


def _check_derivatives(program) -> list[str]:
    """Surface derivative errors at check time: every grad(...) expands, and every
    meta program's loss depends on each of its parameter groups. A meta whose value
    has no derivative only because an operation without one computes it (an accuracy
    through argmax or a comparison) is what `metacc.compile` accepts too: it can be
    called, its value_and_grad refuses; check says so in a note (the returned lines)
    instead of failing. One cut by stop_gradient, or with parameters it never uses, is
    accepted the same way, since compile accepts it and its forward call runs, but is
    almost always a mistake: check gives the error value_and_grad would give, as a
    warning (a returned line that starts `FILE:LINE:COL: warning:`)."""
    errors, notes = [], []
    for f in program.functions.values():
        try:
            ir = expand(f.ir.without_aux())
        except MetaccError as err:          # each function on its own: report them all
            errors.extend(err.errors if isinstance(err, MetaccErrors) else [err])
            continue
        if f.kind != "meta":
            continue
        wrt = default_wrt(f)
        try:
            check_connected_inputs(ir, wrt, what=f"meta {f.name}", span=f.span)
        except MetaccError as err:
            cut = metric_cut(ir, wrt)
            if cut is None:
                text = err.render().replace(": error: ", ": warning: ", 1)
                notes.append(text + f"\n  note: meta {f.name} can still be called (forward evaluation); "
                             "value_and_grad and grad refuse it with this message")
                continue
            where = f" by {cut.prim}" + (f" at {cut.span.where()}" if cut.span is not None else "")
            output = f"its first result `{f.result.name}`" if f.aux else "its value"
            notes.append(f"note: {f.span.where()}: meta {f.name}: {output} has no derivative with respect to "
                         f"its parameter groups (cut{where}): it can be called (forward evaluation), but "
                         f"value_and_grad and grad refuse it")
    if errors:
        raise errors[0] if len(errors) == 1 else MetaccErrors(errors)
    return notes


def _cmd_check(args) -> int:
    status = 0
    for path in args.files:
        try:
            with collecting() as notes:     # disconnected fields: warnings, printed below
                program = load(path)
                forward_only = _check_derivatives(program)
            for message, _, where in dict.fromkeys(notes):
                print(message.replace(f"{where}: ", f"{where}: warning: ", 1), file=sys.stderr)
        except MetaccError as err:
            print(err.render(), file=sys.stderr)
            status = 1
            continue
        names = ", ".join(f"{f.kind} {f.name}" for f in program.functions.values())
        print(f"{path}: OK ({names})")
        for line in forward_only + _solver_notes(program):
            print(line, file=sys.stderr if ": warning: " in line.split("\n", 1)[0] else sys.stdout)
    return status


def _solver_notes(program) -> list[str]:
    """One note per argmin: its convergence can only be checked when it runs."""
    notes, seen = [], set()
    for f in program.functions.values():
        for e in argmin_eqns(f.ir):
            where = e.span.where() if e.span else f.name
            if where in seen:
                continue
            seen.add(where)
            tols = f"sgd tol {e.params['solver'].get('tol', SGD_TOL):g}"
            if e.params.get("implicit"):
                tols += f", cg tol {e.params['implicit'].get('tol', 1e-8):g}"
            notes.append(f"note: {where} argmin: convergence is checked when it runs ({tols}); a solver "
                         "that stops short raises metacc.ConvergenceWarning")
    return notes


def _cmd_show(args) -> int:
    # metacc.pipeline brings in the back end (and Numba): imported only where a kernel is shown
    if args.stages:
        from metacc.pipeline import describe
        print(describe())
        return 0
    if args.file is None:
        raise MetaccError("metacc show needs a .meta file", hint="metacc show FILE --stage NAME, "
                          "or metacc show --stages for the stage names")
    if args.stage not in SHOW_STAGES:
        from metacc.pipeline import resolve
        resolve(args.kernel or "forward", args.stage)        # an unknown name fails here, before loading
    args.const = dict(args.const or [])
    req = ShowRequest(args.file, args.fn, args)
    show = SHOW_STAGES.get(args.stage)
    print(show(req) if show is not None else show_kernel(req, args.stage))
    return 0


def _const(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    try:
        out = name.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=INT, got {text!r}") from None
    if not out[0].isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=INT, got {text!r}: {out[0]!r} is not a name")
    return out


def _dims(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        if part.strip():
            name, value = _const(part)
            if not 1 <= value <= MAX_SIZE:
                raise argparse.ArgumentTypeError(f"the size of dim {name} must be between 1 and {MAX_SIZE}, "
                                                 f"not {value}")
            out[name] = value
    return out


def _count(minimum: int):
    """An argparse type: a whole number of at least `minimum`, named in the message when not."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, not {text}")
    return value


def _check_dims(f, dims: dict[str, int]) -> None:
    """--dims names must be symbolic dims of the function's arguments."""
    known = list(dict.fromkeys(s for v in f.ir.ins for s in v.type.symbols))
    for name in dims:
        if name not in known:
            raise MetaccError(f"--dims {name}=...: {f.kind} {f.name} has no dimension `{name}`",
                              expected=", ".join(known) or "(it has no symbolic dims)", found=name,
                              hint=did_you_mean(name, known))


def _program_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--const", type=_const, action="append", metavar="NAME=INT",
                   help="override an int argument's default, e.g. K=100 (repeatable)")


def _show_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="a .meta program")
    p.add_argument("--fn", metavar="NAME", help="only this fn or meta (default: all)")
    p.add_argument("--stage", default="ir", metavar="NAME",
                   help="print the program after this pass (see --stages), or ast, ir, simplified, numba, "
                        "cuda (the CUDA target's module) (default: ir)")
    p.add_argument("--stages", action="store_true", help="list the passes of each kernel kind and exit")
    p.add_argument("--kernel", choices=KINDS, help="a derivative kernel instead of the function itself")
    p.add_argument("--wrt", nargs="+", metavar="ARG", help="arguments to differentiate (default: params groups)")
    _program_options(p)


def _fn_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .meta program")
    p.add_argument("--fn", metavar="NAME", required=True, help="the fn or meta to analyse")
    p.add_argument("--wrt", nargs="+", metavar="ARG", help="arguments to differentiate (default: params groups)")
    _program_options(p)


def _residuals_options(p: argparse.ArgumentParser) -> None:
    _fn_options(p)
    p.add_argument("--dims", type=_dims, default={}, metavar="k=10,q=10",
                   help="sizes of the symbolic dims (default: 10 each)")
    p.add_argument("--batch", type=_count(1), default=1, help="task batch size (meta programs)")


def _request(args) -> tuple:
    args.const = dict(args.const or [])
    req = ShowRequest(args.file, args.fn, args)
    (f,) = req.functions()
    wrt = wrt_names(f, args.wrt) if args.wrt else default_wrt(f)
    return f, wrt


def _cmd_residuals(args) -> int:
    f, wrt = _request(args)
    _check_dims(f, args.dims)
    dims = {s: 10 for v in f.ir.ins for s in v.type.symbols}
    dims.update(args.dims)
    print(report(f.ir, wrt, dims, batch=args.batch))
    return 0


def _gradcheck_options(p: argparse.ArgumentParser) -> None:
    _fn_options(p)
    p.add_argument("--dims", type=_dims, default={}, metavar="k=10,q=10",
                   help="sizes of the symbolic dims (default: 5 each)")
    p.add_argument("--seed", type=_count(0), default=0, help="seed of the random input")
    p.add_argument("--tol", type=_positive_float, default=1e-5, help="largest relative error accepted (default 1e-5)")


def _cmd_gradcheck(args) -> int:
    if args.dims:
        f, _ = _request(args)
        _check_dims(f, args.dims)
    convergence: list = []
    checks = gradcheck(args.file, args.fn, wrt=args.wrt, seed=args.seed, dims=args.dims,
                       constants=dict(args.const or []), convergence=convergence)
    width = max(len(c.what) for c in checks)
    print(f"gradcheck {args.fn} (float64, central differences, eps 1e-6)")
    for c in checks:
        print(f"  {c.what:<{width}}  compiled {c.ad: .10e}  finite-diff {c.fd: .10e}  rel err {c.rel:.1e}")
    worst = max(checks, key=lambda c: c.rel)
    ok = worst.rel <= args.tol
    for w in convergence:
        print(f"warning: {w}")
    for e in implicit_solves(load(args.file, constants=dict(args.const or []) or None).functions[args.fn].ir):
        where = e.span.where() if e.span else ""
        if any(w.where == where for w in convergence):
            continue
        print(f"note: {where} argmin is differentiated implicitly: that gradient equals the finite "
              "difference only at a stationary point; its solver and conjugate gradient met their "
              "tolerances on this input (sgd tol, cg tol), so a mismatch is not from stopping short")
    print(f"worst relative error: {worst.rel:.2e} ({worst.what}) — {'OK' if ok else 'FAILED'} at tol {args.tol:g}"
          + (f"; {len(convergence)} solver(s) did not converge (warnings above)" if convergence else ""))
    return 0 if ok else 1


def _cmd_explain(args) -> int:
    f, _ = _request(args)
    print(explain(f.ir, f"{f.kind} {f.name}"))
    return 0


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help=".meta programs")


@dataclass(frozen=True)
class Command:
    help: str
    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "check": Command("parse and check programs", _check_options, _cmd_check),
    "show": Command("print a stage of the compilation", _show_options, _cmd_show),
    "residuals": Command("list what the backward pass saves", _residuals_options, _cmd_residuals),
    "explain": Command("say which derivative terms annotations drop", _fn_options, _cmd_explain),
    "gradcheck": Command("check compiled derivatives against finite differences", _gradcheck_options,
                         _cmd_gradcheck),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metacc", description="A compiler for meta-learning programs (.meta).")
    parser.add_argument("--version", action="version", version=f"metacc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help)
        cmd.options(p)
        p.set_defaults(run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MetaccError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`metacc show ... | head`): not an error of the program
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
