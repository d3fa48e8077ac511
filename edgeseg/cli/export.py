"""``edgeseg export`` (checkpoint -> verified ONNX) and ``edgeseg check-ops`` (TensorRT op check).

``export`` imports torch inside the command; ``check-ops`` is torch-free (onnx only).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class Target(str, Enum):
    tensorrt = "tensorrt"
    onnxruntime = "onnxruntime"


class Unpool(str, Enum):
    plugin = "plugin"
    native = "native"


class TrtVersion(str, Enum):
    v10_3 = "10.3"
    v11 = "11"
    all = "all"


def default_unpool(target: Target, unpool: Unpool | None) -> str:
    """Explicit --unpool wins; else plugin for TensorRT, native for onnxruntime."""
    if unpool is not None:
        return unpool.value
    return "plugin" if target is Target.tensorrt else "native"


def _hw(text: str | None) -> tuple[int, int] | None:
    from edgeseg.models.registry import parse_hw

    return None if text is None else parse_hw(text)


def _verification_table(extra: dict[str, Any]) -> Table:
    table = Table(title="PyTorch vs onnxruntime (CPU)")
    for col in ("inputs", "frames", "argmax agreement", "max |diff|", "mean |diff|"):
        table.add_column(col, justify="left" if col == "inputs" else "right")
    for r in extra["verification"]:
        table.add_row(r["source"], str(r["frames"]), f"{100 * r['argmax_agreement']:.4f} %",
                      f"{r['max_abs_diff']:.2e}", f"{r['mean_abs_diff']:.2e}")
    return table


def _print_opchecks(console: Console, checks: list[Any]) -> None:
    for c in checks:
        style = "green" if c.ok else "yellow"
        console.print(f"[{style}]{c.summary()}[/{style}]", highlight=False)


def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint: model.safetensors or its folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output ONNX file (card: OUT.json).")],
    target: Annotated[Target, typer.Option(
        help="Where the file will run. Picks the default --unpool: tensorrt -> plugin, "
             "onnxruntime -> native.")] = Target.tensorrt,
    unpool: Annotated[Unpool | None, typer.Option(
        help="SegNet-family unpool: plugin = one custom node for the edgeseg TensorRT plugin; "
             "native = standard ONNX ops, no plugin needed anywhere. [default: from --target]")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (9..20).")] = 17,
    input: Annotated[str | None, typer.Option(
        "--input", help="Input HxW, e.g. 360x480. [default: the checkpoint card's size]")] = None,
    dynamic_batch: Annotated[bool, typer.Option(help="Make the batch dimension dynamic.")] = False,
    simplify: Annotated[bool, typer.Option(help="Simplify the graph with onnxsim.")] = True,
    data: Annotated[str | None, typer.Option(
        help="Also verify on real frames from this dataset (folder, list file or 'synthetic').")] = None,
    split: Annotated[str, typer.Option(help="Dataset split used with --data.")] = "val",
    frames: Annotated[int, typer.Option(help="Frames verified with --data.")] = 20,
    min_agreement: Annotated[float, typer.Option(
        help="Refuse to write below this argmax agreement with PyTorch, in %.")] = 99.9,
    force: Annotated[bool, typer.Option(help="Write even if verification fails.")] = False,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads for verification.")] = None,
    argmax: Annotated[bool, typer.Option(
        help="ArgMax inside the graph: (N,H,W) labels out. Off by default: the exported file is the "
             "logits reference for calibrate / precision-report / int8-sensitivity; make deployment "
             "files with edgeseg deploy.")] = False,
    frame_size: Annotated[str | None, typer.Option(
        help="Preprocessing inside the graph for uint8 BGR frames of this size HxW.")] = None,
) -> None:
    """Checkpoint -> verified ONNX file + card (help text: EXPORT_HELP)."""
    from edgeseg.export.onnx_export import export_onnx
    from edgeseg.export.opcheck import check_ops, trt_versions

    console = Console(stderr=True)
    with console.status("exporting") as status:  # a spinner on terminals, silent otherwise
        path, card = export_onnx(
            checkpoint, out, log=lambda m: status.update(m),
            unpool=default_unpool(target, unpool), opset=opset, input_hw=_hw(input),
            dynamic_batch=dynamic_batch, simplify=simplify, data=data, data_split=split,
            verify_frames=frames, min_agreement=min_agreement / 100.0, force=force, threads=threads,
            argmax=argmax, frame_hw=_hw(frame_size),
        )
    out_console = Console()
    out_console.print(_verification_table(card.extra["export"]))
    for failure in card.extra["export"]["forced_despite"]:
        console.print(f"[yellow]warning: verification failed ({failure}); written because of "
                      "--force[/yellow]", highlight=False)
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    _print_opchecks(out_console, [check_ops(model, v) for v in trt_versions()])
    out_console.print(f"wrote {path} (unpool {card.unpool_mode}, {card.input_hw[0]}x{card.input_hw[1]}) "
                      f"and its card {path}.json", highlight=False)


def check_ops_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX file to check.")],
    trt: Annotated[TrtVersion, typer.Option(help="TensorRT version to check against.")] = TrtVersion.all,
    list_ops: Annotated[bool, typer.Option("--list", help="Also list every op type and count.")] = False,
) -> None:
    """TensorRT op check of an ONNX file (help text: CHECK_OPS_HELP)."""
    from edgeseg.export.opcheck import check_file

    checks = check_file(model, trt.value)
    console = Console()
    if list_ops:
        table = Table(title=f"ops in {model}")
        table.add_column("op")
        table.add_column("nodes", justify="right")
        for op, n in checks[0].ops.items():
            table.add_row(op, str(n))
        console.print(table)
    _print_opchecks(console, checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


EXPORT_HELP = (
    "Export a checkpoint to ONNX, verify it against PyTorch, and check it against TensorRT's parser."
    "\n\nUnpool (SegNet family): --target tensorrt (default) exports the unpool as one custom node "
    "for the edgeseg TensorRT plugin; --target onnxruntime exports it from standard ops (native). "
    "--unpool overrides the choice. Models without unpool export the same way (card unpool 'none')."
    "\n\nNothing is written unless every step passes: onnxsim, the ONNX checker, and argmax "
    "agreement >= --min-agreement between PyTorch and onnxruntime on random inputs and, with "
    "--data, on real frames. The card OUT.json records the unpool mode, the checkpoint's SHA-256, "
    "the verification figures and the TensorRT 10.3 / 11.x op check."
)
CHECK_OPS_HELP = (
    "List the ops of an ONNX file and check them against TensorRT's ONNX parser (10.3, 11.x)."
    "\n\nPlugin nodes pass only if they are the edgeseg unpool plugin with matching "
    "plugin_version / plugin_namespace. Exit code 1 if a requested version cannot parse the file."
)


def register(app: typer.Typer) -> None:
    app.command("export", help=EXPORT_HELP)(export_cmd)
    app.command("check-ops", help=CHECK_OPS_HELP)(check_ops_cmd)
