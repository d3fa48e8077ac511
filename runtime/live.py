"""Live sources: a reader thread that keeps only the newest frame and reconnects when lost.

A live source (camera, network stream, GStreamer pipeline, live-like synthetic generator) is
grabbed on its own thread as fast as it produces frames. The consumer always gets the newest
frame; a frame overwritten before it was taken is counted as dropped, so latency cannot build
up. When the device or stream fails mid-run the thread reopens it with exponential backoff for
at most ``SourceOptions.reconnect_s`` seconds, then ``read()`` reports ERROR and the loop stops
cleanly.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from edgeseg.runtime.source_types import (
    Frame,
    MaskFolder,
    ReadResult,
    ReadStatus,
    SourceCounters,
    SourceOptions,
    redact,
    valid_image,
)

from edgeseg.errors import SourceError

GrabResult = tuple[bool, "np.ndarray | None", "np.ndarray | None"]  # ok, image, mask


class Grabber(Protocol):
    """One opened device/stream. ``finite``: a failed grab means the source ended (no reconnect)."""

    finite: bool

    def grab(self) -> GrabResult: ...

    def release(self) -> None: ...


class CvGrabber:
    """An opened ``cv2.VideoCapture``."""

    finite = False

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self.cap = cap

    def grab(self) -> GrabResult:
        ok, image = self.cap.read()
        return ok, image, None

    def release(self) -> None:
        self.cap.release()


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (they can echo device paths or URLs) for a block.

    Distribution builds without the logging bindings (Debian's OpenCV 4.6 has no
    ``cv2.utils.logging``) cannot be silenced from Python; the block then runs as it is.
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class LiveSource:
    """Reads ``first`` (and reopened grabbers from ``opener``) on a thread; see module docstring."""

    live = True

    def __init__(self, first: Grabber, opener: Callable[[], Grabber], description: str,
                 options: SourceOptions, masks: MaskFolder | None = None, fps: float | None = None) -> None:
        self.description = description
        self.fps = fps
        self._grabber = first
        self._opener = opener
        self._options = options
        self._masks = masks
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended: ReadResult | None = None
        self._reconnecting = False
        self._n = {"produced": 0, "dropped": 0, "corrupt": 0, "reconnects": 0}
        self._last_frame_t = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgeseg-source", daemon=True)
        self._thread.start()

    # -- reader thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except SourceError as e:
            self._finish(ReadStatus.ERROR, str(e))
        except Exception as e:  # a bug or driver failure must still end the stream cleanly
            self._finish(ReadStatus.ERROR, redact(f"{self.description}: reader failed: {e!r}"))
        finally:
            self._grabber.release()

    def _loop(self) -> None:
        index, corrupt_run = 0, 0
        while not self._stop.is_set():
            ok, raw, mask = self._grabber.grab()
            t = time.perf_counter()
            image = valid_image(raw) if ok else None
            if image is not None:
                corrupt_run = 0
                name = f"{index:06d}"
                if mask is None and self._masks is not None:
                    mask = self._masks.get(name)
                self._publish(Frame(image, index, t, name, mask))
                index += 1
                continue
            if ok:  # delivered but unusable: skip it and count it
                self._n["corrupt"] += 1
                index += 1
                corrupt_run += 1
                if corrupt_run < self._options.max_corrupt_run:
                    continue
            if self._grabber.finite:
                self._finish(ReadStatus.END, f"{self.description}: end of stream after {index} frames")
                return
            if not self._reconnect():
                return

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self._latest is not None:
                self._n["dropped"] += 1
            self._latest = frame
            self._n["produced"] += 1
            self._last_frame_t = frame.t_capture
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        """Reopen with backoff for at most reconnect_s; False (and ERROR reported) if it fails."""
        self._grabber.release()
        self._reconnecting = True
        start = time.monotonic()
        delay, attempts = self._options.backoff_s[0], 0
        try:
            while not self._stop.is_set():
                remaining = self._options.reconnect_s - (time.monotonic() - start)
                if remaining <= 0:
                    break
                if self._stop.wait(min(delay, remaining)):
                    return False
                attempts += 1
                try:
                    with quiet_opencv():
                        self._grabber = self._opener()
                except SourceError:
                    delay = min(delay * 2, self._options.backoff_s[1])
                    continue
                self._n["reconnects"] += 1
                self._last_frame_t = time.perf_counter()
                return True
        finally:
            self._reconnecting = False
        self._grabber = _Closed()
        self._finish(ReadStatus.ERROR, f"{self.description}: stream lost and not back within "
                     f"{self._options.reconnect_s:g} s ({attempts} reconnect attempts); check the "
                     "device or network and restart")
        return False

    def _finish(self, status: ReadStatus, message: str) -> None:
        with self._cond:
            if self._ended is None:
                self._ended = ReadResult(status, message=message)
            self._cond.notify_all()

    # -- consumer side -------------------------------------------------------------------------
    def read(self, timeout_s: float | None = None) -> ReadResult:
        """The newest frame not yet read; TIMEOUT if none arrives in time; END/ERROR when over."""
        timeout = self._options.timeout_s if timeout_s is None else timeout_s
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended is not None, timeout)
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return ReadResult(ReadStatus.OK, frame)
            if self._ended is not None:
                return self._ended
            silent = time.perf_counter() - self._last_frame_t
            if not self._reconnecting and silent > self._options.stall_s:
                self._ended = ReadResult(ReadStatus.ERROR, message=f"{self.description}: no frame for "
                                         f"{silent:.0f} s; check the device or network and restart")
                return self._ended
            return ReadResult(ReadStatus.TIMEOUT, message=f"no new frame within {timeout:g} s")

    def counters(self) -> SourceCounters:
        with self._cond:
            return SourceCounters(**self._n)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class _Closed:
    finite = True

    def grab(self) -> GrabResult:
        return False, None, None

    def release(self) -> None:
        return None


class SyntheticGrabber:
    """The synthetic generator as a live device producing ``fps`` frames per second."""

    finite = True

    def __init__(self, options: SourceOptions, fps: float) -> None:
        from edgeseg.data.synthetic import SyntheticScenes

        self._scenes = SyntheticScenes(options.synthetic_hw, options.synthetic_seed)
        self._period = 1.0 / fps
        self._limit = options.synthetic_frames
        self._t = 0
        self._next = time.perf_counter()

    def grab(self) -> GrabResult:
        if self._limit is not None and self._t >= self._limit:
            return False, None, None
        wait = self._next - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._next = max(self._next + self._period, time.perf_counter() - self._period)
        sample = self._scenes.frame(self._t)
        self._t += 1
        return True, sample.image_bgr, sample.mask

    def release(self) -> None:
        return None


def open_synthetic_live(options: SourceOptions) -> LiveSource:
    fps = options.synthetic_fps
    if fps is None or fps <= 0:
        raise SourceError(f"synthetic fps must be > 0, got {fps}; pass e.g. --synthetic-fps 30")
    h, w = options.synthetic_hw
    desc = f"synthetic {h}x{w} seed {options.synthetic_seed} live at {fps:g} fps"

    def opener() -> Grabber:
        return SyntheticGrabber(options, fps)

    return LiveSource(opener(), opener, desc, options, None, fps)


def probe_cameras(count: int, skip: int | None = None) -> list[int]:
    """Indices in 0..count-1 (except ``skip``) that OpenCV can open."""
    found = []
    with quiet_opencv():
        for i in range(count):
            if i == skip:
                continue
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    return found


def _camera_error(index: int, count: int) -> SourceError:
    found = probe_cameras(count, skip=index)
    if found:
        listed = ", ".join(str(i) for i in found)
        return SourceError(f"camera {index} did not open; cameras that open here: {listed} "
                           f"(probed 0-{count - 1}); pass --camera {found[0]}")
    return SourceError(f"camera {index} did not open and no camera opens on this machine (probed "
                       f"0-{count - 1}); connect one, check /dev/video* permissions, or use "
                       "--source FILE|URL|synthetic")


def open_camera(index: int, options: SourceOptions, masks: MaskFolder | None) -> LiveSource:
    def opener() -> CvGrabber:
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {index} did not open")
        if options.camera_hw is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.camera_hw[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.camera_hw[1])
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames queued in the driver
        return CvGrabber(cap)

    try:
        with quiet_opencv():
            first = opener()
    except SourceError:
        raise _camera_error(index, options.probe_cameras) from None
    return _live(first, opener, f"camera {index}", options, masks)


def _live(first: CvGrabber, opener: Callable[[], CvGrabber], desc: str, options: SourceOptions,
          masks: MaskFolder | None) -> LiveSource:
    """Wrap an opened OpenCV capture (and its re-opener) as a live source with its reported FPS."""
    fps = float(first.cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
    return LiveSource(first, opener, desc, options, masks, fps)


def open_url(url: str, options: SourceOptions, masks: MaskFolder | None) -> LiveSource:
    desc = redact(url)
    open_ms = 10_000
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(max(options.timeout_s * 2, 5.0) * 1000)]

    def opener() -> CvGrabber:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open stream {desc}: no connection within {open_ms // 1000} s; "
                              "check the URL, credentials and network")
        return CvGrabber(cap)

    with quiet_opencv():
        first = opener()
    return _live(first, opener, desc, options, masks)


def gstreamer_available() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def no_gstreamer_message() -> str:
    """Why GStreamer sources cannot open here and the exact fix (a pip OpenCV shadowing the system's
    GStreamer build gets the uninstall command)."""
    import sys

    from edgeseg.opencv_info import current_opencv, gstreamer_fix, system_opencv, venv_info

    fix = gstreamer_fix(current_opencv(), system_opencv(), venv_info(), python=sys.executable)
    return f"GStreamer sources need an OpenCV with GStreamer: {fix}"


def open_gstreamer(pipeline: str, options: SourceOptions, masks: MaskFolder | None) -> LiveSource:
    desc = redact(pipeline)
    if "appsink" not in pipeline:
        raise SourceError(f"GStreamer pipeline {desc!r} has no appsink; end it with "
                          "'! videoconvert ! video/x-raw,format=BGR ! appsink drop=1'")
    if not gstreamer_available():
        raise SourceError(no_gstreamer_message())

    def opener() -> CvGrabber:
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"GStreamer pipeline did not start: {desc}; test it with gst-launch-1.0 "
                              "(appsink replaced by fakesink)")
        return CvGrabber(cap)

    with quiet_opencv():
        first = opener()
    return _live(first, opener, desc, options, masks)


def open_csi(uri: str, options: SourceOptions, masks: MaskFolder | None) -> LiveSource:
    """``csi://N``: the Argus pipeline for sensor N at ``camera_hw``/``camera_fps`` (see camera_uri)."""
    from edgeseg.runtime.camera_uri import check_argus, csi_pipeline, parse_csi

    sensor = parse_csi(uri)
    if not gstreamer_available():  # checked first: without it the Argus element cannot be used at all
        raise SourceError(f"{uri}: " + no_gstreamer_message())
    check_argus(uri)
    pipeline = csi_pipeline(sensor, options.camera_hw, options.camera_fps)
    source = open_gstreamer(pipeline, options, masks)
    source.description = f"{uri} ({pipeline.split(' ! ')[1]})"
    return source


def open_v4l2(uri: str, options: SourceOptions, masks: MaskFolder | None) -> LiveSource:
    """``v4l2:///dev/videoN`` or ``/dev/videoN``: a V4L2 device by path, OpenCV's V4L2 backend."""
    from edgeseg.runtime.camera_uri import missing_device_error, v4l2_device

    device = v4l2_device(uri) if uri.lower().startswith("v4l2://") else Path(uri)
    if not device.exists():
        raise missing_device_error(device)

    def opener() -> CvGrabber:
        cap = cv2.VideoCapture(str(device), cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {device} exists but did not open (busy in another program, or no "
                              f"permission: add yourself to the video group: sudo usermod -aG video $USER, "
                              "then log in again)")
        if options.camera_hw is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.camera_hw[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.camera_hw[1])
        if options.camera_fps is not None:
            cap.set(cv2.CAP_PROP_FPS, options.camera_fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return CvGrabber(cap)

    with quiet_opencv():
        first = opener()
    return _live(first, opener, str(device), options, masks)
