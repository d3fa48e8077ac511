"""``edgeseg demo``: the streaming runtime end to end on the shipped model, torch-free.

Synthetic scenes (or a camera) -> the lite-unet ONNX in ``edgeseg/assets`` on onnxruntime ->
overlay video, per-frame stats and the stream report in one folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the runtime modules load with the command, not with the CLI
    from edgeseg.runtime.stream import StreamReport

ASSET_NAME = "demo-lite-unet.onnx"
SCENE_HW = (360, 480)  # synthetic frames, resized to the model's input by the runtime


@dataclass(frozen=True)
class DemoOptions:
    """``camera`` None: the synthetic scenes. ``max_frames``: a few seconds of them by default.
    ``model`` None: the shipped demo model. ``show``: also a window (needs a display)."""

    camera: int | None = None
    max_frames: int = 150
    model: Path | None = None
    show: bool = False


def demo_model() -> Path:
    """The ONNX model shipped in ``edgeseg/assets`` (a lite-unet trained on synthetic scenes)."""
    from importlib.resources import files

    return Path(str(files("edgeseg") / "assets" / ASSET_NAME))


def demo_outputs(out: Path) -> list[Path]:
    """What :func:`run_demo` writes into ``out``: video, report JSON + Markdown, per-frame stats."""
    return [out / "demo.mp4", out / "report.json", out / "report.md", out / "frames.jsonl"]


def run_demo(out: Path, options: DemoOptions = DemoOptions()) -> tuple[StreamReport, list[Path]]:
    """Stream ``options.max_frames`` frames through the model; (the report, the files written)."""
    from edgeseg.runtime.backends import open_backend
    from edgeseg.runtime.sinks import SinkOptions, open_sinks
    from edgeseg.runtime.sources import SourceOptions, open_source
    from edgeseg.runtime.stream import StreamOptions, run_stream

    frames = options.max_frames
    video, _, _, stats = demo_outputs(out)
    backend = open_backend(options.model or demo_model())
    try:
        out.mkdir(parents=True, exist_ok=True)
        spec = "synthetic" if options.camera is None else str(options.camera)
        source = open_source(spec, SourceOptions(synthetic_hw=SCENE_HW, synthetic_frames=frames))
        try:
            sinks = open_sinks(SinkOptions(window=options.show, save=video, stats=stats, progress=True,
                                           progress_total=frames), source.fps)
        except BaseException:
            source.close()
            raise
        report = run_stream(backend, source, sinks, StreamOptions(max_frames=frames))
    finally:
        backend.close()
    json_path, md_path = report.write(out / "report.json")
    return report, [video, json_path, md_path, stats]


def demo_summary(report: dict[str, Any]) -> str:
    """One line: FPS, latency p50/p99, parameters, mIoU (from a StreamReport dict)."""
    lat, model, metrics = report["latency_ms"], report["model"], report.get("metrics") or {}
    infer = report["stages_ms"]["inference"]
    params = model.get("params")
    miou = metrics.get("miou")
    return (f"demo: {report['frames']} frames, {report['fps']:.1f} FPS end to end, latency p50 "
            f"{lat['p50']:.1f} ms / p99 {lat['p99']:.1f} ms (inference p50 {infer['p50']:.1f} ms), "
            f"{'unknown' if params is None else f'{params:,}'} parameters, "
            f"mIoU {'n/a (no ground truth)' if miou is None else f'{100 * miou:.1f} %'}")
