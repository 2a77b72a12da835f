"""The import graph of metacc/ and runtime/ (installed as metacc.runtime), read with ast.

The rule (docs/architecture.md): no cycle between modules; metacc.runtime holds
only what runs, so it imports neither the front end nor AD; no import inside a
function except of an optional heavy dependency. Today's code still breaks the
first and the last (issue 10), so those tests are xfail(strict=True): they say what the target is,
and the day a refactoring makes one hold, its XPASS fails the run and says to
drop the mark. Until then the *_do_not_grow tests keep the counts from rising;
lower their numbers as the refactoring removes what they count.

An edge A -> B: module A imports module B (`import B`, `from B import name`, or
`from P import B` when P.B is a module), anywhere in A except under
`if TYPE_CHECKING:`. Importing B does not count as importing its parent
packages, although Python runs their __init__ first: every module would
otherwise depend on metacc/__init__.py.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"metacc": ROOT / "metacc", "metacc.runtime": ROOT / "runtime"}
# imported on first use so that `import metacc` stays fast when they are not needed
# (scikit-learn and Hershey-Fonts: the `fewshot` extra, only for runtime/data's loaders)
OPTIONAL_HEAVY = ("lark", "numba", "matplotlib", "tqdm", "sklearn", "HersheyFonts")
# the layers metacc.runtime must not import (the compile pipeline's front half)
COMPILER_ONLY = ("metacc.frontend", "metacc.ad")

# today's counts (issue 10 brings them to 0); lower them, never raise them
IMPORTS_IN_FUNCTIONS_TODAY = 97
RUNTIME_COMPILER_IMPORTS_TODAY = 0
MODULES_IN_CYCLES_TODAY = 31


@dataclass(frozen=True)
class Import:
    module: str          # the importing module
    line: int
    target: str          # the module imported
    in_function: bool


def _name(package: str, path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


@cache
def modules() -> dict[str, Path]:
    """Module name -> file, for every module of metacc and metacc.runtime."""
    return {_name(pkg, p, base): p for pkg, base in PACKAGES.items() for p in sorted(base.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:                                   # relative: from the importing module's package
        package = module if is_package else module.rpartition(".")[0]
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names]


def _walk(node: ast.AST, in_function: bool):
    """(import node, inside a def?) for every import under node, skipping `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):   # never run
            for other in child.orelse:
                yield from _walk(other, in_function)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


@cache
def imports() -> tuple[Import, ...]:
    out = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _walk(tree, False):
            for target in _targets(node, module, path.name == "__init__.py"):
                out.append(Import(module, node.lineno, target, in_function))
    return tuple(out)


def _where(imp: Import) -> str:
    return f"{modules()[imp.module].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def _is_metacc(target: str) -> bool:
    return target == "metacc" or target.startswith("metacc.")


def imports_in_functions() -> list[Import]:
    """One per import statement inside a def (`from P import a, b` is one)."""
    found = {(i.module, i.line): i for i in imports()
             if i.in_function and i.target.split(".")[0] not in OPTIONAL_HEAVY}
    return list(found.values())


def runtime_compiler_imports() -> list[Import]:
    return [i for i in imports() if i.module.startswith("metacc.runtime")
            and any(i.target == p or i.target.startswith(p + ".") for p in COMPILER_ONLY)]


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), over every import."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for i in imports():
        if i.target in graph and i.target != i.module:
            graph[i.module].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_graph_covers_the_tree():
    assert {"metacc.ir.core", "metacc.ad.vjp", "metacc.runtime.module", "metacc.runtime"} <= set(modules())
    # every import of metacc's own names a module that exists (a moved file leaves none dangling)
    dangling = [_where(i) for i in imports() if _is_metacc(i.target) and i.target not in modules()]
    assert dangling == []
    assert any(i.in_function for i in imports()) and any(not i.in_function for i in imports())


def test_runtime_imports_neither_the_front_end_nor_ad():
    assert [_where(i) for i in runtime_compiler_imports()] == []


@pytest.mark.xfail(strict=True, reason="issue 10: four cycles, most broken by imports inside functions: the "
                   "front end (builtins <-> lib_*, exprs <-> calls ...), ad/ with ir.interp and passes, "
                   "metacc <-> metacc.runtime, ir.core <-> ir.printer")
def test_no_import_cycle_between_modules():
    assert cycles() == []


@pytest.mark.xfail(strict=True, reason="issue 10: about a hundred imports inside functions break cycles or "
                   "delay work; only optional heavy dependencies should be imported on use")
def test_imports_inside_functions_are_only_optional_heavy_dependencies():
    assert [_where(i) for i in imports_in_functions()] == []


def test_imports_inside_functions_do_not_grow():
    found = imports_in_functions()
    assert len(found) <= IMPORTS_IN_FUNCTIONS_TODAY, "\n".join(map(_where, found))


def test_runtime_imports_of_the_compiler_do_not_grow():
    found = runtime_compiler_imports()
    assert len(found) <= RUNTIME_COMPILER_IMPORTS_TODAY, "\n".join(map(_where, found))


def test_modules_in_cycles_do_not_grow():
    found = cycles()
    assert sum(map(len, found)) <= MODULES_IN_CYCLES_TODAY, found
