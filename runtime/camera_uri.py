"""Camera URIs as jetson-inference users type them: ``csi://N``, ``v4l2:///dev/videoN``, ``file://PATH``.

* ``csi://N`` — MIPI CSI sensor N through Argus: the ``nvarguscamerasrc`` GStreamer pipeline is
  built here with the frame size (``SourceOptions.camera_hw``, default 720x1280) and rate
  (``SourceOptions.camera_fps``, default 30), converted to BGR by ``nvvidconv`` + ``videoconvert``,
  and opened as a GStreamer source. Needs an OpenCV with GStreamer and Jetson's Argus plugin.
* ``v4l2:///dev/videoN`` — a V4L2 device by path (USB cameras), opened with OpenCV's V4L2 backend.
* ``file://PATH`` — a video file, image folder or glob (``file://clip.mp4`` is relative,
  ``file:///data/clip.mp4`` absolute), read like a plain path.

``rtsp://…`` and ``http(s)://…`` need no translation (FFmpeg reads them). Every refusal is one
line naming the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from edgeseg.errors import SourceError

CSI_DEFAULT_HW = (720, 1280)  # jetson-inference's CSI default: 1280x720 at 30 fps
CSI_DEFAULT_FPS = 30.0
ARGUS_ELEMENT = "nvarguscamerasrc"
ARGUS_PLUGIN_FILE = "libgstnvarguscamerasrc.so"
GST_PLUGIN_DIRS = ("/usr/lib/aarch64-linux-gnu/gstreamer-1.0", "/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
                   "/usr/lib/gstreamer-1.0", "/usr/local/lib/gstreamer-1.0")


def csi_pipeline(sensor_id: int, hw: tuple[int, int] | None = None, fps: float | None = None) -> str:
    """The GStreamer pipeline for CSI sensor ``sensor_id`` at ``hw`` (height, width) and ``fps``.

    Argus delivers NV12 in NVMM (GPU) memory; ``nvvidconv`` copies it to system memory as BGRx and
    ``videoconvert`` drops the pad byte for OpenCV's BGR. ``appsink drop=1 max-buffers=1`` keeps only
    the newest frame, like every edgeseg live source.
    """
    h, w = hw or CSI_DEFAULT_HW
    rate = fps or CSI_DEFAULT_FPS
    num, den = (int(rate), 1) if float(rate).is_integer() else (int(round(rate * 1000)), 1000)
    return (f"{ARGUS_ELEMENT} sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={w}, height={h}, "
            f"framerate={num}/{den}, format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
            "video/x-raw, format=BGR ! appsink drop=1 max-buffers=1")


def gst_element_available(element: str, plugin_file: str | None = None) -> bool:
    """True when GStreamer has ``element``: ``gst-inspect-1.0 ELEMENT`` when that tool exists, else
    a look for ``plugin_file`` in the usual plugin folders and ``$GST_PLUGIN_PATH``."""
    tool = shutil.which("gst-inspect-1.0")
    if tool:
        try:
            return subprocess.run([tool, element], capture_output=True, timeout=30,
                                  check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    if plugin_file is None:
        return False
    extra = [d for d in os.environ.get("GST_PLUGIN_PATH", "").split(os.pathsep) if d]
    return any((Path(d) / plugin_file).is_file() for d in (*extra, *GST_PLUGIN_DIRS))


def parse_csi(uri: str) -> int:
    """The sensor id of ``csi://N``; SourceError otherwise."""
    found = re.fullmatch(r"csi://(\d+)", uri.strip())
    if not found:
        raise SourceError(f"CSI camera URI {uri!r} is not csi://N; pass e.g. --source csi://0 (sensor 0), "
                          "with --camera-size 720x1280 --camera-fps 30")
    return int(found.group(1))


def check_argus(uri: str, available: bool | None = None) -> None:
    """Refuse ``csi://`` when this machine has no ``nvarguscamerasrc`` (not a Jetson, or no Argus)."""
    if available is None:
        available = gst_element_available(ARGUS_ELEMENT, ARGUS_PLUGIN_FILE)
    if not available:
        raise SourceError(f"{uri} needs the GStreamer element {ARGUS_ELEMENT} (Jetson's Argus camera "
                          "plugin), which this machine does not have; on a Jetson: sudo apt install "
                          "nvidia-l4t-gstreamer; elsewhere use a USB camera: --source v4l2:///dev/video0")


def v4l2_device(uri: str) -> Path:
    """``v4l2:///dev/video0`` -> ``/dev/video0``; SourceError when the URI is not a device path."""
    found = re.fullmatch(r"v4l2://(/dev/\S+)", uri.strip())
    if not found:
        raise SourceError(f"V4L2 URI {uri!r} is not v4l2:///dev/videoN (three slashes: scheme + absolute "
                          "path); pass e.g. --source v4l2:///dev/video0")
    return Path(found.group(1))


def video_devices(dev: Path = Path("/dev")) -> list[Path]:
    """``/dev/video*`` in numeric order."""
    found = [p for p in dev.glob("video*") if re.fullmatch(r"video\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[5:]))


def missing_device_error(device: Path, dev: Path = Path("/dev")) -> SourceError:
    """One line for a V4L2 device that does not exist, naming the devices that do."""
    others = [p for p in video_devices(dev) if p.name != device.name]
    if others:
        listed = ", ".join(str(p) for p in others)
        return SourceError(f"camera device {device} does not exist; video devices here: {listed}; pass "
                           f"--source v4l2://{others[0]}")
    return SourceError(f"camera device {device} does not exist and there is no /dev/video* here; connect a "
                       "USB camera (check with: ls /dev/video*), use --source csi://0 for a Jetson CSI "
                       "camera, or --source synthetic")


def file_path(uri: str) -> str:
    """``file://clip.mp4`` -> ``clip.mp4``; ``file:///data/x.mp4`` -> ``/data/x.mp4``."""
    path = uri.strip()[len("file://"):]
    if not path:
        raise SourceError("file:// URI has no path; pass e.g. --source file:///data/clip.mp4")
    return path
