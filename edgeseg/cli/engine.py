"""``edgeseg build-plugin``, ``edgeseg build-engine`` and the Jetson smoke test ``edgeseg trt-smoke``.

Each command parses its options, calls one library function and prints. Defaults come from the
options dataclasses (``BuildOptions``, ``SmokeOptions``); tensorrt, onnx and torch are imported
inside the library functions only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeseg.card import Precision
from edgeseg.export.plugin_build import DEFAULT_JOBS
from edgeseg.export.trt_build import BuildOptions
from edgeseg.pipelines.trt_smoke import SmokeOptions, SmokeResult

_B = BuildOptions()
_S = SmokeOptions()


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
    jobs: Annotated[int, typer.Option(help="Parallel compile jobs.")] = DEFAULT_JOBS,
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
    precision: Annotated[Precision, typer.Option(help="int8 needs a Q/DQ ONNX (edgeseg calibrate).")] = (
        _B.precision),
    workspace: Annotated[int, typer.Option(help="Builder workspace limit in MB.")] = _B.workspace_mb,
    plugin: Annotated[Path | None, typer.Option(
        help="libedgeseg_plugins.so. [default: where edgeseg build-plugin puts it]")] = _B.plugin,
    timing_cache: Annotated[Path | None, typer.Option(
        help="Timing cache file (read and updated).")] = _B.timing_cache,
    dla_core: Annotated[int | None, typer.Option(
        help="Run on this DLA core (Jetson Orin), GPU fallback.")] = _B.dla_core,
    min_batch: Annotated[int | None, typer.Option(
        help="Smallest batch (dynamic-batch ONNX only).")] = _B.min_batch,
    opt_batch: Annotated[int | None, typer.Option(
        help="Batch to tune for (dynamic batch only).")] = _B.opt_batch,
    max_batch: Annotated[int | None, typer.Option(
        help="Largest batch (dynamic-batch ONNX only).")] = _B.max_batch,
    print_trtexec: Annotated[bool, typer.Option(
        help="Print the equivalent trtexec command and exit (no TensorRT needed).")] = False,
    verbose: Annotated[bool, typer.Option(help="Show TensorRT's full builder log.")] = _B.verbose,
) -> None:
    """Build a TensorRT engine (+ card OUT.json) from an ONNX file on the GPU that will run it."""
    from edgeseg.workspace import engine_beside, resolve

    onnx = resolve(onnx, {"fp32": "onnx"}.get(precision, precision))  # run folder: that file
    out = out if out is not None else engine_beside(onnx, precision)
    from edgeseg.card import card_path
    from edgeseg.export.trt_build import build_engine, trtexec_text
    from edgeseg.guard import data_input, guard_outputs, model_input

    guard_outputs({"-o/--out": [out, card_path(out)]},
                  [*model_input(onnx, "the ONNX model"), *data_input(plugin, "--plugin")])
    options = BuildOptions(precision, workspace, plugin, timing_cache, dla_core, min_batch, opt_batch,
                           max_batch, verbose)
    if print_trtexec:
        typer.echo(trtexec_text(onnx, out, options))
        return
    path, card = build_engine(onnx, out, options)
    extra = card.extra
    typer.echo(f"wrote {path} ({card.precision}, TensorRT {extra['tensorrt_version']}, {extra['gpu_name']} "
               f"sm {extra['compute_capability']}) and its card {path}.json")


def trt_smoke_cmd(
    checkpoint: Annotated[Path | None, typer.Option(
        help="Checkpoint to export. [default: an untrained segnet-basic (numerics check only)]"
    )] = _S.checkpoint,
    workdir: Annotated[Path, typer.Option(
        help="Folder for the plugin, ONNX files and engines.")] = _S.workdir,
    plugin: Annotated[Path | None, typer.Option(
        help="Use this plugin library instead of building one.")] = _S.plugin,
    data: Annotated[str, typer.Option(help="Frames for calibration and comparison.")] = _S.data,
    frames: Annotated[int, typer.Option(help="Frames compared per engine.")] = _S.frames,
    input_hw: Annotated[str, typer.Option("--input", help="Input HxW.")] = "x".join(map(str, _S.input_hw)),
    onnx_file: Annotated[Path | None, typer.Option(
        "--onnx", help="Start from this plugin-unpool ONNX + card (exported elsewhere) instead of exporting "
                       "here: no torch needed on the board.")] = _S.onnx,
) -> None:
    """Once per Jetson/GPU: build plugin, export, build FP16 + INT8 engines, compare with onnxruntime."""
    from edgeseg.models.registry import parse_hw
    from edgeseg.pipelines.trt_smoke import trt_smoke

    result = trt_smoke(SmokeOptions(checkpoint, onnx_file, plugin, data, frames, parse_hw(input_hw), workdir))
    Console().print(_smoke_table(result))
    if not result.ok:
        raise typer.Exit(1)


def _smoke_table(result: SmokeResult) -> Table:
    table = Table(title="edgeseg trt-smoke")
    for col in ("step", "result", "detail"):
        table.add_column(col, overflow="fold")
    for r in result.steps:
        table.add_row(r.step, "[green]PASS[/green]" if r.ok else "[red]FAIL[/red]", r.detail)
    return table


def register(app: typer.Typer) -> None:
    app.command("build-plugin")(build_plugin_cmd)
    app.command("build-engine")(build_engine_cmd)
    app.command("trt-smoke")(trt_smoke_cmd)
