"""``edgeseg export`` (checkpoint -> verified ONNX) and ``edgeseg check-ops`` (TensorRT op check).

``export`` imports torch inside the command; ``check-ops`` is torch-free (onnx only).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgeseg.cli.importing import SCALE_TEXT, _scale, _triple
from edgeseg.errors import ConfigError
from edgeseg.export.options import (
    MAX_OPSET,
    MIN_OPSET,
    TARGET_UNPOOL,
    ExportOptions,
    ExportUnpool,
    ModelFacts,
    ModuleExportOptions,
    Target,
    TrtChoice,
)

if TYPE_CHECKING:
    from edgeseg.export.onnx_export import ExportRecord

_D, _F = ExportOptions(), ModelFacts()  # every default below comes from these
_RULE = ", ".join(f"{t} -> {u}" for t, u in TARGET_UNPOOL.items())


def _hw(text: str | None) -> tuple[int, int] | None:
    from edgeseg.models.registry import parse_hw

    return None if text is None else parse_hw(text)


def _verification_table(record: ExportRecord) -> Table:
    table = Table(title="PyTorch vs onnxruntime (CPU)")
    for col in ("inputs", "frames", "argmax agreement", "max |diff|", "mean |diff|"):
        table.add_column(col, justify="left" if col == "inputs" else "right")
    for r in record.verification:
        table.add_row(r.source, str(r.frames), f"{100 * r.argmax_agreement:.4f} %",
                      f"{r.max_abs_diff:.2e}", f"{r.mean_abs_diff:.2e}")
    return table


def _print_opchecks(console: Console, checks: list[Any], model: Any, **native: str) -> None:
    """The TensorRT parser check per version, then (plugin mode) which runtimes cannot run it;
    ``native``: checkpoint / out paths for the native-export command it suggests."""
    from edgeseg.unpool.onnx_graph import stock_runtime_note

    for c in checks:
        style = "green" if c.ok else "yellow"
        console.print(f"[{style}]{c.summary()}[/{style}]", highlight=False)
    note = stock_runtime_note(model, **native)
    if note is not None:
        console.print(f"[yellow]{note}[/yellow]", highlight=False, soft_wrap=True)


def export_cmd(
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Output ONNX file (card: OUT.json). [default: next to the checkpoint: best/model.onnx]"))] = None,
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint: model.safetensors or its folder (or --module instead).")] = None,
    target: Annotated[Target, typer.Option(
        help=f"Where the file will run. Picks the default --unpool: {_RULE}.")] = _D.target,
    unpool: Annotated[ExportUnpool | None, typer.Option(
        help="SegNet-family unpool: plugin = one custom node for the edgeseg TensorRT plugin; "
             "native = standard ONNX ops, no plugin needed anywhere. [default: from --target]")] = _D.unpool,
    opset: Annotated[int, typer.Option(help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}).")] = _D.opset,
    input: Annotated[str | None, typer.Option(
        "--input", help="Input HxW, e.g. 360x480. [default: the checkpoint card's size]")] = None,
    dynamic_batch: Annotated[bool, typer.Option(help="Make the batch dimension dynamic.")] = _D.dynamic_batch,
    simplify: Annotated[bool, typer.Option(help="Simplify the graph with onnxsim.")] = _D.simplify,
    data: Annotated[str | None, typer.Option(
        help="Also verify on real frames from this dataset (folder, list file or 'synthetic').")] = _D.data,
    split: Annotated[str, typer.Option(help="Dataset split used with --data.")] = _D.data_split,
    frames: Annotated[int, typer.Option(help="Frames verified with --data.")] = _D.verify_frames,
    min_agreement: Annotated[float, typer.Option(
        help="Refuse to write below this argmax agreement with PyTorch, in %.")] = 100 * _D.min_agreement,
    force: Annotated[bool, typer.Option(help="Write even if verification fails.")] = _D.force,
    threads: Annotated[int | None, typer.Option(
        help="onnxruntime threads for verification (default: all cores).")] = _D.threads,
    module: Annotated[str | None, typer.Option(
        help="Export your own nn.Module: pkg.mod:factory (called with --module-arg values).")] = None,
    module_arg: Annotated[list[str] | None, typer.Option(
        help="key=value for the factory (JSON values: 21, true, \"text\"); repeatable.")] = None,
    weights: Annotated[Path | None, typer.Option(
        help="State dict for --module: .safetensors, or .pt/.pth read with weights_only=True.")] = None,
    classes: Annotated[str | None, typer.Option(
        help="With --module: class names a,b,c, a count N, or a classes.json (or --data).")] = None,
    mean: Annotated[str | None, typer.Option(help="With --module: mean per channel after --scale.")] = None,
    std: Annotated[str | None, typer.Option(help="With --module: std per channel after --scale.")] = None,
    scale: Annotated[str | None, typer.Option(
        help=f"With --module: pixel scale [default: {SCALE_TEXT}].")] = None,
    bgr: Annotated[bool, typer.Option("--bgr", help="With --module: the model takes BGR.")] = _F.bgr,
    argmax: Annotated[bool, typer.Option(
        help="ArgMax inside the graph: (N,H,W) labels out. Off by default: the exported file is the "
             "logits reference for calibrate / precision-report / int8-sensitivity; make deployment "
             "files with edgeseg deploy.")] = _D.argmax,
    frame_size: Annotated[str | None, typer.Option(
        help="Preprocessing inside the graph for uint8 BGR frames of this size HxW.")] = None,
) -> None:
    """Checkpoint (or --module) -> verified ONNX file + card (help text: EXPORT_HELP)."""
    from edgeseg.workspace import beside, need_out, resolve

    checkpoint = None if checkpoint is None else resolve(checkpoint, "checkpoint")
    out = need_out(out, None if checkpoint is None else beside(checkpoint, ".onnx"), "model.onnx")
    from edgeseg.card import card_path
    from edgeseg.guard import Input, data_input, guard_outputs, model_input

    guard_outputs({"-o/--out": [out, card_path(out)]},
                  [*model_input(checkpoint, "the checkpoint"), *data_input(data),
                   *([Input(weights, "--weights")] if weights is not None else [])])
    if (module is None) == (checkpoint is None):
        raise ConfigError("pass a CHECKPOINT or --module pkg.mod:factory, not both (or neither)")
    if module is not None:
        if input is None:
            raise ConfigError("--module needs the input size: pass --input HxW (e.g. --input 360x480)")
        if argmax or frame_size:
            raise ConfigError("--argmax/--frame-size apply to checkpoint exports; for --module, export "
                              f"first, then: edgeseg deploy {out} -o {out.with_suffix('')}.deploy.onnx")
    else:
        module_only = (("--module-arg", module_arg), ("--weights", weights), ("--classes", classes),
                       ("--mean", mean), ("--std", std), ("--scale", scale), ("--bgr", bgr))
        given = [flag for flag, value in module_only if value]
        if given:
            raise ConfigError(f"{given[0]} applies to --module exports only; a checkpoint's card has it")
    opts = ExportOptions(target=target, unpool=unpool, opset=opset, input_hw=_hw(input),
                         dynamic_batch=dynamic_batch, simplify=simplify, data=data, data_split=split,
                         verify_frames=frames, min_agreement=min_agreement / 100.0, force=force,
                         threads=threads, argmax=argmax, frame_hw=_hw(frame_size))
    console = Console(stderr=True)
    with console.status("exporting") as status:  # a spinner on terminals, silent otherwise
        if module is not None:
            from edgeseg.export.module_export import export_factory

            facts = ModelFacts(classes=classes, mean=_triple(mean, "mean"), std=_triple(std, "std"),
                               scale=_scale(scale), bgr=bgr)
            mopts = ModuleExportOptions(export=opts, facts=facts)
            path, card = export_factory(module, module_arg or [], weights, out, mopts,
                                        log=lambda m: status.update(m))
        elif checkpoint is not None:  # exactly one of the two, checked above
            from edgeseg.export.onnx_export import export_onnx

            path, card = export_onnx(checkpoint, out, opts, log=lambda m: status.update(m))
    _print_export(console, path, card, checkpoint)


def _print_export(console: Console, path: Path, card: Any, checkpoint: Path | None) -> None:
    """The verification table, forced failures, the TensorRT op check and the files written."""
    import onnx

    from edgeseg.export.onnx_export import ExportRecord
    from edgeseg.export.opcheck import check_ops, trt_versions

    record = ExportRecord.of(card)
    out_console = Console()
    out_console.print(_verification_table(record))
    for failure in record.forced_despite:
        console.print(f"[yellow]warning: verification failed ({failure}); written because of "
                      "--force[/yellow]", highlight=False)
    model = onnx.load(str(path), load_external_data=False)
    native_out = path.with_name(path.name.removesuffix(".onnx") + ".native.onnx")
    _print_opchecks(out_console, [check_ops(model, v) for v in trt_versions()], model,
                    checkpoint=str(checkpoint), out=str(native_out),
                    input_hw=f"{card.input_hw[0]}x{card.input_hw[1]}")
    out_console.print(f"wrote {path} (unpool {card.unpool_mode}, {card.input_hw[0]}x{card.input_hw[1]}) "
                      f"and its card {path}.json", highlight=False)


def check_ops_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX file to check.")],
    trt: Annotated[TrtChoice, typer.Option(help="TensorRT version to check against.")] = "all",
    list_ops: Annotated[bool, typer.Option("--list", help="Also list every op type and count.")] = False,
) -> None:
    """TensorRT op check of an ONNX file (help text: CHECK_OPS_HELP)."""
    from edgeseg.workspace import resolve

    model = resolve(model, "onnx")
    import onnx

    from edgeseg.export.opcheck import check_file

    checks = check_file(model, trt)  # checks the path and that it parses
    graph = onnx.load(str(model), load_external_data=False)
    console = Console()
    if list_ops:
        table = Table(title=f"ops in {model}")
        table.add_column("op")
        table.add_column("nodes", justify="right")
        for op, n in checks[0].ops.items():
            table.add_row(op, str(n))
        console.print(table)
    _print_opchecks(console, checks, graph)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


EXPORT_HELP = (
    "Export a checkpoint to ONNX, verify it against PyTorch, and check it against TensorRT's parser."
    "\n\nUnpool (SegNet family): plugin = one custom node for the edgeseg TensorRT plugin, native = "
    f"standard ops. --target picks it ({_RULE}); --unpool overrides the choice; the Python API "
    "(ExportOptions) follows the same rule. Models without unpool export the same way (card "
    "unpool 'none')."
    "\n\nNothing is written unless every step passes: onnxsim, the ONNX checker, and argmax "
    "agreement >= --min-agreement between PyTorch and onnxruntime on random inputs and, with "
    "--data, on real frames. The card OUT.json records the unpool mode, the checkpoint's SHA-256, "
    "the verification figures and the TensorRT 10.3 / 11.x op check."
    "\n\nYour own model: --module pkg.mod:factory [--module-arg k=v] [--weights W.safetensors] "
    "--input HxW --classes ... exports any nn.Module the same way (card architecture 'external'); "
    "every MaxUnpool2d / F.max_unpool2d with kernel 2, stride 2 goes through edgeseg's unpool "
    "(plugin or native, as --target says); other unpool configurations are refused."
)
CHECK_OPS_HELP = (
    "List the ops of an ONNX file and check them against TensorRT's ONNX parser (10.3, 11.x)."
    "\n\nPlugin nodes pass only if they are the edgeseg unpool plugin with matching "
    "plugin_version / plugin_namespace. A file with custom nodes (plugin mode) is also flagged: "
    "stock onnxruntime, OpenVINO and OpenCV DNN cannot run it; the native export can. "
    "Exit code 1 if a requested version cannot parse the file."
)


def register(app: typer.Typer) -> None:
    app.command("export", help=EXPORT_HELP)(export_cmd)
    app.command("check-ops", help=CHECK_OPS_HELP)(check_ops_cmd)
