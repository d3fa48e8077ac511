"""Where overlays and per-frame records go: window, video file, frame files, JSON-lines stats,
a progress line. All chosen by what the user passes (:class:`SinkOptions`), all checked before
the first frame, all finalized by ``close()`` (which the loop always calls, Ctrl-C included).

Nothing half-written is left under a final name: the video is written to a hidden
``.NAME.partial.SUFFIX`` next to the target and renamed on close; each frame file is written to a
temporary name and renamed. The stats file is the exception by design: it is appended and
flushed line by line under its final name, so a killed process still leaves every completed
line (each line is one whole JSON object).

Every write is checked and counted: ``cv2.VideoWriter.write`` reports nothing, so the video sink
checks the room left (free space and ``ulimit -f``) before each frame and stops the run with a
one-line error before the disk is full, and on close it counts the frames the finished file holds;
fewer than were written is an error (the report then says so and the run exits 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from edgeseg.runtime.report import FrameRecord
from edgeseg.runtime.sources import Frame

from edgeseg.errors import OutputError, SourceError
from edgeseg.io import check_room, output_error

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class Sink(Protocol):
    """``write`` gets every overlay (a buffer reused next frame: consume it now); ``log`` the
    frame's complete record after all sinks ran; ``close`` finalizes and returns what it wrote."""

    stop_requested: bool

    def write(self, image_bgr: np.ndarray, frame: Frame) -> None: ...

    def log(self, record: FrameRecord) -> None: ...

    def close(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SinkOptions:
    """``window``: None = show one when a display exists, True = required, False = headless."""

    window: bool | None = None
    save: Path | None = None
    save_frames: Path | None = None
    stats: Path | None = None
    save_fps: float | None = None
    progress: bool = False
    progress_total: int | None = None


class _Base:
    stop_requested = False

    def write(self, image_bgr: np.ndarray, frame: Frame) -> None:
        return None

    def log(self, record: FrameRecord) -> None:
        return None

    def close(self) -> dict[str, str]:
        return {}


def display_status() -> tuple[bool, str]:
    """(can a window be shown here, why not)."""
    gui = [ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")]
    if gui and "NONE" in gui[0]:
        return False, "this OpenCV build has no GUI (opencv-python-headless)"
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not has_display:
        return False, "no display (DISPLAY is not set)"
    return True, ""


class WindowSink(_Base):
    """An OpenCV window; 'q' or Esc (or closing the window) asks the loop to stop."""

    def __init__(self, title: str = "edgeseg") -> None:
        self.title = title
        self._opened = False

    def write(self, image_bgr: np.ndarray, frame: Frame) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, image_bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True

    def close(self) -> dict[str, str]:
        if self._opened:
            cv2.destroyWindow(self.title)
        return {}


class VideoSink(_Base):
    """Overlay video (``.mp4``/``.mkv`` mp4v, ``.avi`` MJPG), opened at the first frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self._wh: tuple[int, int] = (0, 0)
        self.frames = 0

    def write(self, image_bgr: np.ndarray, frame: Frame) -> None:
        h, w = image_bgr.shape[:2]
        if self._writer is None:
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"cannot write video {self.path} ({VIDEO_CODECS[self.path.suffix.lower()]} "
                                  f"{w}x{h}); try another folder or --save out.avi")
            self._wh = (w, h)
        if (w, h) != self._wh:  # the source changed resolution: keep the file's size
            image_bgr = cv2.resize(image_bgr, self._wh, interpolation=cv2.INTER_AREA)
        # VideoWriter.write returns nothing and drops frames silently on a full disk: check the room
        # first. An encoded frame is far smaller than the raw one, so raw size + 1 MiB (container
        # index written on close) is a safe margin.
        check_room(self.tmp, image_bgr.nbytes + (1 << 20),
                   f"--save video {self.path} (frame {self.frames + 1})")
        self._writer.write(image_bgr)
        self.frames += 1

    def close(self) -> dict[str, str]:
        if self._writer is None:
            return {}
        self._writer.release()
        self._writer = None
        if self.frames == 0:
            self.tmp.unlink(missing_ok=True)
            return {}
        held = video_frames(self.tmp)
        if held != self.frames:  # the disk filled up after the last check: keep the file, say so
            lost = self.tmp.with_name(f"{self.path.stem}.incomplete{self.path.suffix}")
            os.replace(self.tmp, lost)
            raise OutputError(f"video {lost} holds {held} of {self.frames} frames written (disk full or "
                              "file-size limit); free space and run again")
        os.replace(self.tmp, self.path)
        return {"video": str(self.path)}


def video_frames(path: Path) -> int:
    """Frames a finished video file holds (its container index; 0 if it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


class FramesSink(_Base):
    """One PNG per frame, ``DIR/<frame name>.png`` (written to a temporary name, then renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def write(self, image_bgr: np.ndarray, frame: Frame) -> None:
        target = self.folder / f"{frame.name}.png"
        tmp = self.folder / f".{frame.name}.partial.png"
        check_room(tmp, image_bgr.nbytes, f"--save-frames image {target}")
        if not cv2.imwrite(str(tmp), image_bgr):
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {target}; check the --save-frames folder and free space")
        os.replace(tmp, target)
        self.frames += 1

    def close(self) -> dict[str, str]:
        return {"frames": str(self.folder)} if self.frames else {}


class StatsSink(_Base):
    """``--stats stats.jsonl``: one JSON object per processed frame, flushed line by line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, record: FrameRecord) -> None:
        try:
            self._f.write(json.dumps(record.to_dict()) + "\n")
            self._f.flush()
        except OSError as e:  # disk full / size limit: one line, the run stops and reports
            with contextlib.suppress(OSError):
                self._f.close()  # drops the unwritable tail; close() must not fail a second time
            raise output_error(e, self.path, "--stats") or OutputError(
                f"writing --stats {self.path} failed ({e.strerror}); choose another path") from None

    def close(self) -> dict[str, str]:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError as e:
                raise output_error(e, self.path, "--stats") or OutputError(
                    f"closing --stats {self.path} failed ({e.strerror})") from None
        return {"stats": str(self.path)}


class ProgressSink(_Base):
    """A rich progress line on stderr, refreshed at most 4 times a second."""

    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]stream"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.description}"), TimeElapsedColumn(),
                                  console=Console(stderr=True), auto_refresh=False)
        self._task = self._progress.add_task("", total=total)
        self._progress.start()
        self._last = 0.0

    def log(self, record: FrameRecord) -> None:
        now = time.monotonic()
        if now - self._last >= 0.25:
            desc = f"latency {record.latency_ms:.0f} ms  dropped {record.dropped}"
            self._progress.update(self._task, completed=record.seq + 1, description=desc, refresh=True)
            self._last = now

    def close(self) -> dict[str, str]:
        self._progress.stop()
        return {}


def _check_output(path: Path, what: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SourceError(f"{what} folder {parent} does not exist; create it or choose another path")


def open_sinks(options: SinkOptions, source_fps: float | None) -> list[Any]:
    """Check every requested output, then open the sinks (no window without a display)."""
    if options.save is not None:
        _check_output(options.save, "--save")
        if options.save.suffix.lower() not in VIDEO_CODECS:
            raise SourceError(f"--save {options.save.name}: unknown video type "
                              f"{options.save.suffix or '(none)'!r}; use one of {', '.join(VIDEO_CODECS)}")
    if options.stats is not None:
        _check_output(options.stats, "--stats")
    can_show, why = display_status()
    if options.window and not can_show:
        raise SourceError(f"a window was requested but {why}; run with --headless (add --save out.mp4 "
                          "to keep the overlay)")
    sinks: list[Any] = []
    if options.window or (options.window is None and can_show):
        sinks.append(WindowSink())
    if options.save is not None:
        sinks.append(VideoSink(options.save, options.save_fps or source_fps or 30.0))
    if options.save_frames is not None:
        sinks.append(FramesSink(options.save_frames))
    if options.stats is not None:
        sinks.append(StatsSink(options.stats))
    if options.progress:
        sinks.append(ProgressSink(options.progress_total))
    return sinks
