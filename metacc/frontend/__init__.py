"""The front end: .meta source -> checked, typed `metacc.program.Program`.

    program = metacc.frontend.load("examples/sinusoid_maml.meta")
    program.functions["maml"].ir        # the IR Func of `meta maml`

Options: `float_dtype='f64'` reads every f32/f64 of the program as that
dtype (for float64 correctness checks of an f32 program); `constants={'K': 20}`
overrides the defaults of `int` arguments of meta functions.
"""
from __future__ import annotations

from pathlib import Path

from metacc.dtypes import float_dtype as _float_dtype
from metacc.errors import MetaccError, Source, api_boundary
from metacc.frontend.to_program import Unit
from metacc.program import Program


@api_boundary
def load_source(text: str, name: str = "<string>", *, float_dtype: str | None = None,
                constants: dict[str, int] | None = None) -> Program:
    # the parser loads here, on first use, and lark with it: a cached compile of a path
    # (read_source only) and `import metacc.compiler` do without
    from metacc.frontend.parse import parse_all
    float_dtype = _float_dtype(float_dtype, "load", allow_none=True)
    source = Source(name, text)
    try:
        parsed = parse_all(source)
        unit = Unit(source, parsed.source_file, float_dtype, constants)
        unit.after_syntax_errors(parsed.errors, parsed.broken)
        return unit.run()
    except RecursionError:
        # parsing and lowering recurse over the expression tree; only absurd nesting gets here
        raise MetaccError(f"{name}: an expression is nested too deeply to compile",
                          hint="split long expressions into several assignments") from None


@api_boundary
def load(path, *, float_dtype: str | None = None, constants: dict[str, int] | None = None) -> Program:
    return load_source(read_source(path), str(path), float_dtype=float_dtype, constants=constants)


def read_source(path) -> str:
    """The text of a .meta file; a missing or unreadable file is a MetaccError."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")      # a byte-order mark (some editors write one) is not text
    except FileNotFoundError:
        hint = "check the path (relative paths start at the current directory)"
        if p.suffix != ".meta":
            with_suffix = p.with_name(p.name + ".meta")
            hint = f"did you mean {with_suffix}?" if with_suffix.is_file() else \
                "check the path; metacc programs are .meta files"
        raise MetaccError(f"cannot read {path}: no such file", hint=hint) from None
    except IsADirectoryError:
        raise MetaccError(f"cannot read {path}: it is a directory", hint="pass a .meta file") from None
    except UnicodeDecodeError as err:
        raise MetaccError(f"cannot read {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise MetaccError(f"cannot read {path}: {err.strerror}") from None


__all__ = ["load", "load_source", "read_source"]
