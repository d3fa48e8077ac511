#!/usr/bin/env python3
"""Static checks of edgeseg's TensorRT Python code, for machines without TensorRT (DESIGN.md §7).

1. **API names**: every name the TensorRT modules reach through ``trt.`` (and through the
   TensorRT objects they hold: builder, network, parser, config, profile, engine, context,
   runtime, tensor, parser error) must exist in the ``tensorrt_bindings`` binary of the
   ``tensorrt-cu12-bindings`` 10.3 and ``tensorrt-cu13-bindings`` 11.4 wheels. pybind11 keeps
   every bound name as a C string; the linker may store a name as the tail of a longer string
   ("INT8" inside "UINT8"), so a name counts as present when some string equals it or ends with
   it. Names listed in ``TRT10_ONLY_NAMES`` (export/trt_engine.py) are checked against 10.3 only.
2. **Types** (``--mypy``): mypy against ``tensorrt-stubs`` (10.13), installed with
   ``pip install --no-deps --target .cache/trt-stubs`` (``--patch-stubs`` repairs the stub file's
   syntax errors: parameters named ``in``, one non-default after defaults).

Usage: python scripts/check_trt_api.py [--wheels .cache/trt-wheels] [--mypy] [--patch-stubs DIR]
Exit status 1 when a name is missing or mypy reports errors. scripts/setup.sh fetches the wheels.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRT_MODULES = ("export/trt_common.py", "export/trt_engine.py", "export/trt_build.py",
               "runtime/backends/trt.py")
WHEELS = {"10.3": "tensorrt_cu12_bindings-10.3.0-*.whl", "11.4": "tensorrt_cu13_bindings-11.4.0*.whl"}
ROOTS = frozenset({"trt"})
RECEIVERS = frozenset({"builder", "network", "parser", "config", "profile", "engine", "context", "runtime",
                       "tensor", "err", "severity", "registry"})


def _base(node: ast.expr) -> str | None:
    """The variable an attribute chain starts from ('trt', 'builder', self._engine -> 'engine')."""
    while True:
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return node.attr.lstrip("_")
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def collect_names(paths: list[Path]) -> dict[str, list[str]]:
    """Attribute name -> ['file:line', ...] for attributes reached from TensorRT roots/receivers."""
    found: dict[str, list[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                continue  # self.<attr> is ours; what is reached through it is checked below
            base = _base(node.value)
            if base in ROOTS or base in RECEIVERS:
                found.setdefault(node.attr, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def trt10_only(path: Path = REPO / "export" / "trt_engine.py") -> frozenset[str]:
    """Leaf names of ``TRT10_ONLY_NAMES`` (e.g. 'FP16' of 'BuilderFlag.FP16')."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TRT10_ONLY_NAMES"
                                                for t in node.targets):
            return frozenset(str(name).split(".")[-1] for name in ast.literal_eval(node.value))
    return frozenset()


def wheel_names(wheel: Path) -> frozenset[str]:
    """Identifier-like C strings of tensorrt_bindings/tensorrt.so plus top-level names of __init__.py."""
    with zipfile.ZipFile(wheel) as zf:
        binary = zf.read("tensorrt_bindings/tensorrt.so")
        init = zf.read("tensorrt_bindings/__init__.py").decode("utf-8", "replace")
    names = {m.decode() for m in re.findall(rb"[A-Za-z_][A-Za-z0-9_]{1,}(?=\x00)", binary)}
    for node in ast.parse(init).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def present(name: str, names: frozenset[str]) -> bool:
    """Exact, or the tail of a longer stored string (linker tail merging)."""
    return name in names or any(s.endswith(name) for s in names)


def find_wheel(folder: Path, version: str) -> Path | None:
    hits = sorted(folder.glob(WHEELS[version]))
    return hits[-1] if hits else None


def check_wheels(folder: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """version -> missing names (with locations); version -> names checked (FileNotFoundError if a
    wheel is absent)."""
    used = collect_names([REPO / m for m in TRT_MODULES])
    only10 = trt10_only()
    missing: dict[str, list[str]] = {}
    checked: dict[str, int] = {}
    for version in WHEELS:
        wheel = find_wheel(folder, version)
        if wheel is None:
            raise FileNotFoundError(f"no {WHEELS[version]} in {folder}; run scripts/setup.sh")
        names = wheel_names(wheel)
        wanted = [n for n in used if not (version != "10.3" and n in only10)]
        checked[version] = len(wanted)
        missing[version] = [f"{n} ({', '.join(used[n][:2])})" for n in sorted(wanted)
                            if not present(n, names)]
    return missing, checked


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
    ap.add_argument("--wheels", type=Path, default=REPO / ".cache" / "trt-wheels")
    ap.add_argument("--mypy", action="store_true", help="also type-check against tensorrt-stubs")
    ap.add_argument("--stubs", type=Path, default=REPO / ".cache" / "trt-stubs")
    ap.add_argument("--patch-stubs", type=Path, help="repair a tensorrt-stubs install folder and exit")
    args = ap.parse_args()
    if args.patch_stubs:
        patch_stubs(args.patch_stubs)
        return 0
    missing, checked = check_wheels(args.wheels)
    status = 0
    for version, names in missing.items():
        print(f"TensorRT {version}: {checked[version]} names checked, {len(names)} missing")
        for n in names:
            print(f"  missing: {n}")
        status |= bool(names)
    if args.mypy:
        rc, out = run_mypy(args.stubs)
        print(f"mypy (tensorrt-stubs): {'ok' if rc == 0 else 'errors'}\n{out.strip()}")
        status |= rc != 0
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
