"""What a streaming run measured: per-frame records, and the StreamReport built from them.

Stages of one frame (all ``time.perf_counter`` deltas, milliseconds in the report):

* ``capture_wait`` — inside ``source.read()`` (decode for files, waiting for a new frame live)
* ``preprocess`` — resize + normalize to nchw
* ``inference`` — ``backend.infer`` (synchronous)
* ``postprocess`` — argmax to labels (+ the confusion-matrix update when ground truth exists)
* ``overlay`` — colours, legend, HUD
* ``sinks`` — window / video / frame files

``latency`` is capture -> overlay handed to every sink (the displayed/written frame): for a live
source it includes the time the frame waited in the newest-frame slot. End-to-end FPS is frames
divided by the wall time of the loop; ``outside_inference_share`` = 1 - (sum of inference time) /
(``infer_workers`` x wall time): the share of the run in which the model was idle (with several
inference threads, the share of their time; each frame's inference time is its own run). The
loop is pipelined (capture + preprocess, inference and the rest run on their own threads, see
``runtime/pipeline.py``), so stage times overlap and no longer add up to the wall time; each is
still that frame's own time.
"""

from __future__ import annotations

import math
import os
import platform
import time
from array import array
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.io import load_onnx, write_json_atomic, write_text_atomic

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class StageTimes:
    """One frame's time in each stage, seconds (``time.perf_counter`` deltas); the field order is
    the stage order of the report."""

    capture_wait: float
    preprocess: float
    inference: float
    postprocess: float
    overlay: float
    sinks: float


STAGES: tuple[str, ...] = tuple(f.name for f in fields(StageTimes))


@dataclass(frozen=True)
class FrameSample:
    """What the loop measured for one frame: the source's frame number and name, its capture and
    done times (``perf_counter`` clock), stage times, the source's running drop/corrupt totals and
    the frame's own mIoU (None without ground truth)."""

    index: int
    name: str
    t_capture: float
    t_done: float
    stages: StageTimes
    dropped: int
    corrupt: int
    miou: float | None = None


@dataclass(frozen=True)
class FrameRecord:
    """One processed frame, as written to ``--stats`` (one JSON line)."""

    seq: int  # processed-frame counter (0, 1, 2, ...)
    index: int  # the source's frame number (gaps = dropped frames)
    name: str
    t_s: float  # capture time, seconds since the loop started
    stages_ms: dict[str, float]
    latency_ms: float
    dropped: int  # running totals from the source
    corrupt: int
    miou: float | None = None  # this frame's mIoU when it has ground truth

    def to_dict(self) -> dict[str, Any]:
        d = {"seq": self.seq, "index": self.index, "name": self.name, "t_s": round(self.t_s, 6),
             **{f"{k}_ms": round(v, 3) for k, v in self.stages_ms.items()},
             "latency_ms": round(self.latency_ms, 3), "dropped": self.dropped, "corrupt": self.corrupt}
        if self.miou is not None:
            d["miou"] = None if math.isnan(self.miou) else round(self.miou, 5)
        return d


class StreamRecorder:
    """Collects per-frame timings in compact arrays (8 bytes per value; hours of frames fit)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.stage_s = {s: array("d") for s in STAGES}
        self.latency_s = array("d")
        self.done_t = array("d")
        self.timeouts = 0

    @property
    def frames(self) -> int:
        return len(self.latency_s)

    def add(self, sample: FrameSample) -> FrameRecord:
        """Store one frame's timings; return its ``--stats`` record (``seq`` = frames before it)."""
        seq, stage_s = self.frames, tuple(getattr(sample.stages, s) for s in STAGES)
        for s, v in zip(STAGES, stage_s, strict=True):
            self.stage_s[s].append(v)
        self.latency_s.append(sample.t_done - sample.t_capture)
        self.done_t.append(sample.t_done)
        return FrameRecord(seq, sample.index, sample.name, sample.t_capture - self.t0,
                           {s: 1000.0 * v for s, v in zip(STAGES, stage_s, strict=True)},
                           1000.0 * (sample.t_done - sample.t_capture), sample.dropped, sample.corrupt,
                           sample.miou)

    def recent_fps(self, window: int = 30) -> float:
        n = min(window, len(self.done_t) - 1)
        if n < 1:
            return 0.0
        span = self.done_t[-1] - self.done_t[-1 - n]
        return n / span if span > 0 else 0.0

    def hud(self, miou: float | None) -> list[str]:
        if not self.frames:
            return ["starting..."]
        last = {s: 1000 * v[-1] for s, v in self.stage_s.items()}
        lines = [f"FPS {self.recent_fps():.1f}   latency {1000 * self.latency_s[-1]:.0f} ms",
                 f"infer {last['inference']:.1f} ms   pre {last['preprocess']:.1f}   "
                 f"post {last['postprocess']:.1f}"]
        if miou is not None and not math.isnan(miou):
            lines.append(f"mIoU {100 * miou:.1f} %")
        return lines


def distribution_ms(values_s: Any) -> dict[str, float | None]:
    """mean / p50 / p90 / p99 / max in milliseconds (None when there are no values)."""
    a = np.frombuffer(values_s, dtype=np.float64) if isinstance(values_s, array) else np.asarray(values_s)
    if a.size == 0:
        return {k: None for k in ("mean", "p50", "p90", "p99", "max")}
    p = np.percentile(a, PERCENTILES) * 1000.0
    return {"mean": round(float(a.mean()) * 1000.0, 3), "p50": round(float(p[0]), 3),
            "p90": round(float(p[1]), 3), "p99": round(float(p[2]), 3),
            "max": round(float(a.max()) * 1000, 3)}


def count_params(path: Path, card_extra: dict[str, Any]) -> tuple[int | None, str]:
    """Number of parameters and where it came from (card, ONNX initializers, safetensors header)."""
    if isinstance(card_extra.get("params"), int):
        return card_extra["params"], "model card"
    if path.suffix == ".onnx":

        model = load_onnx(path, weights=False)
        return sum(int(np.prod(t.dims)) for t in model.graph.initializer), "ONNX initializers"
    if path.suffix == ".safetensors":
        import json
        import struct

        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        # weights and biases only: BatchNorm running statistics are buffers, not parameters (as in
        # `edgeseg info` and the exported files' cards)
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        return sum(int(np.prod(v["shape"])) for k, v in header.items()
                   if k != "__metadata__" and not k.endswith(buffers)), "safetensors header (trainable)"
    return None, "unknown (engine without params in its card)"


def host_facts() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"machine": platform.machine(), "system": platform.system(), "cpu_count": os.cpu_count(),
            "loadavg_1m": round(load[0], 2) if load else None, "python": platform.python_version()}


@dataclass(frozen=True)
class StreamReport:
    """Summary of one ``run_stream``: see the module docstring for what each figure means."""

    frames: int
    wall_s: float
    fps: float
    outside_inference_share: float | None
    stages_ms: dict[str, dict[str, float | None]]
    latency_ms: dict[str, float | None]
    dropped: int
    corrupt: int
    timeouts: int
    reconnects: int
    stop_reason: str
    source: dict[str, Any]
    model: dict[str, Any]
    backend: dict[str, Any]
    metrics: dict[str, Any] | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=host_facts)
    started_utc: str = ""
    infer_workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)

    def write(self, json_path: Path) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.md`` (same stem) atomically; return both paths."""
        json_path = Path(json_path)
        md_path = json_path.with_suffix(".md")
        write_json_atomic(json_path, self.to_dict())
        write_text_atomic(md_path, self.to_markdown())
        return json_path, md_path

    def summary_rows(self) -> list[tuple[str, str]]:
        out = self.outside_inference_share
        share = "n/a" if out is None else f"{100 * out:.1f} %"
        params = self.model.get("params")
        rows = [("frames", str(self.frames)), ("wall time", f"{self.wall_s:.2f} s"),
                ("end-to-end FPS", f"{self.fps:.2f}"), ("time outside inference", share),
                ("dropped / corrupt / timeouts / reconnects",
                 f"{self.dropped} / {self.corrupt} / {self.timeouts} / {self.reconnects}"),
                ("stopped because", self.stop_reason),
                ("source", str(self.source.get("description"))),
                ("model", f"{self.model.get('architecture')} {self.model.get('input_hw')} "
                          f"{self.model.get('precision')} ({self.model.get('file')})"),
                ("params", "unknown" if params is None else f"{params:,}"),
                ("file size", f"{self.model.get('file_bytes', 0) / 1e6:.2f} MB"),
                ("backend", f"{self.backend.get('name')} {self.backend.get('device', '')} "
                            f"{self.backend.get('providers', '')}".strip()
                 + (f", {self.infer_workers} inference threads" if self.infer_workers > 1 else ""))]
        if self.backend.get("inference_precision"):  # OpenVINO: what it computed in (not the file's)
            rows.append(("inference precision", str(self.backend["inference_precision"])))
        if self.metrics is not None:
            rows.append(("mIoU (frames with ground truth)",
                         f"{_pct(self.metrics.get('miou'))} ({self.metrics.get('frames')} frames)"))
        return rows

    def stage_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for name, d in [*self.stages_ms.items(), ("latency (capture->shown)", self.latency_ms)]:
            rows.append((name, *(_ms(d.get(k)) for k in ("mean", "p50", "p90", "p99", "max"))))
        return rows

    def to_markdown(self) -> str:
        lines = ["# Stream report", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.summary_rows()]
        lines += ["", "## Per-stage latency (ms)", "", "| stage | mean | p50 | p90 | p99 | max |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.stage_rows()]
        if self.metrics is not None:
            lines += ["", "## IoU per class", "", "| class | IoU | support (px) |", "|---|---:|---:|"]
            for name, row in self.metrics.get("per_class", {}).items():
                lines.append(f"| {name} | {_pct(row.get('iou'))} | {row.get('support')} |")
        return "\n".join(lines) + "\n"

    def rich_tables(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        summary = Table(title="edgeseg stream", show_header=False)
        for k, v in self.summary_rows():
            summary.add_row(k, v)
        stages = Table(title="per-stage latency (ms)")
        for col in ("stage", "mean", "p50", "p90", "p99", "max"):
            stages.add_column(col, justify="left" if col == "stage" else "right")
        for r in self.stage_rows():
            stages.add_row(*r)
        parts: list[Any] = [summary, stages]
        if self.metrics is not None:
            iou = Table(title="IoU per class")
            iou.add_column("class")
            iou.add_column("IoU", justify="right")
            for name, row in self.metrics.get("per_class", {}).items():
                iou.add_row(name, _pct(row.get("iou")))
            parts.append(iou)
        return Group(*parts)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"
