"""The `metacc` command line.

    metacc check FILE...                        check programs; one OK line per file
    metacc show FILE [--fn NAME] --stage ast|ir print a stage of the compilation

Both tables are open for extension: COMMANDS maps a subcommand to its help,
its options and its action; SHOW_STAGES maps a `show --stage` name to a
function of a `ShowRequest` returning text. Later stages (simplified IR,
generated code, derivative kernels) register there and may add options to
`show` in `_show_options` (the request carries every parsed option). Any
MetaccError is printed to stderr and exits with 1, without a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from metacc import __version__
from metacc.errors import MetaccError


@dataclass
class ShowRequest:
    path: str
    fn: str | None
    args: argparse.Namespace            # every option of `show`, for stages that add their own
    _program: object = field(default=None, repr=False)

    def program(self):
        if self._program is None:
            from metacc.frontend import load
            self._program = load(self.path)
        return self._program

    def functions(self) -> list:
        """The selected function (--fn) or all of them, in source order."""
        functions = self.program().functions
        if self.fn is None:
            return list(functions.values())
        if self.fn not in functions:
            names = ", ".join(functions) or "(none)"
            raise MetaccError(f"{self.path} has no function `{self.fn}`", expected=f"one of: {names}",
                              found=self.fn)
        return [functions[self.fn]]


def show_ast(req: ShowRequest) -> str:
    from metacc.errors import Source
    from metacc.frontend.ast_dump import dump
    from metacc.frontend import read_source
    from metacc.frontend.parse import parse
    # the syntax tree only: it is shown even when the program does not check
    module = parse(Source(req.path, read_source(req.path)))
    if req.fn is None:
        return dump(module)
    decls = [d for d in module.decls if d.name == req.fn]
    if not decls:
        names = ", ".join(d.name for d in module.decls) or "(none)"
        raise MetaccError(f"{req.path} has no declaration `{req.fn}`", expected=f"one of: {names}", found=req.fn)
    return dump(decls[0])


def show_ir(req: ShowRequest) -> str:
    from metacc.ir.printer import format_func
    return "\n\n".join(format_func(f.ir) for f in req.functions())


SHOW_STAGES: dict[str, Callable[[ShowRequest], str]] = {
    "ast": show_ast,
    "ir": show_ir,
}


def _cmd_check(args) -> int:
    from metacc.frontend import load
    status = 0
    for path in args.files:
        try:
            program = load(path)
        except MetaccError as err:
            print(err.render(), file=sys.stderr)
            status = 1
            continue
        names = ", ".join(f"{f.kind} {f.name}" for f in program.functions.values())
        print(f"{path}: OK ({names})")
    return status


def _cmd_show(args) -> int:
    req = ShowRequest(args.file, args.fn, args)
    print(SHOW_STAGES[args.stage](req))
    return 0


def _show_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .meta program")
    p.add_argument("--fn", metavar="NAME", help="only this fn or meta (default: all)")
    p.add_argument("--stage", choices=sorted(SHOW_STAGES), default="ir", help="what to print (default: ir)")


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
