"""Readable text of IR functions, with source names and .meta line references.

    func mse(p.w1: f64[1, 40], x: f64[n, 1], ...) -> f64      # sinusoid.meta:9
      h = matmul(x, p.w1)                                       # sinusoid.meta:5
      ...
      return loss

The equations of a backward sweep are introduced by the statement they are
the adjoint of, as Tangent does:

      # adjoint of: h = relu(x @ p.w1 + p.b1)   sinusoid.meta:5
      add_bar = mul(mask, h_bar)                                # sinusoid.meta:5

Names repeat freely in the IR (vars are identities); the printer appends
_1, _2 ... where two live vars would print the same.
"""
from __future__ import annotations

from metacc.errors import Span
from metacc.ir.core import Atom, Func, Lit, Var

_QUOTE = 72         # characters of a statement quoted in an `adjoint of` comment


class Names:
    """Stable, unique display names for vars (also used by the code generators)."""

    def __init__(self, reserved=()):
        self.of: dict[Var, str] = {}
        self.used: set[str] = set(reserved)

    def name(self, v: Var, sanitize=None) -> str:
        if v in self.of:
            return self.of[v]
        base = sanitize(v.name) if sanitize else v.name
        cand, k = base, 1
        while cand in self.used:
            cand = f"{base}_{k}"
            k += 1
        self.used.add(cand)
        self.of[v] = cand
        return cand

    def atom(self, a: Atom, sanitize=None) -> str:
        if isinstance(a, Lit):
            return repr(a.value)
        return self.name(a, sanitize)


def _fmt_param(value) -> str:
    if isinstance(value, Func):
        return f"<{value.name}>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_fmt_param(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def _with_comment(text: str, comment: str | None, width: int = 60) -> str:
    if not comment:
        return text
    return f"{text.ljust(width)}  # {comment}"


def adjoint_comment(span: Span) -> str:
    """`adjoint of: h = relu(x @ p.w1 + p.b1)   sinusoid_maml.meta:20` (without the '#')."""
    text = span.statement()
    if len(text) > _QUOTE:
        text = text[:_QUOTE - 4] + " ..."
    return f"adjoint of: {text}   {span.short()}"


class AdjointHeadings:
    """Where a block of backward code starts: before the first equation that is the
    adjoint of a statement not announced just before (shared by the printer and the
    Numba lowering, which asks about a whole fused loop nest at once)."""

    def __init__(self):
        self.current: dict = {}         # the statements of the block being written

    def heading(self, spans) -> list[str]:
        """Comments (without '#') to put before code made from equations with these spans."""
        adjoint: dict = {}
        for s in spans:
            if s is not None and s.adjoint:
                adjoint.setdefault((s.source.name, s.line), s)
        if not adjoint:
            if any(s is not None for s in spans):
                self.current = {}       # primal code ends the block
            return []
        new = [s for k, s in adjoint.items() if k not in self.current]
        self.current = adjoint
        return [adjoint_comment(s) for s in new]


def format_func(fn: Func, names: Names | None = None, indent: str = "") -> str:
    names = names or Names()
    args = ", ".join(f"{names.name(v)}: {v.type}" for v in fn.ins)
    outs = ", ".join(str(t) for t in fn.out_types)
    where = fn.span.short() if fn.span else None
    if fn.n_aux:        # a tuple result's results after the first: computed, never differentiated
        where = f"{where + '; ' if where else ''}{fn.n_aux} auxiliary output{'s' * (fn.n_aux > 1)} (last)"
    lines = [_with_comment(f"{indent}func {fn.name}({args}) -> ({outs}) {{", where)]
    lines += _format_body(fn, names, indent + "  ")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _format_body(fn: Func, names: Names, indent: str) -> list[str]:
    lines = []
    headings = AdjointHeadings()
    for e in fn.eqns:
        lines += [f"{indent}# {h}" for h in headings.heading([e.span])]
        ins = ", ".join(names.atom(a) for a in e.ins)
        scalars = {k: v for k, v in e.params.items() if not isinstance(v, Func)}
        subs = [(k, v) for k, v in e.params.items() if isinstance(v, Func)]
        pstr = ("[" + ", ".join(f"{k}={_fmt_param(v)}" for k, v in scalars.items()) + "]") if scalars else ""
        outs = ", ".join(f"{names.name(v)}" for v in e.outs)
        types = ", ".join(str(v.type) for v in e.outs)
        text = f"{indent}{outs}: {types} = {e.prim}{pstr}({ins})"
        lines.append(_with_comment(text, e.span.short() if e.span else None))
        for key, sub in subs:
            lines.append(f"{indent}  {key}:")
            lines.append(format_func(sub, names, indent + "    "))
    lines.append(f"{indent}return {', '.join(names.atom(a) for a in fn.outs)}")
    return lines
