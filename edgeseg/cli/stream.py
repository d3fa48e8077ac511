"""``edgeseg stream MODEL [--camera N | --source S]``: live segmentation overlay, measured.

Torch-free unless MODEL is a ``.safetensors`` checkpoint. Every output is checked before the
first frame (none may overwrite an input); Ctrl-C finalizes the video and writes the report.
Exit codes (edgeseg.errors): 0 when the stream ended or a limit was reached; 1 when the source
failed and could not be reconnected or an output could not be written completely (the report is
still written and says why); 2 for bad input; 130 / 143 after SIGINT / SIGTERM (report written).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.errors import EXIT_FAILED, ConfigError, signal_exit_code
from edgeseg.runtime.backends.base import (
    InferencePrecision,
    OpenVinoOptions,
    OrtOptions,
    TorchOptions,
    TrtOptions,
)


def _source_spec(camera: int | None, source: str | None) -> str:
    if camera is not None and source is not None:
        raise ConfigError("pass either --camera N or --source S, not both")
    return source if source is not None else f"camera:{camera if camera is not None else 0}"


def _check_report_path(report: Path | None) -> None:
    if report is None:
        return
    if report.suffix != ".json":
        raise ConfigError(f"--report {report.name} must end in .json (a Markdown copy goes next to it)")
    if not (report.parent if str(report.parent) else Path(".")).is_dir():
        raise ConfigError(f"--report folder {report.parent} does not exist; create it or choose another path")


def _guard(model: Path, spec: str, masks: Path | None, plugin: Path | None, save: Path | None,
           save_frames: Path | None, stats: Path | None, report: Path | None) -> None:
    """Refuse any output that would overwrite or replace an input (before anything runs)."""
    from edgeseg.guard import data_input, guard_outputs, model_input

    inputs = [*model_input(model), *data_input(spec, "--source"), *data_input(masks, "--masks"),
              *data_input(plugin, "--plugin")]
    guard_outputs({"--save": save, "--save-frames": save_frames, "--stats": stats,
                   "--report": None if report is None else [report, report.with_suffix(".md")]}, inputs)


def stream_cmd(
    model: Annotated[Path, typer.Argument(help="Model file with its card: .onnx, .engine or .safetensors.")],
    camera: Annotated[int | None, typer.Option(help="Camera index (default 0 when no --source).")] = None,
    source: Annotated[str | None, typer.Option(
        help="csi://N (Jetson CSI camera), v4l2:///dev/videoN, video file (or file://PATH), image folder "
             "or glob, rtsp:// or http(s):// URL, GStreamer pipeline ending in appsink, or 'synthetic' "
             "(moving shapes with exact masks).")] = None,
    masks: Annotated[Path | None, typer.Option(
        help="Folder of ground-truth label maps named like the frames (image stem or 000123 = frame "
             "index) for running IoU.")] = None,
    save: Annotated[Path | None, typer.Option(help="Write the overlay video (.mp4, .avi, .mkv).")] = None,
    save_frames: Annotated[Path | None, typer.Option(help="Write every overlay as DIR/<frame>.png.")] = None,
    stats: Annotated[Path | None, typer.Option(help="Per-frame timings as JSON lines.")] = None,
    report: Annotated[Path | None, typer.Option(help="Summary report .json (+ .md next to it).")] = None,
    window: Annotated[bool | None, typer.Option(
        "--window/--headless",
        help="Show a window / never show one. Default: when a display exists.")] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after N processed frames.")] = None,
    duration: Annotated[float | None, typer.Option(min=0.0, help="Stop after S seconds.")] = None,
    threads: Annotated[int | None, typer.Option(
        min=1, help="onnxruntime / OpenVINO / torch CPU threads (default: all cores).")] = None,
    provider: Annotated[str | None, typer.Option(
        help=f"onnxruntime providers, comma-separated: cpu, cuda, tensorrt (default {OrtOptions.provider}).")
    ] = None,
    runtime: Annotated[str | None, typer.Option(
        help="ONNX files: onnxruntime (default) or openvino (pip install 'edgeseg[openvino]').")] = None,
    device: Annotated[str | None, typer.Option(
        help=f"Torch checkpoints: auto, cpu, cuda or cuda:N (default {TorchOptions.device}). TensorRT "
             f"engines: GPU index (default {TrtOptions.device}). OpenVINO: CPU, GPU, GPU.1, NPU (default "
             f"{OpenVinoOptions.device}).")] = None,
    inference_precision: Annotated[InferencePrecision | None, typer.Option(
        help=f"OpenVINO: precision to compute in (default {OpenVinoOptions.inference_precision}: bf16 on "
             "CPUs with bf16, else f32).")] = None,
    plugin: Annotated[Path | None, typer.Option(
        help="TensorRT engines: edgeseg plugin library (default: edgeseg build-plugin's, never the "
             "card's).")] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay colour weight.")] = 0.5,
    legend: Annotated[bool, typer.Option(help="Draw the class legend.")] = True,
    hud: Annotated[bool, typer.Option(help="Draw FPS / latency / mIoU.")] = True,
    camera_size: Annotated[str | None, typer.Option(
        help="Ask the camera for this frame size HxW (e.g. 720x1280; csi:// default 720x1280).")] = None,
    camera_fps: Annotated[float | None, typer.Option(
        min=1.0, help="Ask the camera for this frame rate (csi:// default 30).")] = None,
    synthetic_size: Annotated[str | None, typer.Option(
        help="Synthetic source frame size HxW (default: the model input size).")] = None,
    synthetic_fps: Annotated[float | None, typer.Option(
        help="Make the synthetic source live at this rate (newest frame only, drops counted).")] = None,
    reconnect: Annotated[float, typer.Option(
        help="Seconds to keep reconnecting a lost camera/stream before stopping.")] = 15.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a live frame before a timeout.")] = 2.0,
    quiet: Annotated[bool, typer.Option(help="No progress line and no table.")] = False,
    pipeline: Annotated[bool, typer.Option(
        help="Overlap capture+preprocessing, inference and drawing/writing across frames (threads); "
             "--no-pipeline runs them one after another (1-core machines, debugging).")] = True,
    infer_workers: Annotated[int, typer.Option(
        min=1, help="Run this many consecutive frames through the model at once (onnxruntime; each run "
                    "uses --threads threads). On a CPU, --infer-workers 2 --threads 1 gives more FPS on "
                    "files than one 2-thread run, at about twice the latency per frame.")] = 1,
    opencv_threads: Annotated[int, typer.Option(
        min=1, help="OpenCV threads for the host stages while the pipelined loop runs (restored "
                    "after). 1: the loop's own threads already use the cores.")] = 1,
) -> None:
    """Run MODEL on a camera, file, stream or the synthetic source; overlay, measure, report."""
    from edgeseg.workspace import DEPLOYED, resolve

    model = resolve(model, *DEPLOYED)  # a run folder: its most deployed file (engine, INT8, FP16, ...)
    from edgeseg.models.registry import parse_hw
    from edgeseg.runtime.backends import backend_options, open_backend
    from edgeseg.runtime.overlay import OverlayOptions
    from edgeseg.runtime.sinks import SinkOptions, open_sinks
    from edgeseg.runtime.sources import SourceOptions, open_source
    from edgeseg.runtime.stream import StreamOptions, check_stream_options, run_stream

    spec = _source_spec(camera, source)
    _check_report_path(report)
    _guard(model, spec, masks, plugin, save, save_frames, stats, report)
    overlay = OverlayOptions(alpha=alpha, legend=legend, hud=hud)
    # the registry says which options MODEL's runtime takes; any other given one is a one-line error
    options = backend_options(model, runtime, threads=threads, provider=provider, device=device,
                              plugin=plugin, inference_precision=inference_precision)
    stream_opts = StreamOptions(max_frames=max_frames, duration_s=duration, overlay=overlay,
                                pipelined=pipeline, infer_workers=infer_workers,
                                opencv_threads=opencv_threads)
    with open_backend(model, runtime, options) as backend:
        check_stream_options(backend, stream_opts)
        model_hw = backend.card.frame_hw or backend.card.input_hw  # frame_hw: preprocessing in the graph
        hw = parse_hw(synthetic_size) if synthetic_size else model_hw
        cam_hw = parse_hw(camera_size) if camera_size else backend.card.frame_hw
        src = open_source(spec, SourceOptions(timeout_s=timeout, reconnect_s=reconnect, masks_dir=masks,
                                              synthetic_hw=hw, synthetic_fps=synthetic_fps, camera_hw=cam_hw,
                                              camera_fps=camera_fps))
        sink_opts = SinkOptions(window=window, save=save, save_frames=save_frames, stats=stats,
                                progress=not quiet, progress_total=max_frames)
        try:
            sinks = open_sinks(sink_opts, src.fps)
        except BaseException:
            src.close()
            raise
        try:
            result = run_stream(backend, src, sinks, stream_opts)
        except BaseException:
            # run_stream closes them once its loop runs; a failure while it sets up must too (a live
            # source's reader thread left running aborts the interpreter at exit).
            for closer in (*(s.close for s in sinks), src.close):
                with contextlib.suppress(Exception):
                    closer()
            raise
    _finish(result, report, quiet)


def _finish(result: Any, report: Path | None, quiet: bool) -> None:
    from rich.console import Console

    console = Console()
    if not quiet:
        console.print(result.rich_tables())
    written = [*result.outputs.values()]
    if report is not None:
        written += [str(p) for p in result.write(report)]
    if written:
        console.print("wrote " + ", ".join(written), highlight=False)
    code = stop_exit_code(result.stop_reason)
    if code == EXIT_FAILED:  # one line in the CLI's "error: ..." form (the report holds the same text)
        typer.echo(f"error: stream stopped: {result.stop_reason.removeprefix('error: ')}", err=True)
    if code:
        raise typer.Exit(code)


def stop_exit_code(reason: str) -> int:
    """The exit code of a finished stream from its stop reason (convention in edgeseg.errors)."""
    import signal

    if reason.startswith("error") or "closing failed" in reason:
        return EXIT_FAILED  # checked first: a lost frame outweighs how the run was stopped
    for sig in (signal.SIGINT, signal.SIGTERM):
        if reason.startswith("interrupted") and sig.name in reason:
            return signal_exit_code(sig)
    return 0


def register(app: typer.Typer) -> None:
    app.command("stream")(stream_cmd)
