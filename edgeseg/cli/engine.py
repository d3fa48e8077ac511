"""``edgeseg build-plugin``, ``edgeseg build-engine`` and the Jetson smoke test ``edgeseg trt-smoke``.

tensorrt, onnx and torch are imported inside the commands only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgeseg.errors import EdgesegError


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def build_plugin_cmd(
    out_dir: Annotated[Path | None, typer.Option(
        "-o", "--out-dir", help="Folder for libedgeseg_plugins.so. [default: ~/.cache/edgeseg/plugins/"
                                "trt<version>-<arch>, where build-engine and the runtime look]")] = None,
    trt_include: Annotated[Path | None, typer.Option(help="Folder holding NvInferRuntime.h.")] = None,
    trt_lib: Annotated[Path | None, typer.Option(help="Folder holding libnvinfer.so.")] = None,
    cuda_arch: Annotated[str | None, typer.Option(
        help="GPU architectures, e.g. 87 (Orin) or 87,90. [default: this machine's GPU]")] = None,
    kernel_only: Annotated[bool, typer.Option(
        help="Build only libedgeseg_unpool_kernel.so (nvcc, no TensorRT needed).")] = False,
    jobs: Annotated[int, typer.Option(help="Parallel compile jobs.")] = 2,
) -> None:
    """Compile the MaxUnpool2x2 TensorRT plugin (CUDA kernel + IPluginV3) against the local TensorRT."""
    from edgeseg.export.plugin_build import KERNEL_LIB_NAME, build_kernel_library, build_plugin, cuda_archs

    console = Console(stderr=True)
    with console.status("compiling the unpool plugin (CMake + nvcc)"):
        if kernel_only:
            folder = out_dir or Path("build/edgeseg-plugin")
            folder.mkdir(parents=True, exist_ok=True)
            path = build_kernel_library(folder / KERNEL_LIB_NAME, cuda_archs(cuda_arch))
        else:
            path = build_plugin(out_dir, trt_include, trt_lib, cuda_arch, jobs)
    typer.echo(f"wrote {path}")


def build_engine_cmd(
    onnx: Annotated[Path, typer.Argument(help="ONNX file with its card (edgeseg export / calibrate).")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help=(
        "Engine file. [default: the family name with .PRECISION.engine, e.g. model.fp16.engine]"))] = None,
    precision: Annotated[Precision, typer.Option(help="fp32, fp16 or int8 (int8 needs a Q/DQ ONNX).")] = (
        Precision.fp16),
    workspace: Annotated[int, typer.Option(help="Builder workspace limit in MB.")] = 1024,
    plugin: Annotated[Path | None, typer.Option(
        help="libedgeseg_plugins.so. [default: where edgeseg build-plugin puts it]")] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache file (read and updated).")] = None,
    dla_core: Annotated[int | None, typer.Option(
        help="Run on this DLA core (Jetson Orin), GPU fallback.")] = None,
    min_batch: Annotated[int | None, typer.Option(help="Smallest batch (dynamic-batch ONNX only).")] = None,
    opt_batch: Annotated[int | None, typer.Option(help="Batch to tune for (dynamic batch only).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="Largest batch (dynamic-batch ONNX only).")] = None,
    print_trtexec: Annotated[bool, typer.Option(
        help="Print the equivalent trtexec command and exit (no TensorRT needed).")] = False,
    verbose: Annotated[bool, typer.Option(help="Show TensorRT's full builder log.")] = False,
) -> None:
    """Build a TensorRT engine (+ card OUT.json) from an ONNX file on the GPU that will run it."""
    from edgeseg.workspace import engine_beside, resolve

    onnx = resolve(onnx, {"fp32": "onnx"}.get(precision.value, precision.value))  # run folder: that file
    out = out if out is not None else engine_beside(onnx, precision.value)
    from edgeseg.card import card_path
    from edgeseg.export.trt_build import build_engine
    from edgeseg.guard import data_input, guard_outputs, model_input

    guard_outputs({"-o/--out": [out, card_path(out)]},
                  [*model_input(onnx, "the ONNX model"), *data_input(plugin, "--plugin")])
    kwargs: dict[str, Any] = {"precision": precision.value, "workspace_mb": workspace, "plugin": plugin,
                              "timing_cache": timing_cache, "dla_core": dla_core, "min_batch": min_batch,
                              "opt_batch": opt_batch, "max_batch": max_batch}
    if print_trtexec:
        typer.echo(trtexec_text(onnx, out, kwargs))
        return
    path, card = build_engine(onnx, out, verbose=verbose, **kwargs)
    extra = card.extra
    typer.echo(f"wrote {path} ({card.precision}, TensorRT {extra['tensorrt_version']}, {extra['gpu_name']} "
               f"sm {extra['compute_capability']}) and its card {path}.json")


def trtexec_text(onnx: Path, out: Path, kwargs: dict[str, Any]) -> str:
    """The trtexec command for this build, for the installed TensorRT or else for 10.x (JetPack 6)."""
    from edgeseg.export.trt_build import BuildOptions, check_output, inspect_onnx, plan_build, trtexec_command
    from edgeseg.export.trt_common import require_tensorrt, resolve_plugin, tensorrt_major

    check_output(out)
    try:
        version, note = require_tensorrt().__version__, ""
    except EdgesegError:
        version, note = "10.3", "# TensorRT is not installed here: command for TensorRT 10.x (JetPack 6)\n"
    paths = ("plugin", "timing_cache")
    fields: dict[str, Any] = {k: Path(v) if k in paths and v else v for k, v in kwargs.items()}
    opts = BuildOptions(**fields)
    facts = inspect_onnx(onnx)
    plan = plan_build(facts, opts, tensorrt_major(version))
    plugin = resolve_plugin(opts.plugin, version) if facts.plugin_nodes else None
    return note + trtexec_command(onnx, out, facts, plan, opts, plugin)


@dataclass(frozen=True)
class SmokeRow:
    step: str
    ok: bool
    detail: str


def _smoke_step(rows: list[SmokeRow], step: str, fn: Callable[[], tuple[Any, str]]) -> Any:
    """Run one step; record PASS with its detail or FAIL with the error line. Returns fn's value."""
    try:
        value, detail = fn()
    except EdgesegError as e:
        rows.append(SmokeRow(step, False, str(e)))
        return None
    except Exception as e:  # noqa: BLE001 - a smoke test reports every failure as a FAIL row
        rows.append(SmokeRow(step, False, f"{type(e).__name__}: {e}"))
        return None
    rows.append(SmokeRow(step, True, detail))
    return value


def _random_checkpoint(folder: Path, hw: tuple[int, int]) -> tuple[Path, str]:
    """An untrained segnet-basic (random weights, seed 0) for checking numerics, not accuracy."""
    import torch

    from edgeseg.card import ModelCard
    from edgeseg.checkpoint import save_checkpoint
    from edgeseg.data.synthetic import SyntheticScenes
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    info = SyntheticScenes.info
    model = build_model("segnet-basic", num_classes=len(info.class_names))
    card = ModelCard("segnet-basic", {"num_classes": len(info.class_names)}, info.class_names,
                     info.class_colors, hw)
    path, _ = save_checkpoint(model.eval(), card, folder)
    return path, f"{path} (segnet-basic, random weights)"


def _build_step(build_engine: Callable[..., Any], onnx: Path, engine: Path, precision: str,
                plugin: Path) -> tuple[Any, str]:
    """One trt-smoke build step: (the built engine's path, its path as the step's detail)."""
    return build_engine(onnx, engine, precision=precision, plugin=plugin)[0], str(engine)


def _agreement(engine: Path, onnx: Path, plugin: Path, data: str, frames: int,
               min_pct: float) -> tuple[None, str]:
    """Argmax agreement and max |logit difference| of the engine vs onnxruntime (CPU) on frames."""
    import numpy as np

    from edgeseg.data import open_dataset
    from edgeseg.errors import EngineError
    from edgeseg.preprocess import preprocess
    from edgeseg.runtime.backends.ort import OrtBackend
    from edgeseg.runtime.backends.trt import TrtBackend

    trt_b, ort_b = TrtBackend(engine, plugin=plugin), OrtBackend(onnx)
    ds = open_dataset(data, split="val", **({"num": frames} if data == "synthetic" else {}))
    same = total = 0
    worst = 0.0
    try:
        for i in range(min(frames, len(ds))):
            x = preprocess(ds[i].image_bgr, trt_b.card)
            a, b = trt_b.infer(x), ort_b.infer(x)
            same += int((a.argmax(1) == b.argmax(1)).sum())
            total += a.shape[0] * a.shape[2] * a.shape[3]
            worst = max(worst, float(np.abs(a - b).max()))
    finally:
        trt_b.close()
        ort_b.close()
    pct = 100.0 * same / max(total, 1)
    detail = f"argmax agreement {pct:.3f}% (min {min_pct}%), max |diff| {worst:.4g}, {total} pixels"
    if pct < min_pct:
        raise EngineError(detail)
    return None, detail


def _smoke_table(rows: list[SmokeRow]) -> Table:
    table = Table(title="edgeseg trt-smoke")
    for col in ("step", "result", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.step, "[green]PASS[/green]" if r.ok else "[red]FAIL[/red]", r.detail)
    return table


def trt_smoke_cmd(
    checkpoint: Annotated[Path | None, typer.Option(
        help="Checkpoint to export. [default: an untrained segnet-basic (numerics check only)]")] = None,
    workdir: Annotated[Path, typer.Option(help="Folder for the plugin, ONNX files and engines.")] = Path(
        "edgeseg-trt-smoke"),
    plugin: Annotated[Path | None, typer.Option(
        help="Use this plugin library instead of building one.")] = None,
    data: Annotated[str, typer.Option(help="Frames for calibration and comparison.")] = "synthetic",
    frames: Annotated[int, typer.Option(help="Frames compared per engine.")] = 8,
    input_hw: Annotated[str, typer.Option("--input", help="Input HxW.")] = "96x128",
    onnx_file: Annotated[Path | None, typer.Option(
        "--onnx", help="Start from this plugin-unpool ONNX + card (exported elsewhere) instead of exporting "
                       "here: no torch needed on the board.")] = None,
) -> None:
    """Once per Jetson/GPU: build plugin, export, build FP16 + INT8 engines, compare with onnxruntime."""
    from edgeseg.export.trt_build import build_engine
    from edgeseg.models.registry import parse_hw

    hw = parse_hw(input_hw)
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[SmokeRow] = []
    trt = _smoke_step(rows, "TensorRT", _trt_info)
    lib = plugin or (_smoke_step(rows, "build plugin", lambda: _built(workdir)) if trt else None)
    if onnx_file is not None:  # torch-free: the export ran on another machine
        onnx = _smoke_step(rows, "export (plugin unpool)", lambda: _given_onnx(onnx_file))
    else:
        ckpt = checkpoint or _smoke_step(rows, "checkpoint", lambda: _random_checkpoint(workdir / "ckpt", hw))
        onnx = _smoke_step(rows, "export (plugin unpool)",
                           lambda: _export(ckpt, workdir / "model.onnx", hw)) if ckpt else None
    # With --onnx, the INT8/FP16 files made next to it on the export machine are used when present:
    # a Jetson's onnxruntime (1.23.2, the newest aarch64/cp310 wheel) cannot take edgeseg's
    # precomputed calibration ranges (quantize_static gained calibration_cache_path later).
    given = onnx_file is not None
    q_onnx = _smoke_step(rows, "INT8 Q/DQ (calibrate)", lambda: _sibling(onnx, ".int8.onnx", given)
                         or _quantize(onnx, workdir, data)) if onnx else None
    # TensorRT 11 builds FP16 only from an FP16 ONNX (strongly typed); 10.x accepts it as well.
    h_onnx = _smoke_step(rows, "FP16 ONNX (convert)", lambda: _sibling(onnx, ".fp16.onnx", given)
                         or _to_fp16(onnx, workdir)) if onnx else None
    for prec, src in (("fp16", h_onnx), ("int8", q_onnx)):
        eng = workdir / f"model.{prec}.engine"
        if trt and lib and src and _smoke_step(rows, f"build {prec} engine", partial(
                _build_step, build_engine, src, eng, prec, lib)):
            _smoke_step(rows, f"{prec} engine vs onnxruntime", partial(
                _agreement, eng, src, lib, data, frames, 99.0 if prec == "fp16" else 95.0))
    done = {r.step for r in rows}
    rows += [SmokeRow(s, False, "not run: an earlier step failed") for s in SMOKE_STEPS if s not in done]
    Console().print(_smoke_table(rows))
    if not all(r.ok for r in rows):
        raise typer.Exit(1)


CALIB_IMAGES = 32  # the minimum the entropy calibrator accepts; a smoke test, not a deployment
SMOKE_STEPS = ("TensorRT", "export (plugin unpool)", "INT8 Q/DQ (calibrate)", "FP16 ONNX (convert)",
               "build fp16 engine",
               "fp16 engine vs onnxruntime", "build int8 engine", "int8 engine vs onnxruntime")


def _trt_info() -> tuple[Any, str]:
    from edgeseg.export.trt_common import device_info, require_tensorrt

    trt, dev = require_tensorrt(), device_info()
    return trt, f"TensorRT {trt.__version__} on {dev.name} (sm {dev.compute_capability})"


def _built(workdir: Path) -> tuple[Path, str]:
    from edgeseg.export.plugin_build import build_plugin

    path = build_plugin(workdir / "plugin")
    return path, str(path)


def _export(ckpt: Path, out: Path, hw: tuple[int, ...]) -> tuple[Path, str]:
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    path, card = export_onnx(ckpt, out, ExportOptions(unpool="plugin", input_hw=(hw[0], hw[1])))
    return path, f"{path} ({card.unpool_mode} unpool)"


def _given_onnx(onnx: Path) -> tuple[Path, str]:
    """An ONNX exported elsewhere (e.g. by trt-smoke on a workstation): it must use the plugin unpool."""
    from edgeseg.card import read_card
    from edgeseg.errors import ConfigError

    card = read_card(onnx)
    if card.artifact != "onnx" or card.unpool_mode != "plugin":
        raise ConfigError(f"--onnx {onnx} is an {card.artifact} file with unpool mode {card.unpool_mode!r}; "
                          "trt-smoke checks the plugin, so it needs plugin unpool: run edgeseg trt-smoke on "
                          "a machine with torch and copy its model.onnx + model.onnx.json")
    return onnx, f"{onnx} (given, {card.unpool_mode} unpool)"


def _sibling(onnx: Path, suffix: str, given: bool) -> tuple[Path, str] | None:
    """``model.int8.onnx`` / ``model.fp16.onnx`` next to a given ``model.onnx`` (with its card), if any."""
    path = onnx.with_suffix(suffix)
    from edgeseg.card import card_path

    if not given or not path.is_file() or not card_path(path).is_file():
        return None
    return path, f"{path} (given)"


def _to_fp16(onnx: Path, workdir: Path) -> tuple[Path, str]:
    from edgeseg.calib.fp16 import convert_fp16

    path, _ = convert_fp16(onnx, workdir / "model.fp16.onnx")
    return path, str(path)


def _quantize(onnx: Path, workdir: Path, data: str) -> tuple[Path, str]:
    from edgeseg.calib.calib_set import Preprocess, make_calib_set
    from edgeseg.calib.quantize import calibrate
    from edgeseg.card import read_card

    card = read_card(onnx)
    if data == "synthetic":  # calibration sets list image files: write some synthetic frames
        data = str(_synthetic_frames(workdir / "calib-frames", card.input_hw, CALIB_IMAGES))
    manifest = workdir / "calib.json"
    make_calib_set(data, manifest, num=CALIB_IMAGES, preprocess=Preprocess.from_card(card))
    path, _ = calibrate(onnx, manifest, workdir / "model.int8.onnx")
    return path, str(path)


def _synthetic_frames(folder: Path, hw: tuple[int, int], num: int) -> Path:
    """``num`` PNG frames of the synthetic scene generator (seed 1, not the compared frames)."""
    import cv2

    from edgeseg.data.synthetic import SyntheticScenes

    folder.mkdir(parents=True, exist_ok=True)
    scenes = SyntheticScenes(hw, seed=1)
    for t in range(num):
        cv2.imwrite(str(folder / f"frame_{t:03d}.png"), scenes.frame(t).image_bgr)
    return folder


def register(app: typer.Typer) -> None:
    app.command("build-plugin")(build_plugin_cmd)
    app.command("build-engine")(build_engine_cmd)
    app.command("trt-smoke")(trt_smoke_cmd)

