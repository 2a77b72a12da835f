"""The import graph of metacc/ and runtime/ (installed as metacc.runtime), read with ast.

The rule (docs/architecture.md): no cycle between modules; metacc.runtime holds
only what runs, so it imports neither the front end nor AD, not even through
other modules; no import inside a function except one that defers an optional
heavy dependency (`defers_a_heavy_dependency`). The *_do_not_grow tests keep the
counts from rising; lower their numbers when what they count goes away.

An edge A -> B: module A imports module B (`import B`, `from B import name`, or
`from P import B` when P.B is a module), anywhere in A except under
`if TYPE_CHECKING:`. Importing B does not count as importing its parent
packages, although Python runs their __init__ first: every module would
otherwise depend on metacc/__init__.py. What an import loads (`reached`, for the
heavy dependencies and the runtime's reach) does follow them.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"metacc": ROOT / "metacc", "metacc.runtime": ROOT / "runtime"}
# imported on first use so that `import metacc` stays fast when they are not needed
# (scikit-learn and Hershey-Fonts: the `fewshot` extra, only for runtime/data's loaders)
OPTIONAL_HEAVY = ("lark", "numba", "matplotlib", "tqdm", "sklearn", "HersheyFonts")
# the layers metacc.runtime must not import (the compile pipeline's front half)
COMPILER_ONLY = ("metacc.frontend", "metacc.ad")

# today's counts; lower them, never raise them. The imports inside functions are all allowed
# (each defers numba or lark: metacc/__init__.py's compile, the CLI's, load_source's parser);
# the ceiling makes a new one a decision
IMPORTS_IN_FUNCTIONS_TODAY = 6
RUNTIME_COMPILER_IMPORTS_TODAY = 0
MODULES_IN_CYCLES_TODAY = 0


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


def _parents(module: str) -> list[str]:
    """The packages Python initialises before `module`: metacc.a.b -> metacc, metacc.a."""
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def reached(module: str, edges: Iterable[Import], *, module_level_only: bool) -> set[str]:
    """Every name that importing `module` imports, directly or through our modules, itself
    included: edges followed transitively from module to target, and from each module to its
    parent packages (Python runs their __init__ first); with module_level_only, the imports
    inside functions (not run by the import) are not followed. A target outside metacc is a
    leaf (numpy's own imports are not read)."""
    by_module: dict[str, list[str]] = {}
    for i in edges:
        if not (module_level_only and i.in_function):
            by_module.setdefault(i.module, []).append(i.target)
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if _is_metacc(m):
            todo += _parents(m) + by_module.get(m, [])
    return seen


def heavy_loaded(module: str, edges: Iterable[Import] | None = None) -> frozenset[str]:
    """The OPTIONAL_HEAVY packages that `import module` loads: its module-level imports
    followed transitively (`reached`), the imports inside functions not."""
    found = reached(module, imports() if edges is None else edges, module_level_only=True)
    return frozenset(name.split(".")[0] for name in found) & frozenset(OPTIONAL_HEAVY)


def defers_a_heavy_dependency(imp: Import, edges: Iterable[Import] | None = None) -> bool:
    """Is this import inside a function allowed? Only when it defers an optional heavy
    dependency until it is needed: its target is an OPTIONAL_HEAVY package, or a module of
    ours whose import loads one (`heavy_loaded`) that importing the importing module does not
    load already. Anything else belongs at the top of the module: an import in a function
    that hides a cycle, or that defers a module costing nothing heavy, is flagged (and the
    cycle test reads every import, inside functions too, so a deferred one never hides a
    cycle either)."""
    if imp.target.split(".")[0] in OPTIONAL_HEAVY:
        return True
    if not _is_metacc(imp.target):
        return False
    edges = imports() if edges is None else tuple(edges)
    return bool(heavy_loaded(imp.target, edges) - heavy_loaded(imp.module, edges))


def needless_imports_in_functions(edges: Iterable[Import] | None = None) -> list[Import]:
    """The imports inside functions the rule does not allow, one per statement."""
    edges = imports() if edges is None else tuple(edges)
    found = {(i.module, i.line): i for i in edges if i.in_function and not defers_a_heavy_dependency(i, edges)}
    return list(found.values())


def runtime_compiler_imports() -> list[Import]:
    return [i for i in imports() if i.module.startswith("metacc.runtime")
            and any(i.target == p or i.target.startswith(p + ".") for p in COMPILER_ONLY)]


def cycles(edges: Iterable[Import] | None = None) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), over every import
    (inside functions too): of metacc's modules, or of the modules `edges` name."""
    if edges is None:
        names, edges = set(modules()), imports()
    else:
        edges = tuple(edges)
        names = {m for i in edges for m in (i.module, i.target) if _is_metacc(m)}
    graph: dict[str, set[str]] = {m: set() for m in names}
    for i in edges:
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


def test_runtime_reaches_neither_the_front_end_nor_ad_through_other_modules():
    # what importing a module of the runtime loads (its own imports inside functions are
    # read by the test above; following every one would run through metacc/__init__.py's
    # compile(), which the runtime never calls)
    found = {m: sorted(x for x in reached(m, imports(), module_level_only=True)
                       if any(x == p or x.startswith(p + ".") for p in COMPILER_ONLY))
             for m in modules() if m.startswith("metacc.runtime")}
    assert {m: hits for m, hits in found.items() if hits} == {}


def test_no_import_cycle_between_modules():
    assert cycles() == []


def test_imports_inside_functions_only_defer_optional_heavy_dependencies():
    assert [_where(i) for i in needless_imports_in_functions()] == []


def test_import_metacc_loads_no_heavy_dependency():
    assert heavy_loaded("metacc") == frozenset()
    assert heavy_loaded("metacc.frontend") == frozenset()      # its parser (lark) on first use


def test_a_needless_import_inside_a_function_is_flagged():
    lines = iter(range(1, 100))

    def imp(module, target, in_function=False):
        return Import(module, next(lines), target, in_function)

    edges = (
        imp("metacc.parse", "lark"),
        imp("metacc.driver", "metacc.parse", in_function=True),      # defers lark: allowed
        imp("metacc.driver", "metacc.light", in_function=True),      # nothing heavy behind it
        imp("metacc.driver", "json", in_function=True),              # the standard library
        imp("metacc.fast", "numba"),
        imp("metacc.jit", "metacc.fast"),
        imp("metacc.fast", "metacc.jit", in_function=True),          # numba is loaded already
        imp("metacc.low", "metacc.high"),
        imp("metacc.high", "metacc.low", in_function=True),          # hides a cycle
        imp("metacc.cli", "tqdm", in_function=True),                 # a heavy package itself
    )
    flagged = sorted((i.module, i.target) for i in needless_imports_in_functions(edges))
    assert flagged == [("metacc.driver", "json"), ("metacc.driver", "metacc.light"),
                       ("metacc.fast", "metacc.jit"), ("metacc.high", "metacc.low")]
    assert cycles(edges) == [["metacc.fast", "metacc.jit"], ["metacc.high", "metacc.low"]]
    # and in the real graph: deferring a module that loads nothing heavy is flagged
    assert not defers_a_heavy_dependency(imp("metacc.cli", "metacc.errors", in_function=True))
    assert defers_a_heavy_dependency(imp("metacc.cli", "metacc.frontend.parse", in_function=True))


def test_imports_inside_functions_do_not_grow():
    found = imports_in_functions()
    assert len(found) <= IMPORTS_IN_FUNCTIONS_TODAY, "\n".join(map(_where, found))


def test_runtime_imports_of_the_compiler_do_not_grow():
    found = runtime_compiler_imports()
    assert len(found) <= RUNTIME_COMPILER_IMPORTS_TODAY, "\n".join(map(_where, found))


def test_modules_in_cycles_do_not_grow():
    found = cycles()
    assert sum(map(len, found)) <= MODULES_IN_CYCLES_TODAY, found
