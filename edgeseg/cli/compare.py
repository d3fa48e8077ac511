"""``edgeseg compare``: the bench JSONs of several machines in one table and one plot (torch-free)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer


def compare_cmd(
    files: Annotated[list[Path], typer.Argument(
        help="Bench results, one per machine: the STEM.json each 'edgeseg bench' wrote.")],
    labels: Annotated[str | None, typer.Option(
        help="Machine names, comma list in file order (default: each file's name without .json "
             "and without a leading 'bench-').")] = None,
    out: Annotated[Path, typer.Option(
        "-o", "--out", help="Output stem: writes OUT.json, OUT.md and OUT.png.")] = Path("compare"),
) -> None:
    """Compare bench results across machines: one table (latency, throughput, speed-up vs the
    first file, mIoU, power) and one latency-vs-mIoU plot.

    The files must come from the same edgeseg version (same bench schema).
    """
    from rich.console import Console

    from edgeseg.runtime.compare import load_machines, rich_table, write_compare

    names = None if labels is None else [n.strip() for n in labels.split(",")]
    machines = load_machines(list(files), names)
    parts = ["edgeseg", "compare", *(str(f) for f in files)]
    parts += ["--labels", labels] if labels is not None else []
    command = " ".join(shlex.quote(p) for p in [*parts, "--out", str(out)])
    paths, rows = write_compare(machines, out, command)
    console = Console()
    console.print(rich_table(machines, rows))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
