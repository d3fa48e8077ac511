"""``edgeseg import MODEL.onnx``: a foreign segmentation ONNX -> an edgeseg artifact (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeseg.card import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.errors import ConfigError
from edgeseg.export.options import DEFAULT_SCALE, ImportOptions, Layout, ModelFacts

_D, _F = ImportOptions(), ModelFacts()  # every default below comes from these
SCALE_TEXT = f"1/{round(1 / DEFAULT_SCALE)}"  # how --scale's default is written on the command line


def _numbers(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _triple(text: str | None, what: str) -> tuple[float, ...] | None:
    """Three comma-separated numbers (--mean/--std), as ``calib-set`` parses them; None if not given."""
    from edgeseg.cli.calib import _floats

    return None if text is None else _floats(text, what)


def _scale(text: str | None) -> float | None:
    """``1/255``, ``0.00392`` or ``1``."""
    if text is None:
        return None
    try:
        if "/" in text:
            num, den = text.split("/")
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--scale {text!r} is not a number; write it like 1/255 or 1") from None


def import_cmd(
    model: Annotated[Path, typer.Argument(help="Foreign ONNX file (one image input, logits or labels out).")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Write a copy here (card OUT.json) instead of the card next to MODEL.")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", help="Input HxW; needed when the graph's height/width are dynamic.")] = None,
    classes: Annotated[str | None, typer.Option(
        help="Class names a,b,c, a count N, or a classes.json file.")] = None,
    data: Annotated[str | None, typer.Option(
        help="Take the classes from this dataset's description (as eval does).")] = _D.data,
    split: Annotated[str, typer.Option(help="Dataset split used with --data.")] = _D.data_split,
    mean: Annotated[str | None, typer.Option(
        help=f"Mean per channel after --scale. [default: ImageNet {_numbers(IMAGENET_MEAN)}]")] = None,
    std: Annotated[str | None, typer.Option(
        help=f"Std per channel after --scale. [default: ImageNet {_numbers(IMAGENET_STD)}]")] = None,
    scale: Annotated[str | None, typer.Option(
        help=f"Pixel scale before mean/std. [default: {SCALE_TEXT}]")] = None,
    bgr: Annotated[bool, typer.Option("--bgr", help="The model takes BGR (default RGB).")] = _F.bgr,
    layout: Annotated[Layout | None, typer.Option(
        help="Image input layout, when the graph's shape cannot tell.")] = _D.layout,
    output: Annotated[str | None, typer.Option(help="Output to use when the model has several.")] = _D.output,
    name: Annotated[str | None, typer.Option(help="Model name in the card. [default: file stem]")] = _F.name,
) -> None:
    """Make an edgeseg artifact (card) from a foreign ONNX (help text: IMPORT_HELP)."""
    from edgeseg.card import card_path
    from edgeseg.export.onnx_import import ImportRecord, import_onnx
    from edgeseg.guard import Input, data_input, guard_outputs
    from edgeseg.models.registry import parse_hw

    if out is not None:  # without -o only MODEL's card is written; -o must not replace MODEL itself
        guard_outputs({"-o/--out": [out, card_path(out)]},
                      [Input(model, "MODEL"), *data_input(data), *data_input(classes, "--classes")])
    facts = ModelFacts(classes=classes, mean=_triple(mean, "mean"), std=_triple(std, "std"),
                       scale=_scale(scale), bgr=bgr, name=name)
    opts = ImportOptions(input_hw=None if input is None else parse_hw(input), facts=facts, data=data,
                         data_split=split, layout=layout, output=output)
    err = Console(stderr=True)
    with err.status("importing") as status:
        path, card = import_onnx(model, out, opts, log=lambda m: status.update(m))
    console = Console()
    rec = ImportRecord.of(card)
    inp = rec.input
    console.print(f"input  {inp['name']!r} {inp['layout'].upper()} {inp['dtype']} {inp['shape']} -> runs at "
                  f"{card.input_hw[0]}x{card.input_hw[1]}", highlight=False)
    console.print(f"output {rec.output['name']!r} {rec.output['kind']} {rec.output['shape']}; "
                  f"{card.num_classes} classes: {', '.join(card.class_names[:8])}"
                  f"{' …' if card.num_classes > 8 else ''}", highlight=False)
    pre = rec.preprocessing
    if "formula" in pre:
        console.print(f"preprocessing: x = (pixel * {pre['scale']:.6g} - mean) / std, mean {pre['mean']}, "
                      f"std {pre['std']}, {pre['channel_order']}", highlight=False)
    else:
        console.print(f"preprocessing: {pre['input']}, {pre['channel_order']}", highlight=False)
    if rec.assumed:
        err.print(f"[yellow]assumed (not in the graph; pass the flags if the model was trained otherwise): "
                  f"{'; '.join(rec.assumed)}[/yellow]", highlight=False)
    for step in rec.adapter:
        console.print(f"adapter: {step}", highlight=False)
    same = path.resolve() == model.resolve()
    what = "card" if same else "adapted copy" if rec.adapter else "copy"
    console.print(f"wrote {path}.json ({what}{'' if what == 'card' else f' {path}'}); "
                  "next: edgeseg calib-set DATA --model "
                  f"{path} -o calib.json", highlight=False)


IMPORT_HELP = (
    "Make an edgeseg artifact from a foreign segmentation ONNX (torchvision, smp, MMSegmentation, "
    "your own torch.onnx.export): inspect the graph and write its model card."
    "\n\nFound in the graph: the image input (NCHW or NHWC, float32 or uint8; dynamic H/W need "
    "--input) and the output (logits at the input size, logits at a lower resolution, or labels). "
    "Not in the graph, so given or assumed: the classes (--classes or --data; their count must "
    "equal the output channels) and the preprocessing (default x = (pixel/255 - ImageNet mean) / "
    "ImageNet std, RGB; printed)."
    "\n\nA file with edgeseg's I/O (float32 NCHW, fixed size, logits at the input size) is left "
    "unchanged and gets its card MODEL.onnx.json. Otherwise a small standard-op adapter (transpose, "
    "uint8 cast, upsampling, one-hot labels) makes an adapted copy, MODEL.edgeseg.onnx (or -o). "
    "The card records architecture 'external', the file's SHA-256 and where it came from."
)


def register(app: typer.Typer) -> None:
    app.command("import", help=IMPORT_HELP)(import_cmd)
