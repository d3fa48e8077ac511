"""``edgeseg calib-set``, ``calibrate``, ``convert-fp16`` and ``precision-report`` (torch-free).

Choices and defaults come from the library (``CalibSetOptions``, ``CalibrateOptions``, the
``Strategy``/``Method``/``Placement`` Literals); each command parses, calls one function, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# These modules import numpy, OpenCV and onnx inside their functions, so --help stays fast.
from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, Strategy
from edgeseg.calib.precision import DEFAULT_SPLIT as PRECISION_SPLIT
from edgeseg.calib.quantize import CalibrateOptions, Method, Placement
from edgeseg.calib.sensitivity import SensitivityOptions
from edgeseg.card import ChannelOrder
from edgeseg.errors import ConfigError

_SET = CalibSetOptions()
_CAL = CalibrateOptions()
_SEN = SensitivityOptions()


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--{what} {text!r} is not a comma-separated list of numbers; e.g. "
                          "0.485,0.456,0.406") from None
    if len(values) != 3:
        raise ConfigError(f"--{what} has {len(values)} values; expected 3 (one per colour channel)")
    return values


def _preprocess(model: Path | None, input_hw: str | None, mean: str | None, std: str | None,
                channel_order: ChannelOrder) -> Preprocess:
    from edgeseg.card import read_card

    if model is not None:
        if input_hw or mean or std:
            raise ConfigError("--model gives the preprocessing; drop --input/--mean/--std or drop --model")
        return Preprocess.from_card(read_card(model))
    if input_hw is None:
        raise ConfigError("the calibration set needs the model's preprocessing: pass --model MODEL.onnx "
                          "(recommended) or --input HxW [--mean ... --std ...]")
    from edgeseg.models.registry import parse_hw

    pre = Preprocess(parse_hw(input_hw))
    return Preprocess(pre.input_hw, _floats(mean, "mean") if mean else pre.mean,
                      _floats(std, "std") if std else pre.std, channel_order)


def calib_set_cmd(
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Manifest JSON to write. [default: calib-set.json beside --model]"))] = None,
    data: Annotated[str | None, typer.Option(
        help="Dataset folder, list file, or a folder of images.", show_default=False)] = None,
    data_arg: Annotated[str | None, typer.Argument(
        metavar="DATA", help="Same as --data (older spelling).", show_default=False)] = None,
    num: Annotated[int, typer.Option(help="Number of images.")] = _SET.num,
    strategy: Annotated[Strategy | None, typer.Option(
        help="class-balanced favours images of rare classes (needs masks; data without masks falls back "
             "to random unless --strategy is given), random draws uniformly. [default: class-balanced]"
    )] = _SET.strategy,
    seed: Annotated[int, typer.Option(help="Random seed (selection order / tie breaks).")] = _SET.seed,
    split: Annotated[str, typer.Option(help="Split to draw from (keep val for evaluation).")] = _SET.split,
    model: Annotated[Path | None, typer.Option(
        help="Take input size/mean/std from this model's card.")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", help="Input HxW when no --model, e.g. 360x480.")] = None,
    mean: Annotated[str | None, typer.Option(help="Mean per channel, e.g. 0.485,0.456,0.406.")] = None,
    std: Annotated[str | None, typer.Option(help="Std per channel, e.g. 0.229,0.224,0.225.")] = None,
    channel_order: Annotated[ChannelOrder, typer.Option(help="Channel order the network takes.")] = (
        Preprocess.channel_order),
) -> None:
    """Choose calibration images and write their manifest (paths, SHA-256, preprocessing, set hash)."""
    from edgeseg.workspace import need_out, resolve

    model = None if model is None else resolve(model, "onnx")
    out = need_out(out, None if model is None else model.with_name("calib-set.json"), "calib-set.json")
    from edgeseg.calib.calib_set import make_calib_set
    from edgeseg.guard import data_input, guard_outputs, model_input

    if data is not None and data_arg is not None:
        raise ConfigError(f"the dataset was given twice ({data_arg} and --data {data}); give it once, "
                          "as --data DATA")
    data = data if data is not None else data_arg
    if data is None:
        raise ConfigError("no dataset given; pass --data DATA (a dataset folder, list file or image folder)")
    guard_outputs({"-o/--out": out}, [*model_input(model), *data_input(data, "--data")])
    pre = _preprocess(model, input, mean, std, channel_order)
    path, m = make_calib_set(data, pre, out, CalibSetOptions(num, strategy, split, seed))
    console = Console()
    if strategy is None and m.strategy != "class-balanced":
        console.print(f"{data} has no masks: chose images at random (class-balanced needs masks)")
    console.print(f"wrote {path}: {len(m.images)} images ({m.strategy}), set {m.set_sha256[:12]}")
    for name, cov in (m.class_coverage or {}).items():
        console.print(f"  {name}: in {cov.chosen_images} chosen / {cov.all_images} candidate images")


def calibrate_cmd(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX file from edgeseg export.")],
    calib_set: Annotated[Path, typer.Option("--set", help="Calibration set manifest (edgeseg calib-set).")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Output file. [default: MODEL.int8.onnx]")] = None,
    method: Annotated[Method, typer.Option(
        help="Activation range method; minmax kept mIoU closest to FP32 on every model measured "
             "(docs/precision.md).")] = _CAL.method,
    placement: Annotated[Placement, typer.Option(
        help="tensorrt: Q/DQ on weighted-layer inputs (TensorRT's recommendation); full: onnxruntime's "
             "placement (fast INT8 on onnxruntime CPU).")] = _CAL.placement,
    percentile: Annotated[float, typer.Option(help="Percentile for --method percentile.")] = _CAL.percentile,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Range cache folder. [default: $EDGESEG_CACHE/calibration or "
             "~/.cache/edgeseg/calibration].")] = _CAL.cache_dir,
    root: Annotated[Path | None, typer.Option(
        help="Image root if the dataset moved since the manifest.")] = _CAL.root,
    keep_float: Annotated[list[str] | None, typer.Option(
        help="Layer (node name) to leave out of INT8; repeat. See edgeseg int8-sensitivity.")] = None,
) -> None:
    """INT8 explicit quantization (Q/DQ, symmetric, per-channel weights) calibrated on the CPU."""
    from edgeseg.workspace import resolve

    model = resolve(model, "onnx")  # a run folder: its FP32 ONNX
    from edgeseg.calib.quantize import calibrate
    from edgeseg.card import card_path
    from edgeseg.guard import Input, guard_outputs, model_input

    out = out or model.with_name(model.name.removesuffix(".onnx") + ".int8.onnx")
    guard_outputs({"-o/--out": [out, card_path(out)]},
                  [*model_input(model), Input(calib_set, "the calibration set (--set)")])
    options = CalibrateOptions(method=method, placement=placement, percentile=percentile, cache_dir=cache_dir,
                               root=root, keep_float=tuple(keep_float or ()))
    path, card = calibrate(model, calib_set, out, options)
    info = card.extra["calibration"]
    typer.echo(f"wrote {path} (INT8 Q/DQ, {method}, {info['images']} images, "
               f"{'ranges from cache' if info['cache_hit'] else 'ranges computed and cached'})")


def convert_fp16_cmd(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX file from edgeseg export.")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Output file. [default: MODEL.fp16.onnx]")] = None,
) -> None:
    """FP16 ONNX with FP32 inputs/outputs (the unpool plugin node stays FP32)."""
    from edgeseg.workspace import resolve

    model = resolve(model, "onnx")
    from edgeseg.calib.fp16 import convert_fp16, default_fp16_path
    from edgeseg.card import card_path
    from edgeseg.guard import guard_outputs, model_input

    target = out if out is not None else default_fp16_path(model)
    guard_outputs({"-o/--out": [target, card_path(target)]}, model_input(model))
    path, card = convert_fp16(model, target)
    typer.echo(f"wrote {path} (FP16, FP32 I/O; {card.extra['fp16']['clamped_weights']} weights clamped)")


def precision_report_cmd(
    models: Annotated[list[Path], typer.Argument(help="The FP32 ONNX and its FP16/INT8 versions.")],
    data: Annotated[str, typer.Option(help="Labelled dataset (folder or list file).")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Report stem: writes OUT.json and OUT.md. [default: precision beside the FP32 file]"))] = None,
    split: Annotated[str, typer.Option(help="Dataset split.")] = PRECISION_SPLIT,
    num: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="onnxruntime intra-op threads (default: all cores).")] = None,
) -> None:
    """mIoU / per-class IoU of each precision side by side, change and argmax disagreement vs FP32."""
    from edgeseg.workspace import resolve_all

    models = resolve_all(models, ("onnx", "fp16", "int8"))  # a run folder: FP32 + its FP16/INT8
    out = out if out is not None else models[0].with_name("precision")

    from edgeseg.calib.precision import precision_report, write_precision_report
    from edgeseg.cli.progress import counted
    from edgeseg.guard import data_input, guard_outputs, model_input, stem_outputs

    guard_outputs({"-o/--out": stem_outputs(out)},
                  [*[i for m in models for i in model_input(m, f"model {m}")], *data_input(data)])
    with counted("evaluating") as update:
        result = precision_report([str(m) for m in models], data, split, threads=threads, num=num,
                                  on_image=update)
    json_path, md_path = write_precision_report(result, out)
    for lab in result.labels:
        typer.echo(f"{lab:>22}: mIoU {100 * result.metrics[lab].miou:6.2f} %  Δ "
                   f"{result.change_text(lab)} points  "
                   f"disagreement {100 * result.disagreement[lab]:.3f} %")
    typer.echo(f"wrote {json_path} and {md_path}")


def int8_sensitivity_cmd(
    model: Annotated[Path, typer.Argument(help="The FP32 ONNX file.")],
    int8: Annotated[Path, typer.Argument(help="Its INT8 file from edgeseg calibrate.")],
    data: Annotated[str, typer.Option(help="Dataset (folder or list file); masks not needed.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Report stem: writes OUT.json and OUT.md. [default: int8-sensitivity beside the FP32 file]"))] = None,
    split: Annotated[str, typer.Option(help="Dataset split.")] = _SEN.split,
    num: Annotated[int, typer.Option(help="Images per variant.")] = _SEN.num,
    top: Annotated[int, typer.Option(help="Layers listed in the Markdown table.")] = _SEN.top,
    threads: Annotated[int | None, typer.Option(
        help="onnxruntime intra-op threads (default: all cores).")] = _SEN.threads,
) -> None:
    """Per-layer INT8 sensitivity: disagreement vs FP32 with one layer at a time kept in float."""
    from edgeseg.workspace import resolve

    model, int8 = resolve(model, "onnx"), resolve(int8, "int8")
    out = out if out is not None else model.with_name("int8-sensitivity")
    from edgeseg.calib.sensitivity import sensitivity_report
    from edgeseg.cli.progress import counted
    from edgeseg.guard import data_input, guard_outputs, model_input, stem_outputs

    guard_outputs({"-o/--out": stem_outputs(out)},
                  [*model_input(model), *model_input(int8, "the INT8 model"), *data_input(data)])
    with counted("layers") as update:
        md = sensitivity_report(model, int8, data, out, SensitivityOptions(split, num, top, threads), update)
    typer.echo(md)


def register(app: typer.Typer) -> None:
    app.command("calib-set")(calib_set_cmd)
    app.command("calibrate")(calibrate_cmd)
    app.command("convert-fp16")(convert_fp16_cmd)
    app.command("precision-report")(precision_report_cmd)
    app.command("int8-sensitivity")(int8_sensitivity_cmd)
