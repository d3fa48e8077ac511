"""Video sources chosen by what the user passes (docs/design.md §7, STYLE.md §8).

``open_source(spec, options)`` understands:

| spec                                   | source                         | read on     |
|----------------------------------------|--------------------------------|-------------|
| ``camera:N`` or ``N`` (``--camera N``) | V4L2/USB camera N              | a thread    |
| ``v4l2:///dev/videoN``, ``/dev/videoN`` | V4L2 device by path            | a thread    |
| ``csi://N``                            | Jetson CSI camera (Argus)      | a thread    |
| ``rtsp://…``, ``http(s)://…``, …       | network stream (FFmpeg)        | a thread    |
| a string with ``!`` and ``appsink``    | GStreamer pipeline             | a thread    |
| ``synthetic``                          | moving shapes with exact masks | caller (1)  |
| a video file                           | decoded frame by frame         | caller      |
| an image folder, a glob or one image   | images in sorted order         | caller      |
| ``file://PATH``                        | the same as PATH               | caller      |

(1) or a thread, live-like, with ``SourceOptions.synthetic_fps``.

The URI forms follow jetson-inference (``csi://0``, ``v4l2:///dev/video0``, ``file://``); see
:mod:`edgeseg.runtime.camera_uri`.

Live sources (threads) keep only the newest frame, so latency never builds up; frames the
consumer did not take in time are counted as dropped. Files are read frame by frame (none
dropped). ``read()`` returns a :class:`ReadResult` whose status is OK, TIMEOUT, END or ERROR.
Unreadable frames are skipped and counted as corrupt. Passwords in URLs are never logged: every
description goes through :func:`redact`.
"""

from __future__ import annotations

import glob as globlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
from edgeseg.runtime.source_types import (
    IMAGE_SUFFIXES,
    Frame,
    MaskFolder,
    ReadResult,
    ReadStatus,
    Source,
    SourceCounters,
    SourceOptions,
    redact,
    valid_image,
)

from edgeseg.errors import SourceError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".wmv")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
SOURCE_FORMS = (
    "--camera N, csi://N, v4l2:///dev/videoN, a video file (or file://PATH), an image folder or glob, "
    "an rtsp:// or http(s):// URL, a GStreamer pipeline ending in '! appsink', or 'synthetic'"
)


class ImageFilesSource:
    """Images in a fixed order, read on the caller's thread; unreadable ones are skipped."""

    live = False
    fps: float | None = None

    def __init__(self, paths: list[Path], description: str, masks: MaskFolder | None) -> None:
        self.description = description
        self._paths = paths
        self._masks = masks
        self._pos = 0
        self._produced = 0
        self._corrupt = 0

    def read(self, timeout_s: float | None = None) -> ReadResult:
        while self._pos < len(self._paths):
            path = self._paths[self._pos]
            self._pos += 1
            image = valid_image(cv2.imread(str(path), cv2.IMREAD_COLOR))
            if image is None:
                self._corrupt += 1
                continue
            mask = self._masks.get(path.stem) if self._masks else None
            frame = Frame(image, self._pos - 1, time.perf_counter(), path.stem, mask)
            self._produced += 1
            return ReadResult(ReadStatus.OK, frame)
        return ReadResult(ReadStatus.END, message=f"all {len(self._paths)} images read")

    def counters(self) -> SourceCounters:
        return SourceCounters(self._produced, 0, self._corrupt, 0)

    def close(self) -> None:
        self._pos = len(self._paths)


class VideoFileSource:
    """A video file decoded frame by frame on the caller's thread (nothing dropped)."""

    live = False

    def __init__(self, path: Path, masks: MaskFolder | None, max_corrupt_run: int) -> None:
        self.description = str(path)
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise SourceError(
                f"cannot read video {path}: OpenCV could not open it (not a video or unsupported codec); "
                f"check the file or convert it (ffmpeg -i {path.name} out.mp4)"
            )
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else None
        self._count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._masks = masks
        self._max_run = max_corrupt_run
        self._index = 0
        self._produced = 0
        self._corrupt = 0

    def read(self, timeout_s: float | None = None) -> ReadResult:
        run = 0
        while True:
            ok, raw = self._cap.read()
            index = self._index
            self._index += 1
            image = valid_image(raw) if ok else None
            if image is not None:
                break
            if not ok and index >= self._count - 1:
                return ReadResult(ReadStatus.END, message=f"end of video after {self._produced} frames")
            self._corrupt += 1
            run += 1
            if run >= self._max_run:
                return ReadResult(ReadStatus.END, message=f"{run} unreadable frames in a row; stopped")
        self._produced += 1
        name = f"{index:06d}"
        mask = self._masks.get(name) if self._masks else None
        return ReadResult(ReadStatus.OK, Frame(image, index, time.perf_counter(), name, mask))

    def counters(self) -> SourceCounters:
        return SourceCounters(self._produced, 0, self._corrupt, 0)

    def close(self) -> None:
        self._cap.release()


class SyntheticSource:
    """The built-in scene generator (exact masks), read on the caller's thread."""

    live = False

    def __init__(self, options: SourceOptions) -> None:
        from edgeseg.data.synthetic import SyntheticScenes

        self._scenes = SyntheticScenes(options.synthetic_hw, options.synthetic_seed)
        self._limit = options.synthetic_frames
        h, w = options.synthetic_hw
        self.description = f"synthetic {h}x{w} seed {options.synthetic_seed}"
        self.fps = options.synthetic_fps
        self._t = 0

    def read(self, timeout_s: float | None = None) -> ReadResult:
        if self._limit is not None and self._t >= self._limit:
            return ReadResult(ReadStatus.END, message=f"{self._limit} synthetic frames produced")
        sample = self._scenes.frame(self._t)
        frame = Frame(sample.image_bgr, self._t, time.perf_counter(), sample.name, sample.mask)
        self._t += 1
        return ReadResult(ReadStatus.OK, frame)

    def counters(self) -> SourceCounters:
        return SourceCounters(self._t, 0, 0, 0)

    def close(self) -> None:
        self._limit = self._t


def _image_paths(pattern_or_dir: str) -> Iterator[Path]:
    p = Path(pattern_or_dir)
    found = sorted(p.iterdir()) if p.is_dir() else sorted(Path(x) for x in globlib.glob(pattern_or_dir))
    return (x for x in found if x.is_file() and x.suffix.lower() in IMAGE_SUFFIXES)


def _open_path(spec: str, options: SourceOptions, masks: MaskFolder | None) -> Source:
    path = Path(spec).expanduser()
    if any(c in spec for c in "*?[") and not path.exists():
        paths = list(_image_paths(spec))
        if not paths:
            raise SourceError(f"glob {spec!r} matched no images ({', '.join(IMAGE_SUFFIXES)}); "
                              "check the pattern")
        return ImageFilesSource(paths, f"{len(paths)} images matching {spec}", masks)
    if path.is_dir():
        paths = list(_image_paths(str(path)))
        if not paths:
            raise SourceError(f"image folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                              "pass a folder of images or a video file")
        return ImageFilesSource(paths, f"{len(paths)} images in {path}", masks)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
                raise SourceError(f"cannot read image {path}: not a valid image file; check or replace it")
            return ImageFilesSource([path], str(path), masks)
        return VideoFileSource(path, masks, options.max_corrupt_run)
    if path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES or "/" in spec:
        raise SourceError(f"source {redact(spec)!r} does not exist; check the path (expected {SOURCE_FORMS})")
    raise SourceError(f"unknown source {redact(spec)!r}; expected {SOURCE_FORMS}")


def open_source(spec: str, options: SourceOptions | None = None) -> Source:
    """Open the source ``spec`` names (see the module table); SourceError with one line otherwise."""
    from edgeseg.runtime import live

    options = options or SourceOptions()
    spec = spec.strip()
    if not spec:
        raise SourceError(f"empty source; expected {SOURCE_FORMS}")
    masks = MaskFolder(Path(options.masks_dir)) if options.masks_dir is not None else None
    camera = re.fullmatch(r"(?:camera:)?(\d+)", spec)
    if camera:
        return live.open_camera(int(camera.group(1)), options, masks)
    if spec == "synthetic":
        if options.synthetic_fps is not None:
            return live.open_synthetic_live(options)
        return SyntheticSource(options)
    if "!" in spec:
        return live.open_gstreamer(spec, options, masks)
    lowered = spec.lower()
    if lowered.startswith("csi://"):
        return live.open_csi(spec, options, masks)
    if lowered.startswith("v4l2://") or re.fullmatch(r"/dev/video\d+", spec):
        return live.open_v4l2(spec, options, masks)
    if lowered.startswith("file://"):
        from edgeseg.runtime.camera_uri import file_path

        return _open_path(file_path(spec), options, masks)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    if scheme:
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise SourceError(f"unknown source {redact(spec)!r}: URL scheme {scheme.group(1)!r} is not one "
                              f"of {', '.join(URL_SCHEMES)}; expected {SOURCE_FORMS}")
        return live.open_url(spec, options, masks)
    return _open_path(spec, options, masks)
