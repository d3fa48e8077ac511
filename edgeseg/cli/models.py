"""``edgeseg models`` (the model table) and ``edgeseg info MODEL`` (one model in detail).

torch is imported inside the commands only (the CLI must load without it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgeseg.errors import ConfigError
from edgeseg.models.registry import parse_hw

if TYPE_CHECKING:
    from edgeseg.models.profile import ModelProfile

FLOPS_NOTE = (
    "FLOPs: torch.utils.flop_counter.FlopCounterMode, 2 per multiply-accumulate, convs and "
    "matmuls only; batch 1."
)
PADDED_NOTE = "* the next size that fits the model's input multiple (input zero-padded)."
# Where `models` and `info` profile unless told: CamVid's frame size and class count (the setting
# of docs/models.md's table).
PROFILE_HW = "360x480"
PROFILE_CLASSES = 11


def parse_arg_value(text: str) -> Any:
    """'true'/'false' -> bool, integers -> int, decimals -> float, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_build_args(items: list[str]) -> dict[str, Any]:
    """['encoder=resnet34', 'deep_skip=false'] -> {'encoder': 'resnet34', 'deep_skip': False}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--arg {item!r} is not key=value; write it like --arg encoder=resnet34")
        if key.strip() == "num_classes":
            raise ConfigError("--arg num_classes is not accepted; give the class count with --classes N")
        out[key.strip()] = parse_arg_value(value)
    return out


def fit_hw(hw: tuple[int, int], multiple: int, min_size: int) -> tuple[int, int]:
    """Smallest size >= ``hw`` that is a multiple of ``multiple`` and at least ``min_size``."""
    return tuple(max(-(-v // multiple) * multiple, min_size) for v in hw)  # type: ignore[return-value]


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.3f} M"


def _models_table(rows: list[tuple[Any, str, ModelProfile]], hw: tuple[int, int]) -> Table:
    caption = f"{FLOPS_NOTE}\n{PADDED_NOTE}" if any("*" in at for _, at, _ in rows) else FLOPS_NOTE
    table = Table(title=f"edgeseg models at {hw[0]}x{hw[1]}", caption=caption)
    for col in ("model", "source paper", "params", "GFLOPs", "profiled at"):
        table.add_column(col, justify="right" if col in ("params", "GFLOPs") else "left")
    for spec, at, prof in rows:
        table.add_row(spec.name, spec.paper, fmt_params(prof.params), f"{prof.gflops:.2f}", at)
    return table


def _models_markdown(rows: list[tuple[Any, str, ModelProfile]], hw: tuple[int, int]) -> str:
    lines = [
        f"Models at {hw[0]}x{hw[1]}, {rows[0][2].num_classes} classes. {FLOPS_NOTE} {PADDED_NOTE}",
        "",
        "| model | source paper | params | GFLOPs | profiled at |",
        "|---|---|---:|---:|---|",
    ]
    for spec, at, prof in rows:
        cell = at.replace("*", "\\*")  # a literal asterisk in Markdown
        lines.append(f"| {spec.name} | {spec.paper} | {prof.params:,} | {prof.gflops:.2f} | {cell} |")
    return "\n".join(lines) + "\n"


def models_cmd(
    input_hw: Annotated[str, typer.Option("--input", help="Input size HxW for GFLOPs.")] = PROFILE_HW,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes.")] = PROFILE_CLASSES,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Also write STEM.json and STEM.md.")
    ] = None,
) -> None:
    """List the models: name, source paper, parameters and GFLOPs at one input size.

    A model whose input multiple does not divide the size is profiled at the next size that
    fits (zero padding), shown in the "profiled at" column.
    """
    from edgeseg.models import list_models
    from edgeseg.models.profile import profile_model

    hw = parse_hw(input_hw)
    rows = []
    for spec in list_models():
        at_hw = fit_hw(hw, spec.multiple, spec.min_size)
        prof = profile_model(spec.name, input_hw=at_hw, num_classes=classes)
        at = f"{at_hw[0]}x{at_hw[1]}" + ("" if at_hw == hw else "*")
        rows.append((spec, at, prof))
    Console().print(_models_table(rows, hw))
    if out is not None:
        from edgeseg.report import write_report

        data = {"input_hw": list(hw), "num_classes": classes, "flops_counter": FLOPS_NOTE,
                "models": [{**p.to_dict(), "paper": s.paper} for s, _, p in rows]}
        for path in write_report(out, data, _models_markdown(rows, hw)):
            typer.echo(f"wrote {path}")


def _info_tables(prof: ModelProfile, spec: Any) -> tuple[Table, Table]:
    summary = Table(title=f"{prof.name} at {prof.input_hw[0]}x{prof.input_hw[1]}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rule = (f"H, W multiples of {prof.multiple}" if prof.multiple > 1
            else f"any H, W >= {prof.min_size} (index unpooling restores odd sizes)")
    for k, v in (
        ("source paper", spec.paper),
        ("classes", str(prof.num_classes)),
        ("parameters", f"{prof.params:,}"),
        ("GFLOPs (batch 1)", f"{prof.gflops:.3f}"),
        ("activation memory (batch 1, fp32)", f"{prof.activation_bytes / 2**20:.1f} MiB"),
        ("minimum input multiple", str(prof.multiple)),
        ("input sizes", rule),
        ("index unpooling", "yes" if spec.has_unpool else "no"),
    ):
        summary.add_row(k, v)
    blocks = Table(title="parameters per block", caption=FLOPS_NOTE)
    for col in ("block", "params", "share", "GFLOPs"):
        blocks.add_column(col, justify="left" if col == "block" else "right")
    for b in prof.blocks:
        share = f"{100 * b.params / prof.params:.1f} %" if prof.params else "-"
        blocks.add_row(b.name, f"{b.params:,}", share, f"{b.flops / 1e9:.3f}")
    return summary, blocks


def info_cmd(
    model: Annotated[str, typer.Argument(help="Model name (see `edgeseg models`).")],
    input_hw: Annotated[str, typer.Option("--input", help="Input size HxW.")] = PROFILE_HW,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes.")] = PROFILE_CLASSES,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="Builder argument key=value (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Also write STEM.json.")] = None,
) -> None:
    """One model in detail: parameters per block, GFLOPs, activation memory, input multiple."""
    from edgeseg.models import get_spec
    from edgeseg.models.profile import profile_model

    hw = parse_hw(input_hw)
    spec = get_spec(model)
    prof = profile_model(model, input_hw=hw, num_classes=classes, **parse_build_args(arg or []))
    console = Console()
    for table in _info_tables(prof, spec):
        console.print(table)
    if out is not None:
        from edgeseg.io import write_json_atomic

        path = write_json_atomic(Path(f"{out}.json"), {**prof.to_dict(), "paper": spec.paper})
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("models")(models_cmd)
    app.command("info")(info_cmd)
