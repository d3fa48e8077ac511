"""Print edgeseg's requirements as pip sees them on a Jetson (aarch64, Linux, CPython 3.10).

pip evaluates environment markers against the machine it runs on, even with ``--platform``, so
resolving "edgeseg for aarch64" on an x86 CI host would silently use the x86 branch of every
marker. This evaluates pyproject.toml's markers for the target instead and prints plain
requirement lines for ``pip install --dry-run --platform ... -r`` (and for installing "the
Jetson way" on an x86 host).

    python scripts/jetson_requirements.py [--extra tensorrt] [--python 3.10] [--machine aarch64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def target_requirements(extras: list[str], python: str, machine: str) -> list[str]:
    """The requirement lines that apply on ``machine``/``python`` (markers evaluated, then dropped)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        if extra not in project.get("optional-dependencies", {}):
            sys.exit(f"error: pyproject.toml has no extra {extra!r}; extras: "
                     f"{', '.join(project.get('optional-dependencies', {}))}")
        lines += project["optional-dependencies"][extra]
    env = {"platform_machine": machine, "platform_system": "Linux", "sys_platform": "linux",
           "os_name": "posix", "python_version": python, "python_full_version": f"{python}.0",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    out = []
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="also an extra's requirements")
    parser.add_argument("--python", default="3.10", help="target Python major.minor (JetPack 6: 3.10)")
    parser.add_argument("--machine", default="aarch64", help="target platform_machine")
    args = parser.parse_args()
    print("\n".join(target_requirements(args.extra, args.python, args.machine)))


if __name__ == "__main__":
    main()
