"""``edgeseg doctor``: what this machine has for edgeseg and what is missing, each with its fix.

Torch-free and quick (a few seconds). ``--board DIR`` judges a recorded board instead of this
machine (tests/data/jetson/*: Orin Nano, Orin NX, AGX Orin on JetPack 6.0/6.1/6.2). Exit code 0
when nothing failed, 1 when a check failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.errors import ConfigError


def doctor_cmd(
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Also write the checks and facts as JSON (+ Markdown next to it).")] = None,
    board: Annotated[Path | None, typer.Option(
        help="Judge a recorded board folder (see tests/data/jetson/) instead of this machine.")] = None,
) -> None:
    """Check Python, onnxruntime, TensorRT + plugin, CUDA, Jetson/JetPack, OpenCV video I/O, cameras, disk."""
    from rich.console import Console
    from rich.table import Table

    from edgeseg.io import write_json_atomic, write_text_atomic
    from edgeseg.runtime.doctor import as_markdown, diagnose, facts_dict, gather, recorded_facts, summary

    if out is not None and out.suffix != ".json":
        raise ConfigError(f"--out {out.name} must end in .json (a Markdown copy goes next to it)")
    if out is not None and not out.resolve().parent.is_dir():
        raise ConfigError(f"--out folder {out.parent} does not exist; create it or choose another path")
    if board is not None and not (board / "python.json").is_file():
        raise ConfigError(f"--board {board} is not a recorded board folder (no python.json); pass one of "
                          "tests/data/jetson/*")
    if board is not None and out is not None and out.resolve().is_relative_to(board.resolve()):
        raise ConfigError(f"--out {out} is inside the recorded board folder {board}, which is an input; "
                          "write it elsewhere, e.g. -o doctor.json")
    facts = recorded_facts(board) if board is not None else gather()
    rows = diagnose(facts)
    title = f"edgeseg doctor ({board.name if board else 'this machine'})"
    table = Table(title=title)
    for col in ("check", "status", "found", "fix"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "red", "info": "cyan"}
    for r in rows:
        table.add_row(r.name, f"[{style[r.status]}]{r.status}[/]", r.found, r.fix)
    console = Console()
    console.print(table)
    console.print(summary(rows), highlight=False)
    if out is not None:
        write_json_atomic(out, {"checks": [r.__dict__ for r in rows], "facts": facts_dict(facts)})
        md = write_text_atomic(out.with_suffix(".md"), as_markdown(rows, title))
        console.print(f"wrote {out}, {md}", highlight=False)
    if any(r.status == "fail" for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
