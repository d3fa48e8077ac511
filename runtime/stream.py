"""The streaming loop: capture -> preprocess -> infer -> argmax -> overlay -> sinks, measured.

The stages overlap across consecutive frames (capture + preprocess and inference on their own
threads, bounded queues of one; see :mod:`edgeseg.runtime.pipeline`); each frame is still timed
stage by stage and its latency runs from capture to the overlay handed to every sink.

Stopping never loses what was recorded: end of stream, ``--max-frames``, ``--duration``, a lost
camera, 'q' in the window, SIGINT (Ctrl-C) or SIGTERM all leave the loop through the same
``finally`` that closes every sink (the video file is finalized) and the source, and the report
is built from everything measured. The first SIGINT stops reading and finishes the frames
already read (at most four); a second one interrupts at once (sinks are still closed).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgeseg.runtime.backends import Backend
from edgeseg.runtime.overlay import Overlay, OverlayOptions
from edgeseg.runtime.pipeline import End, InlinePipeline, Limits, Pipeline
from edgeseg.runtime.report import (
    FrameSample,
    StageTimes,
    StreamRecorder,
    StreamReport,
    count_params,
    distribution_ms,
)
from edgeseg.runtime.sources import Source
from edgeseg.runtime.stages import ArgmaxLabels, GroundTruthScorer, blank_input, model_input

from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.metrics import miou_from_confusion

now = time.perf_counter


@dataclass(frozen=True)
class StreamOptions:
    """``max_frames`` / ``duration_s``: stop after that many processed frames / seconds (None = no
    limit). ``pipelined``: overlap the stages across frames (threads) or run them one by one.
    ``infer_workers``: inference threads running consecutive frames at once (pipelined loop,
    backends with ``concurrent_infer``: onnxruntime); each run uses the backend's own threads.
    ``opencv_threads``: OpenCV's thread count while the pipelined loop runs (restored after; None:
    left as it is). 1 by default: the loop's own threads already keep the cores busy, and OpenCV's
    pool on top of them takes cores from the model (measured in docs/streaming.md)."""

    max_frames: int | None = None
    duration_s: float | None = None
    overlay: OverlayOptions = field(default_factory=OverlayOptions)
    pipelined: bool = True  # False: every stage on this thread, one frame at a time
    infer_workers: int = 1
    opencv_threads: int | None = 1


class StopSignal:
    """SIGINT/SIGTERM -> ``reason`` set (graceful); a second SIGINT raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = f"interrupted ({signal.Signals(signum).name})"

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignal]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals are delivered to the main thread only
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def run_stream(backend: Backend, source: Source, sinks: Sequence[Any],
               options: StreamOptions | None = None) -> StreamReport:
    """Run until a limit, the end of the source, or a signal; always close sinks and source.

    Capture + preprocess and inference run on their own threads (:mod:`.pipeline`); this thread
    turns model outputs into labels, scores, draws and writes them, in frame order."""
    opts, card = options or StreamOptions(), backend.card
    check_stream_options(backend, opts)
    labels_of, scorer = ArgmaxLabels(), GroundTruthScorer(card)
    overlay = Overlay(card.class_names, card.class_colors, opts.overlay)
    backend.infer(blank_input(card))  # warm-up, not measured
    stop, started = StopSignal(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    outputs: dict[str, str] = {}
    rec, reason, miou = StreamRecorder(), "", None
    deadline = None if opts.duration_s is None else rec.t0 + opts.duration_s
    limits = Limits(opts.max_frames, deadline, opts.duration_s)
    pipe = (Pipeline(source, model_input(card), backend, limits, opts.infer_workers) if opts.pipelined
            else InlinePipeline(source, model_input(card), backend, limits))
    cv_threads = opts.opencv_threads if opts.pipelined else None
    with stop.installed(), opencv_threads(cv_threads):
        try:
            pipe.start()
            while True:
                if stop.reason:
                    pipe.finish()  # graceful: the frames already read are still shown and recorded
                if any(s.stop_requested for s in sinks):
                    reason = "window closed"
                    break
                item = pipe.get()
                if item is None:
                    continue
                if isinstance(item, End):
                    if item.error is not None:
                        raise item.error
                    reason = item.reason if item.reason.startswith("error") else stop.reason or item.reason
                    break
                t3 = now()
                labels = labels_of(item.out)  # type: ignore[arg-type]
                frame_miou = _score(scorer, labels, item.frame.mask)
                miou = miou_from_confusion(scorer.meter.matrix) if frame_miou is not None else miou
                t4 = now()
                out = overlay.render(item.frame.image_bgr, labels, rec.hud(miou))
                t5 = now()
                for sink in sinks:
                    sink.write(out, item.frame)
                t6 = now()
                n = source.counters()
                read, pre, infer = item.seconds
                times = StageTimes(read, pre, infer, postprocess=t4 - t3, overlay=t5 - t4, sinks=t6 - t5)
                record = rec.add(FrameSample(item.frame.index, item.frame.name, item.frame.t_capture, t6,
                                             times, n.dropped, n.corrupt, frame_miou))
                for sink in sinks:
                    sink.log(record)
        except KeyboardInterrupt:
            reason = "interrupted twice (SIGINT)"
        except EdgesegError as e:  # a sink, mask or backend failed mid-run: keep what was measured
            reason = f"error: {e}"
        finally:
            pipe.close()
            rec.timeouts = pipe.timeouts
            wall = (rec.done_t[-1] if rec.frames else now()) - rec.t0
            reason += _close_all(sinks, source, outputs)
    workers = opts.infer_workers if opts.pipelined else 1
    return _report(backend, source, rec, wall, reason, scorer, outputs, started, workers)


@contextlib.contextmanager
def opencv_threads(n: int | None) -> Iterator[None]:
    """OpenCV's thread count set to ``n`` inside the block and restored after (None: untouched)."""
    if n is None:
        yield
        return
    old = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def check_stream_options(backend: Backend, opts: StreamOptions) -> None:
    """``infer_workers`` > 1 needs the pipelined loop and a backend with ``concurrent_infer``;
    ``opencv_threads`` is None or at least 1."""
    if opts.opencv_threads is not None and opts.opencv_threads < 1:
        raise ConfigError(f"--opencv-threads is {opts.opencv_threads}; expected 1 or more; "
                          "pass --opencv-threads 1")
    n = opts.infer_workers
    if n < 1:
        raise ConfigError(f"--infer-workers is {n}; expected 1 or more; pass --infer-workers 1")
    if n == 1:
        return
    if not opts.pipelined:
        raise ConfigError(f"--infer-workers {n} needs the pipelined loop but --no-pipeline was given; "
                          "drop --no-pipeline or --infer-workers")
    if not getattr(backend, "concurrent_infer", False):
        how = ("it overlaps consecutive runs on its CUDA stream by itself" if backend.name == "tensorrt"
               else "it runs one frame at a time")
        raise ConfigError(f"--infer-workers {n} needs a backend that runs frames concurrently "
                          f"(onnxruntime); {backend.name} cannot ({how}); drop --infer-workers")


def _close_all(sinks: Sequence[Any], source: Source, outputs: dict[str, str]) -> str:
    """Close every sink and the source even if one fails; return failures as text ('' if none)."""
    failed = []
    for closer in [*(s.close for s in sinks), source.close]:
        try:
            outputs.update(closer() or {})
        except Exception as e:  # one broken output must not stop the others from finalizing
            failed.append(str(e) or type(e).__name__)
    return f"; closing failed: {'; '.join(failed)}" if failed else ""


def _score(scorer: GroundTruthScorer, labels: np.ndarray, mask: np.ndarray | None) -> float | None:
    """Add this frame to the running confusion matrix; its own mIoU (None without ground truth)."""
    if mask is None:
        return None
    return miou_from_confusion(scorer.update(labels, mask))


def _report(backend: Backend, source: Source, rec: StreamRecorder, wall: float, reason: str,
            scorer: GroundTruthScorer, outputs: dict[str, str], started: str, workers: int) -> StreamReport:
    card, path = backend.card, Path(getattr(backend, "path", "") or "")
    params, params_from = count_params(path, card.extra) if path.is_file() else (None, "unknown")
    infer_s = float(np.sum(np.frombuffer(rec.stage_s["inference"], dtype=np.float64)))
    n = source.counters()
    model = {"file": str(path), "file_bytes": path.stat().st_size if path.is_file() else None,
             "params": params, "params_from": params_from, "architecture": card.display_name,
             "input_hw": list(card.input_hw), "num_classes": card.num_classes,
             "precision": card.precision, "unpool_mode": card.unpool_mode}
    metrics = scorer.compute()
    metric_dict = None if metrics is None else {"frames": scorer.frames, **metrics.to_dict(card.class_names)}
    return StreamReport(
        frames=rec.frames, wall_s=round(wall, 4), fps=round(rec.frames / wall, 3) if wall > 0 else 0.0,
        outside_inference_share=(round(1.0 - infer_s / (workers * wall), 4) if rec.frames and wall > 0
                                 else None),
        stages_ms={s: distribution_ms(v) for s, v in rec.stage_s.items()},
        latency_ms=distribution_ms(rec.latency_s), dropped=n.dropped, corrupt=n.corrupt,
        timeouts=rec.timeouts, reconnects=n.reconnects, stop_reason=reason,
        source={"description": source.description, "live": source.live, "fps": source.fps,
                "produced": n.produced},
        model=model, backend=backend.describe(), metrics=metric_dict, outputs=outputs, started_utc=started,
        infer_workers=workers)
