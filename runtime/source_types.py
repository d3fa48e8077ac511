"""What every video source shares (docs/design.md §7): options, the frame and read result, the
counters, the ``Source`` protocol, ground-truth masks by frame name and URL redaction.

File sources and :func:`~edgeseg.runtime.sources.open_source` live in ``sources.py``, live
(threaded) sources in ``live.py``; both build on this module, neither imports the other for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgeseg.errors import SourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
class ReadStatus(str, Enum):
    """Outcome of one ``read()``."""

    OK = "ok"  # a frame
    TIMEOUT = "timeout"  # a live source produced no new frame in time (try again)
    END = "end"  # the source is exhausted (end of file / folder / synthetic count)
    ERROR = "error"  # the source failed and will not recover (message says why)


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    ``image_bgr``: uint8 HxWx3. ``index``: the source's running frame number (dropped frames
    included, so gaps show drops). ``t_capture``: ``time.perf_counter()`` when it was grabbed.
    ``mask``: HxW uint8 ground-truth label map or None.
    """

    image_bgr: np.ndarray
    index: int
    t_capture: float
    name: str
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class ReadResult:
    status: ReadStatus
    frame: Frame | None = None
    message: str = ""


@dataclass(frozen=True)
class SourceCounters:
    """Running totals a source keeps: frames produced, dropped (overwritten unread), corrupt
    (unreadable, skipped) and reconnects after a lost stream."""

    produced: int = 0
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0


@dataclass(frozen=True)
class SourceOptions:
    """How sources are opened and read.

    ``timeout_s``: how long ``read()`` waits for a new live frame before returning TIMEOUT.
    ``reconnect_s``: total time a lost live source is retried (backoff from ``backoff_s[0]``
    doubling to ``backoff_s[1]``) before it reports ERROR. ``stall_s``: a live source that
    delivers nothing for this long reports ERROR. ``masks_dir``: ground-truth label maps named
    like the frames (image stem, or ``000123`` = frame index for videos and cameras).
    ``synthetic_fps``: None = file-like (every frame processed); a rate = live-like producer
    thread at that rate keeping the newest frame. ``synthetic_frames``: None = endless.
    ``camera_hw`` / ``camera_fps``: frame size (height, width) and rate asked of cameras; None =
    the driver's default (``csi://``: 720x1280 at 30 fps).
    """

    timeout_s: float = 2.0
    reconnect_s: float = 15.0
    backoff_s: tuple[float, float] = (0.25, 2.0)
    stall_s: float = 30.0
    masks_dir: Path | None = None
    synthetic_hw: tuple[int, int] = (360, 480)
    synthetic_seed: int = 0
    synthetic_fps: float | None = None
    synthetic_frames: int | None = None
    camera_hw: tuple[int, int] | None = None
    camera_fps: float | None = None
    probe_cameras: int = 6
    max_corrupt_run: int = 50


class Source(Protocol):
    """What the streaming loop needs from a source."""

    description: str  # redacted, safe to print
    live: bool
    fps: float | None  # nominal rate when known

    def read(self, timeout_s: float | None = None) -> ReadResult: ...

    def counters(self) -> SourceCounters: ...

    def close(self) -> None: ...


def redact(text: str) -> str:
    """Hide passwords in URLs (``rtsp://user:pw@host`` -> ``rtsp://user:***@host``) and
    GStreamer properties (``user-pw=…``)."""
    text = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)
    return re.sub(r"\b(user-pw|password|passwd|pwd)=(\"[^\"]*\"|\S+)", r"\1=***", text)


def valid_image(image: object) -> np.ndarray | None:
    """The frame as uint8 HxWx3 BGR, or None when it is unusable (corrupt)."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


class MaskFolder:
    """Ground-truth label maps in a folder, looked up by frame name (file stem)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise SourceError(f"--masks folder {folder} does not exist; pass a folder of label-map images")
        self.folder = folder
        self._by_stem = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not self._by_stem:
            raise SourceError(f"--masks folder {folder} holds no images; expected label maps such as "
                              "000000.png")

    def get(self, name: str) -> np.ndarray | None:
        """HxW uint8 label map for frame ``name``, or None when there is none."""
        path = self._by_stem.get(name)
        if path is None:
            return None
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise SourceError(f"mask {path} is unreadable; replace it or remove it from --masks")
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise SourceError(
                f"mask {path} is {mask.dtype} with shape {mask.shape}; expected a single-channel uint8 "
                "label map (class ids, not colours)"
            )
        return mask
