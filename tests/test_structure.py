"""The import graph: no cycles between packages or modules, and the layers of docs/design.md §2.

The graph is built from the sources with ``ast`` (nothing is imported): every ``import`` and
``from ... import``, lazy ones inside functions included, with the package folders of
``pyproject.toml`` (``edgeseg.export`` = ``export/`` ...). Imports under ``if TYPE_CHECKING:`` name
types only: they count for the layer order, not for cycles (they run nothing). A failure names
each offending import as ``file:line``.

Layers, lowest first (docs/design.md, "Layers and imports"); a module may import its own layer and
the layers below it, never one above:

    core modules (edgeseg/*.py) < edgeseg.unpool < edgeseg.data, edgeseg.models < edgeseg.runtime
    < edgeseg.export < edgeseg.calib < edgeseg.train < edgeseg.pipelines
    < edgeseg.cli, the ``edgeseg`` facade (edgeseg/__init__.py), edgeseg.__main__
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
ROOT = "edgeseg"
FACADE = (ROOT, f"{ROOT}.__main__")  # edgeseg/__init__.py and __main__.py: above everything they reach
LAYERS: tuple[tuple[str, ...], ...] = (
    (),  # 0: the core modules edgeseg/*.py (card, io, errors, metrics, ...)
    ("edgeseg.unpool",),
    ("edgeseg.data", "edgeseg.models"),
    ("edgeseg.runtime",),
    ("edgeseg.export",),
    ("edgeseg.calib",),
    ("edgeseg.train",),
    ("edgeseg.pipelines",),
    ("edgeseg.cli", *FACADE),
)


@dataclass(frozen=True)
class Import:
    """One import statement's edge: module ``src`` imports module ``dst`` at ``file:line``."""

    src: str
    dst: str
    file: str
    line: int
    type_only: bool = False  # inside ``if TYPE_CHECKING:``: names types, runs nothing

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.src} -> {self.dst}{', types only' if self.type_only else ''})"


def package_dirs() -> dict[str, Path]:
    """Import name -> folder of every package listed in pyproject (``package-dir`` applied)."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped: dict[str, str] = tool.get("package-dir", {})
    dirs = {}
    for pkg in tool["packages"]:
        base = max((m for m in mapped if pkg == m or pkg.startswith(m + ".")), key=len, default="")
        rest = pkg[len(base):].lstrip(".").split(".") if base else pkg.split(".")
        dirs[pkg] = REPO.joinpath(mapped[base] if base else "", *[p for p in rest if p])
    return dirs


def modules() -> dict[str, Path]:
    """Module name -> source file for every module of the listed packages."""
    out = {}
    for pkg, folder in package_dirs().items():
        for f in folder.glob("*.py"):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_pkg: bool, mods: dict[str, Path]) -> list[str]:
    """The modules an import statement names: ``from p import m`` counts as importing ``p`` and, when
    ``p.m`` is a module, ``p.m`` (strict: ``import p.m as m`` names ``p.m`` alone)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods)]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``tree`` and whether it sits in an ``if TYPE_CHECKING:`` block."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), type_only)
        else:
            yield from _walk(child, type_only)


def imports(mods: dict[str, Path]) -> list[Import]:
    """Every import between our modules (lazy and TYPE_CHECKING ones included)."""
    edges = []
    for name, path in mods.items():
        rel = path.relative_to(REPO).as_posix()
        for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
            for dst in _targets(node, name, path.stem == "__init__", mods):
                if dst in mods and dst != name:
                    edges.append(Import(name, dst, rel, node.lineno, type_only))
    return edges


def package_of(module: str, packages: Iterable[str]) -> str:
    """The node a module belongs to at package level: its top subpackage of edgeseg, else itself.

    ``edgeseg.runtime.backends.ort`` -> ``edgeseg.runtime``; core modules (``edgeseg.card``) and the
    facade (``edgeseg``) are nodes of their own.
    """
    parts = module.split(".")
    top = ".".join(parts[:2])
    return top if len(parts) > 1 and top in packages else module


def layer_of(node: str) -> int:
    return next((i for i, names in enumerate(LAYERS) if node in names), 0)


def cycles(edges: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in list(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


MODS = modules()
PACKAGES = frozenset(package_dirs())
EDGES = imports(MODS)
# A TYPE_CHECKING import runs nothing, so it cannot close an import-time cycle (mypy resolves those);
# it still states a dependency, so the layer order holds for it too.
RUN_EDGES = [e for e in EDGES if not e.type_only]


def _report(title: str, bad: list[Import]) -> str:
    return f"{title}:\n  " + "\n  ".join(str(e) for e in sorted(bad, key=lambda e: (e.file, e.line)))


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(package_dirs().values())
    folders = {p.parent for d in listed for p in d.rglob("__init__.py")}
    assert folders <= listed, f"package folders missing from pyproject packages: {sorted(folders - listed)}"


def test_no_package_cycle() -> None:
    def pkg(m: str) -> str:
        return package_of(m, PACKAGES)

    comps = cycles((pkg(e.src), pkg(e.dst)) for e in RUN_EDGES if pkg(e.src) != pkg(e.dst))
    bad = [e for c in comps for e in RUN_EDGES if {pkg(e.src), pkg(e.dst)} <= c and pkg(e.src) != pkg(e.dst)]
    assert not comps, _report(f"package cycles {[sorted(c) for c in comps]}, made by", bad)


def test_no_module_cycle() -> None:
    comps = cycles((e.src, e.dst) for e in RUN_EDGES)
    bad = [e for c in comps for e in RUN_EDGES if e.src in c and e.dst in c]
    assert not comps, _report(f"module cycles {[sorted(c) for c in comps]}, made by", bad)


def test_lower_layers_never_import_higher_ones() -> None:
    def layer(m: str) -> int:
        return layer_of(package_of(m, PACKAGES))

    bad = [e for e in EDGES if layer(e.dst) > layer(e.src)]
    names = ", ".join("/".join(n) or "core" for n in LAYERS)
    assert not bad, _report(f"imports against the layer order ({names}; lowest first)", bad)


def test_the_graph_is_the_whole_codebase() -> None:
    """Guards the checks above against an empty graph (a wrong folder mapping would pass them)."""
    expected = {"edgeseg.card", "edgeseg.runtime.api", "edgeseg.export.onnx_export", "edgeseg.cli.main"}
    assert expected <= MODS.keys()
    assert any(e.src == "edgeseg.cli.main" for e in EDGES)


def test_the_checks_can_fail() -> None:
    """The helpers find a planted cycle, a lazy import and a layer breach (so a pass means something)."""
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [{"a", "b", "c"}]
    tree = ast.parse("def f():\n    from edgeseg.export.onnx_export import export_onnx\n")
    fake = {"edgeseg.export.onnx_export": REPO / "export" / "onnx_export.py"}
    ((node, type_only),) = list(_walk(tree))
    assert not type_only and _targets(node, "edgeseg.runtime.api", False, fake) == [
        "edgeseg.export.onnx_export"]
    assert layer_of(package_of("edgeseg.runtime.api", PACKAGES)) < layer_of(
        package_of("edgeseg.export.onnx_export", PACKAGES))
    assert layer_of(package_of("edgeseg.card", PACKAGES)) == 0
