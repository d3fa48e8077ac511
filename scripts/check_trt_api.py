#!/usr/bin/env python3
"""Static checks of edgeseg's TensorRT Python code, for machines without TensorRT (docs/design.md §10).

1. **API by class** (default): every TensorRT attribute edgeseg's TensorRT modules use is resolved
   to the class (or enum) it is looked up on: ``trt.X`` on the module, ``builder.X`` on
   ``Builder``, ``trt.BuilderFlag.FP16`` on the enum ``BuilderFlag``, ``config.get_timing_cache()
   .serialize`` on ``ITimingCache`` (see ``RECEIVERS`` and ``RETURNS``). Each (class, name) pair
   must be bound in the pybind11 sources of the ``tensorrt`` module of TensorRT 10.3.0 and 11.1
   (``../shared/tensorrt/<version>/python/src``: ``py::class_`` / ``py::enum_`` statements and
   their ``.def`` / ``.def_property*`` / ``.value`` chains). Exact names in their class: a name
   that only occurs inside another name (``INT8`` in ``UINT8``) or in another class does not count.
   Names the Python package adds in ``__init__.py`` (``nptype``, ``__version__``) are looked up in
   the bindings wheels of .cache/trt-wheels when present. ``TRT10_ONLY_NAMES``
   (export/trt_engine.py) are checked against 10.x only.
2. **Types** (``--mypy``): mypy against ``tensorrt-stubs`` (10.13), installed with
   ``pip install --no-deps --target .cache/trt-stubs`` (``--patch-stubs`` repairs the stub file's
   syntax errors: parameters named ``in``, one non-default after defaults).

Usage: python scripts/check_trt_api.py [--sources ../shared/tensorrt] [--markdown] [--mypy]
Exit status 1 when a name is missing or mypy reports errors.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRT_MODULES = ("runtime/trt_common.py", "export/trt_engine.py", "export/trt_build.py",
               "runtime/backends/trt.py")
SOURCES = REPO.parent / "shared" / "tensorrt"
VERSIONS = {"10.3": "v10.3.0", "11.1": "v11.1"}  # TensorRT version -> folder under SOURCES
WHEELS = {"10.3": "tensorrt_cu12_bindings-10.3.0-*.whl", "11.4": "tensorrt_cu13_bindings-11.4.0*.whl"}
WHEEL_FOR = {"10.3": "10.3", "11.1": "11.4"}  # the wheel whose __init__.py stands for that version
MODULE = "trt"  # scope name of the tensorrt module itself
ROOTS = frozenset({"trt"})
# Variables (and self._<name> attributes) of edgeseg's TensorRT modules -> the class they hold.
RECEIVERS = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
             "config": "IBuilderConfig", "profile": "IOptimizationProfile", "engine": "ICudaEngine",
             "context": "IExecutionContext", "runtime": "Runtime", "tensor": "ITensor", "err": "ParserError",
             "severity": "ILogger.Severity", "registry": "IPluginRegistry"}
# (class, method) -> class of the object it returns, for chained calls.
RETURNS = {("IBuilderConfig", "get_timing_cache"): "ITimingCache",
           ("IBuilderConfig", "create_timing_cache"): "ITimingCache",
           ("INetworkDefinition", "get_output"): "ITensor", ("OnnxParser", "get_error"): "ParserError",
           (MODULE, "get_plugin_registry"): "IPluginRegistry",
           ("Builder", "create_network"): "INetworkDefinition",
           ("Builder", "create_builder_config"): "IBuilderConfig",
           ("Builder", "create_optimization_profile"): "IOptimizationProfile",
           ("Runtime", "deserialize_cuda_engine"): "ICudaEngine",
           ("ICudaEngine", "create_execution_context"): "IExecutionContext"}


@dataclass(frozen=True)
class Use:
    """One TensorRT attribute edgeseg uses: ``name`` looked up on ``scope`` (class or 'trt')."""

    scope: str
    name: str

    def __str__(self) -> str:
        return f"{self.scope}.{self.name}"


class _Resolver:
    """Resolves an expression to the TensorRT class of its value (None: not TensorRT)."""

    def __init__(self, classes: frozenset[str]) -> None:
        self.classes = classes  # qualified Python names of bound classes/enums ('ILogger.Severity')
        self.uses: dict[Use, list[str]] = {}

    def scope(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return MODULE if node.id in ROOTS else RECEIVERS.get(node.id)
        if isinstance(node, ast.Call):
            inner = self.scope(node.func)
            if inner is not None and inner in self.classes:
                return inner  # trt.Builder(logger) -> a Builder
            return self._returned(node.func)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                attr = node.attr.lstrip("_")
                return MODULE if attr in ROOTS else RECEIVERS.get(attr)
            owner = self.scope(node.value)
            if owner is None:
                return None
            nested = node.attr if owner == MODULE else f"{owner}.{node.attr}"
            return nested if nested in self.classes else None
        return None

    def _returned(self, func: ast.expr) -> str | None:
        if isinstance(func, ast.Attribute):
            owner = self.scope(func.value)
            if owner is not None:
                return RETURNS.get((owner, func.attr))
        return None

    def visit(self, tree: ast.AST, where: str) -> None:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                continue  # self.<attr> is ours; what is reached through it is resolved by scope()
            owner = self.scope(node.value)
            if owner is not None:
                self.uses.setdefault(Use(owner, node.attr), []).append(f"{where}:{node.lineno}")


def collect_uses(paths: list[Path], classes: frozenset[str]) -> dict[Use, list[str]]:
    """Every (class, name) edgeseg's TensorRT modules use -> ['file:line', ...]."""
    resolver = _Resolver(classes)
    for path in paths:
        resolver.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)),
                       str(path.relative_to(REPO)))
    return resolver.uses


def trt10_only(path: Path = REPO / "export" / "trt_engine.py") -> frozenset[str]:
    """``TRT10_ONLY_NAMES`` of export/trt_engine.py ('BuilderFlag.FP16', ...)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TRT10_ONLY_NAMES"
                                                for t in node.targets):
            return frozenset(str(name) for name in ast.literal_eval(node.value))
    return frozenset()


# ---- the binding sources ----------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BINDING = re.compile(r"py::(class_|enum_)\s*<")
_MEMBER = re.compile(r'\.\s*(def|def_static|def_property|def_property_readonly|def_readwrite|def_readonly'
                     r'|value)'
                     r'\s*\(\s*(?:"(\w+)"|(py::init))')
_MODULE_FN = re.compile(r'\bm\s*\.\s*(?:def|add_object)\s*\(\s*"(\w+)"')


def _matching(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket closing the one at text[i]."""
    depth = 0
    while i < len(text):
        if text[i] == '"':
            i = _STRING.match(text, i).end()  # type: ignore[union-attr]
            continue
        depth += text[i] == open_
        depth -= text[i] == close
        i += 1
        if depth == 0:
            return i
    return i


def _statement_end(text: str, i: int) -> int:
    """Index of the ';' ending the statement that starts at i (brackets and strings skipped)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _STRING.match(text, i).end()  # type: ignore[union-attr]
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == ";" and depth <= 0:
            return i
        i += 1
    return i


def _members(chain: str) -> set[str]:
    return {m.group(2) or "__init__" for m in _MEMBER.finditer(chain)}


def binding_api(src: Path) -> dict[str, set[str]]:
    """Qualified Python class/enum name (or 'trt' for the module) -> the names bound on it, from the
    pybind11 sources under ``src`` (``.../python/src``)."""
    api: dict[str, set[str]] = {MODULE: set()}
    for path in sorted(src.rglob("*.cpp")):
        text = re.sub(r"//[^\n]*", "", path.read_text(encoding="utf-8", errors="replace"))
        variables: dict[str, str] = {}
        for m in _BINDING.finditer(text):
            after = _matching(text, m.end() - 1, "<", ">")
            head = re.match(r'\s*(\w+)?\s*[({]\s*(\w+)\s*,\s*"(\w+)"', text[after:])
            if head is None:
                continue
            var, parent, name = head.groups()
            owner = MODULE if parent == "m" else variables.get(parent, parent)
            qual = name if owner == MODULE else f"{owner}.{name}"
            api.setdefault(qual, set())
            api.setdefault(owner, set()).add(name)  # trt.ILogger, ILogger.Severity
            if var:
                variables[var] = qual
            end = _statement_end(text, after + head.end())
            api[qual] |= _members(text[after + head.end():end])
        for var, qual in variables.items():  # later statements on a named binding: var.def(...)...;
            for m in re.finditer(rf"\b{var}\s*\.\s*def", text):
                api[qual] |= _members(text[m.start() + len(var):_statement_end(text, m.start())])
        api[MODULE] |= {m.group(1) for m in _MODULE_FN.finditer(text)}
    return api


def wheel_init_names(wheel: Path) -> frozenset[str]:
    """Top-level names the ``tensorrt`` package's ``__init__.py`` defines (``nptype``, ...)."""
    with zipfile.ZipFile(wheel) as zf:
        init = zf.read("tensorrt_bindings/__init__.py").decode("utf-8", "replace")
    names: set[str] = set()
    for node in ast.parse(init).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def find_wheel(folder: Path, version: str) -> Path | None:
    hits = sorted(folder.glob(WHEELS[version]))
    return hits[-1] if hits else None


@dataclass(frozen=True)
class Row:
    """One used name and where each TensorRT version has it: 'yes', 'no', 'n/a' (10.x-only name),
    'py' (defined by the package's __init__.py), or '?' (package-level, no wheel to look in)."""

    use: Use
    where: tuple[str, ...]
    present: dict[str, str]


def check(sources: Path = SOURCES, wheels: Path = REPO / ".cache" / "trt-wheels") -> list[Row]:
    """The class-scoped check of every TensorRT name edgeseg uses (FileNotFoundError when the binding
    sources are absent)."""
    apis = {}
    for version, folder in VERSIONS.items():
        src = sources / folder / "python" / "src"
        if not src.is_dir():
            raise FileNotFoundError(f"no TensorRT {version} binding sources at {src}")
        apis[version] = binding_api(src)
    classes = frozenset(q for api in apis.values() for q in api if q != MODULE)
    uses = collect_uses([REPO / m for m in TRT_MODULES], classes)
    only10 = trt10_only()
    rows = []
    for use in sorted(uses, key=str):
        present = {}
        for version, api in apis.items():
            if not version.startswith("10.") and str(use) in only10:
                present[version] = "n/a"
            elif use.name in api.get(use.scope, set()):
                present[version] = "yes"
            elif use.scope == MODULE:
                wheel = find_wheel(wheels, WHEEL_FOR[version])
                present[version] = ("?" if wheel is None else
                                    "py" if use.name in wheel_init_names(wheel) else "no")
            else:
                present[version] = "no"
        rows.append(Row(use, tuple(uses[use]), present))
    return rows


def missing(rows: list[Row]) -> list[str]:
    return [f"{r.use} (TensorRT {v}; {r.where[0]})" for r in rows for v, p in r.present.items() if p == "no"]


def markdown(rows: list[Row]) -> str:
    versions = list(VERSIONS)
    lines = ["| edgeseg uses | where | " + " | ".join(f"TensorRT {v}" for v in versions) + " |",
             "|---|---|" + "---|" * len(versions)]
    for r in rows:
        lines.append(f"| `{r.use}` | {r.where[0]} | " + " | ".join(r.present[v] for v in versions) + " |")
    return "\n".join(lines)


def patch_stubs(folder: Path) -> None:
    """Make tensorrt-stubs 10.13 parse: rename parameters called ``in``, give a default where a
    non-default follows defaults, stub the optional ``tensorrt_libs`` it imports. Idempotent."""
    pyi = folder / "tensorrt_bindings" / "tensorrt.pyi"
    text = pyi.read_text(encoding="utf-8")
    text = re.sub(r"([(,] *)in: ", r"\1in_: ", text)
    text = text.replace("power: Weights = None, channel_axis: int)",
                        "power: Weights = None, channel_axis: int = ...)")
    pyi.write_text(text, encoding="utf-8")
    libs = folder / "tensorrt_libs"
    libs.mkdir(exist_ok=True)
    (libs / "__init__.pyi").write_text("", encoding="utf-8")


def run_mypy(stubs: Path) -> tuple[int, str]:
    """mypy on the TensorRT modules; the package layout (edgeseg.export = export/) is mirrored with
    symlinks because mypy cannot follow setuptools' editable-install import hook."""
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "edgeseg"
        pkg.mkdir()
        for entry in (REPO / "edgeseg").iterdir():
            (pkg / entry.name).symlink_to(entry)
        for sub in ("export", "calib", "runtime"):
            (pkg / sub).symlink_to(REPO / sub)
        modules = [m.removesuffix(".py").replace("/", ".").replace("export.", "edgeseg.export.")
                   .replace("runtime.", "edgeseg.runtime.") for m in TRT_MODULES]
        config = Path(tmp) / "mypy.ini"  # the stub file itself has type errors: not ours to report
        config.write_text("[mypy]\n[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt]\nignore_errors = True\n")
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--python-version", "3.11",
               "--follow-imports=silent", "--no-incremental", "--show-error-codes",
               *[a for m in modules for a in ("-m", m)]]
        env = {"MYPYPATH": f"{tmp}:{stubs}", "PATH": "/usr/bin:/bin"}
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, check=False)
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=SOURCES, help="folder with v10.3.0/ and v11.1/")
    ap.add_argument("--wheels", type=Path, default=REPO / ".cache" / "trt-wheels")
    ap.add_argument("--markdown", action="store_true", help="print the table of every name and version")
    ap.add_argument("--mypy", action="store_true", help="also type-check against tensorrt-stubs")
    ap.add_argument("--stubs", type=Path, default=REPO / ".cache" / "trt-stubs")
    ap.add_argument("--patch-stubs", type=Path, help="repair a tensorrt-stubs install folder and exit")
    args = ap.parse_args()
    if args.patch_stubs:
        patch_stubs(args.patch_stubs)
        return 0
    try:
        rows = check(args.sources, args.wheels)
    except FileNotFoundError as e:
        print(f"error: {e}; pass --sources <folder with v10.3.0/ and v11.1/>", file=sys.stderr)
        return 2
    if args.markdown:
        print(markdown(rows))
    gone = missing(rows)
    print(f"{len(rows)} TensorRT names used by edgeseg, checked by class in "
          f"{', '.join('TensorRT ' + v for v in VERSIONS)}: {len(gone)} missing")
    for line in gone:
        print(f"  missing: {line}")
    status = int(bool(gone))
    if args.mypy:
        rc, out = run_mypy(args.stubs)
        print(f"mypy (tensorrt-stubs): {'ok' if rc == 0 else 'errors'}\n{out.strip()}")
        status |= rc != 0
    return status


if __name__ == "__main__":
    sys.exit(main())
