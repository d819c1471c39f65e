"""The package's import graph: no cycle between modules or subpackages (imports inside functions
and ``importlib.import_module("finmlsec....")`` included), and the bottom layer imports nothing
above it. Read from the source with ``ast``, so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "finmlsec"

#: the bottom layer: each module and the only package modules it may import
BOTTOM: dict[str, set[str]] = {
    "finmlsec.errors": set(),
    "finmlsec.ids": set(),
    "finmlsec.arrays": set(),
    "finmlsec.registry": {"finmlsec.errors"},
    "finmlsec.schema": {"finmlsec.errors"},
}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package directory ``root``."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _targets(mod: str, is_pkg: bool, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.module == "__future__":
            return []
        base = mod.split(".")
        if node.level:
            base = base[: len(base) - node.level + (1 if is_pkg else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        return [prefix, *(f"{prefix}.{a.name}" for a in node.names)]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source (a package's own
    ``__init__`` excluded: importing a submodule runs it, which is not a cycle)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for t in _targets(mod, path.name == "__init__.py", node):
                if t in mods and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same edges between the package's direct children (``finmlsec.X``)."""
    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    out: dict[str, set[str]] = {}
    for v, ws in graph.items():
        for w in ws:
            a, b = top(v), top(w)
            if a != b and "." in a and "." in b:
                out.setdefault(a, set()).add(b)
                out.setdefault(b, set())
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC)


def test_no_import_cycle_between_modules(graph):
    assert cycles(graph) == []


def test_no_import_cycle_between_subpackages(graph):
    assert cycles(subpackage_graph(graph)) == []


@pytest.mark.parametrize("module", sorted(BOTTOM))
def test_the_bottom_layer_imports_nothing_above_it(graph, module):
    assert module in graph, f"{module} is missing"
    assert graph[module] <= BOTTOM[module], sorted(graph[module] - BOTTOM[module])


def test_the_checks_find_a_cycle_hidden_in_a_function_or_import_module(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("import importlib\nimportlib.import_module('pkg.d')\n")
    (pkg / "d.py").write_text("from pkg import c\n")
    g = import_graph(pkg)
    assert cycles(g) == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]
    assert cycles(subpackage_graph(g)) == [["pkg.a", "pkg.sub"], ["pkg.c", "pkg.d"]]
    (pkg / "sub" / "b.py").write_text("x = 1\n")
    (pkg / "d.py").write_text("")
    assert cycles(import_graph(pkg)) == []
