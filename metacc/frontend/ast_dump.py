"""A readable, indented dump of the AST (for `metacc show --stage ast`).

Generic over the dataclasses of metacc.frontend.ast: scalar fields print on
the node's line, child nodes below it, and each node says its source line.
Types, dims and initialisers print in their source spelling.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass

from metacc.frontend import ast as A


def _compact(node) -> str | None:
    if isinstance(node, A.TypeExpr):
        return node.name + (f"[{', '.join(str(d.value) for d in node.dims)}]" if node.dims else "")
    if isinstance(node, A.InitExpr):
        return node.name + (f"({', '.join(repr(a) for a in node.args)})" if node.has_parens else "")
    if isinstance(node, A.DimExpr):
        return str(node.value)
    if isinstance(node, A.Num):
        return f"Num {node.value!r}"
    if isinstance(node, A.Bool):
        return f"Bool {str(node.value).lower()}"
    if isinstance(node, A.Name):
        return f"Name {node.id}"
    return None


def _is_node(value) -> bool:
    return is_dataclass(value) and not isinstance(value, type)


def dump(node, indent: str = "") -> str:
    return "\n".join(_lines(node, indent))


def _lines(node, indent: str) -> list[str]:
    compact = _compact(node)
    if compact is not None:
        return [indent + compact]
    scalars, children = [], []
    for f in fields(node):
        if f.name.endswith("span"):
            continue
        value = getattr(node, f.name)
        text = _compact(value) if _is_node(value) else None
        if text is not None and not isinstance(value, (A.Num, A.Bool, A.Name)):
            scalars.append(f"{f.name}={text}")
        elif _is_node(value) or (isinstance(value, tuple) and value and all(_is_node(v) for v in value)):
            children.append((f.name, value))
        elif isinstance(value, tuple) and not value:
            continue
        elif value is not None:
            scalars.append(f"{f.name}={value}" if f.name not in ("name", "id", "op", "kind") else str(value))
    span = getattr(node, "span", None)
    where = f"  # line {span.line}" if span is not None else ""
    out = [f"{indent}{type(node).__name__} {' '.join(scalars)}".rstrip() + where]
    for name, value in children:
        items = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) or not _is_node(value) or _compact(value) is None:
            out.append(f"{indent}  {name}:")
            for item in items:
                out += _lines(item, indent + "    ")
        else:
            out.append(f"{indent}  {name}: {_compact(value)}")
    return out
