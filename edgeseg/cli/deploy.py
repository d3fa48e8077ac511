"""``edgeseg deploy MODEL.onnx -o OUT.onnx``: a deployment file with argmax (and optionally
preprocessing) inside the graph. Torch-free (onnx + onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.export.options import DeployOptions

_D = DeployOptions()  # every default below comes from here
DEPLOY_HELP = (
    "Make a deployment ONNX file (labels out, optionally uint8 frames in) from an edgeseg ONNX file."
    "\n\nFrom any edgeseg ONNX file (FP32, FP16 or INT8): ArgMax inside the "
    "graph (on by default) so the model returns (N,H,W) uint8 labels instead of K float logit maps "
    "(a 4K-times smaller copy out of the model and no host argmax; low-resolution heads are upsampled "
    "first), and with --frame-size HxW the preprocessing too (the model takes the camera's uint8 BGR "
    "frame of that size). Build the TensorRT engine from OUT, stream it, eval it. Keep the logits "
    "file for calibrate, precision-report and int8-sensitivity. The result is checked against the "
    "input file with onnxruntime before anything is written."
)


def deploy_cmd(
    model: Annotated[Path, typer.Argument(help="edgeseg ONNX file (with its card).")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Output ONNX file (card: OUT.json). [default: MODEL with .deploy.onnx]"))] = None,
    argmax: Annotated[bool, typer.Option(
        help="ArgMax inside the graph: labels out, not logits.")] = _D.argmax,
    frame_size: Annotated[str | None, typer.Option(
        help="Preprocessing inside the graph for uint8 BGR frames of this size HxW, e.g. 720x1280.")] = None,
    frames: Annotated[int, typer.Option(
        min=1, help="Synthetic frames for the onnxruntime check.")] = _D.check_frames,
) -> None:
    """Deployment file with argmax / preprocessing inside the graph (help text: DEPLOY_HELP)."""
    from edgeseg.workspace import beside, resolve

    model = resolve(model, "int8", "fp16", "onnx")  # a run folder: its most deployable ONNX
    out = out if out is not None else beside(model, ".deploy.onnx")
    from edgeseg.export.deploy_graph import DeployCheck, deploy_onnx
    from edgeseg.models.registry import parse_hw

    opts = DeployOptions(argmax=argmax, frame_hw=parse_hw(frame_size) if frame_size else None,
                         check_frames=frames)
    path, card = deploy_onnx(model, out, opts)
    check = DeployCheck.from_json(card.extra["deploy"])
    size = "" if card.frame_hw is None else f" {card.frame_hw[0]}x{card.frame_hw[1]}"
    diff = "" if check.max_abs_input_diff is None else \
        f", in-graph preprocessing max |diff| {check.max_abs_input_diff:.3g}"
    typer.echo(f"wrote {path} (output {card.output_kind}, input {card.input_kind}{size}); labels agree "
               f"with the host path on {100 * check.label_agreement:.3f} % of pixels over "
               f"{check.frames} frames{diff}")


def register(app: typer.Typer) -> None:
    app.command("deploy", help=DEPLOY_HELP)(deploy_cmd)
