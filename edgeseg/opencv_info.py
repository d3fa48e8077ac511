"""Which OpenCV this Python uses, what its video I/O supports, and whether a better one is installed.

JetPack ships OpenCV 4.8 built with GStreamer (CSI cameras need it) for the system Python. A pip
``opencv-python*`` wheel in a venv shadows it and has no GStreamer, so GStreamer pipelines and
``csi://`` cameras fail. This module (torch-free, cv2 imported only when asked) finds that case and
words the fix; ``edgeseg doctor`` and the GStreamer/CSI sources both use it.

Everything that touches the machine is a small function taking plain data, so tests feed recorded
``cv2.getBuildInformation()`` texts and recorded system-Python answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The pip distributions that install a ``cv2`` package.
PIP_OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                    "opencv-contrib-python-headless")
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class OpenCvBuild:
    """What ``cv2.getBuildInformation()`` says about video I/O.

    Each backend field is the text after the colon ("YES (1.22.0)", "NO") or None when the line is
    absent (older builds omit backends they were not configured with).
    """

    version: str | None
    gstreamer: str | None
    v4l2: str | None
    ffmpeg: str | None

    @staticmethod
    def _yes(value: str | None) -> bool:
        return value is not None and value.upper().startswith("YES")

    @property
    def has_gstreamer(self) -> bool:
        return self._yes(self.gstreamer)

    @property
    def has_v4l2(self) -> bool:
        return self._yes(self.v4l2)

    @property
    def has_ffmpeg(self) -> bool:
        return self._yes(self.ffmpeg)


def parse_build_info(text: str) -> OpenCvBuild:
    """Parse the version line and the "Video I/O" section of ``cv2.getBuildInformation()``."""
    version = re.search(r"General configuration for OpenCV (\S+)", text)
    section = text.split("Video I/O:", 1)[1] if "Video I/O:" in text else ""
    # The section ends at the next top-level heading (two-space indent, then a word and a colon).
    section = re.split(r"\n  \S[^\n]*:\s*\n", section, maxsplit=1)[0]

    def field(*names: str) -> str | None:
        for name in names:
            found = re.search(rf"^\s*{re.escape(name)}:\s*(.+?)\s*$", section, flags=re.M | re.I)
            if found:
                return found.group(1)
        return None

    return OpenCvBuild(version.group(1) if version else None, field("GStreamer"),
                       field("v4l/v4l2", "V4L/V4L2", "v4l2"), field("FFMPEG"))


@dataclass(frozen=True)
class OpenCvInstall:
    """One OpenCV as seen from one Python: version, where ``cv2`` lives, which pip distribution (if
    any) installed it, and its video I/O."""

    python: str  # the interpreter's version, "3.10.12"
    file: str  # cv2.__file__
    pip_dist: str | None  # "opencv-python-headless" or None (system / source build)
    build: OpenCvBuild
    numpy: str | None = None  # that Python's numpy (a cv2 built against numpy 1.x fails on numpy 2)


def current_opencv() -> OpenCvInstall | None:
    """The OpenCV this interpreter imports, or None when ``import cv2`` fails."""
    from importlib import metadata

    try:
        import cv2
    except ImportError:
        return None
    dist = None
    for name in PIP_OPENCV_DISTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        # The distribution must own the cv2 actually imported (a system cv2 may shadow a pip one).
        location = Path(str(metadata.distribution(name).locate_file("cv2"))).resolve()
        if any(str(f).startswith("cv2/") for f in files) and Path(cv2.__file__).resolve().is_relative_to(
                location):
            dist = name
            break
    import numpy

    return OpenCvInstall(sys.version.split()[0], str(cv2.__file__), dist,
                         parse_build_info(cv2.getBuildInformation()), numpy.__version__)


_PROBE = ("import json, sys\n"
          "try:\n    import cv2, numpy\nexcept Exception:\n    cv2 = numpy = None\n"
          "json.dump({'python': sys.version.split()[0], 'file': getattr(cv2, '__file__', None),"
          " 'numpy': getattr(numpy, '__version__', None),"
          " 'info': cv2.getBuildInformation() if cv2 else None}, sys.stdout)\n")


def system_opencv(python: str = SYSTEM_PYTHON, timeout_s: float = 20.0) -> OpenCvInstall | None:
    """The OpenCV the system Python (``/usr/bin/python3``, without user site-packages) imports.

    None when that Python is missing or has no cv2. Runs a short subprocess (about a second).
    """
    if not Path(python).is_file():
        return None
    try:
        out = subprocess.run([python, "-s", "-c", _PROBE], capture_output=True, text=True,
                             timeout=timeout_s, check=False)
        answer = json.loads(out.stdout)
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    if not answer.get("file") or not answer.get("info"):
        return None
    return OpenCvInstall(str(answer["python"]), str(answer["file"]), None, parse_build_info(answer["info"]),
                         answer.get("numpy"))


@dataclass(frozen=True)
class VenvInfo:
    """The running interpreter's environment: a venv or not, and whether it sees system packages."""

    prefix: str
    is_venv: bool
    system_site_packages: bool


def venv_info(prefix: str | None = None) -> VenvInfo:
    """Read ``<prefix>/pyvenv.cfg`` (``sys.prefix`` by default)."""
    root = Path(prefix or sys.prefix)
    cfg = root / "pyvenv.cfg"
    if not cfg.is_file():
        return VenvInfo(str(root), False, True)
    text = cfg.read_text(encoding="utf-8", errors="replace")
    found = re.search(r"^include-system-site-packages\s*=\s*(\w+)", text, flags=re.M | re.I)
    return VenvInfo(str(root), True, bool(found and found.group(1).lower() == "true"))


def _same_minor(a: str, b: str) -> bool:
    return a.split(".")[:2] == b.split(".")[:2]


def gstreamer_fix(current: OpenCvInstall | None, system: OpenCvInstall | None, venv: VenvInfo,
                  python: str = "python") -> str:
    """The one-line explanation and fix when ``current`` OpenCV lacks GStreamer ("" when it has it).

    ``python`` is how the user runs this interpreter (for the pip command in the fix).
    """
    if current is not None and current.build.has_gstreamer:
        return ""
    what = ("no OpenCV is importable" if current is None else
            f"the OpenCV in use ({current.build.version}, {current.file}) has no GStreamer support")
    if system is None or not system.build.has_gstreamer:
        return (f"{what} and the system Python has no GStreamer-enabled OpenCV either; on a Jetson "
                "install JetPack's: sudo apt install nvidia-opencv (Debian/Ubuntu elsewhere: sudo apt "
                "install python3-opencv gstreamer1.0-plugins-good), then use a venv made with "
                "/usr/bin/python3 -m venv --system-site-packages")
    here = sys.version.split()[0] if current is None else current.python
    if not _same_minor(here, system.python):
        return (f"{what}; the system OpenCV {system.build.version} ({system.file}) has GStreamer but is "
                f"built for Python {system.python}, not {here}: make a venv from the system Python: "
                "/usr/bin/python3 -m venv --system-site-packages .venv")
    steps = []
    if current is not None and current.pip_dist:
        steps.append(f"{python} -m pip uninstall -y {current.pip_dist}")
    here_numpy = current.numpy if current is not None else None
    if system.numpy and system.numpy.startswith("1.") and here_numpy and not here_numpy.startswith("1."):
        # The system cv2 is compiled against numpy 1.x and does not import beside numpy 2.
        steps.append(f"{python} -m pip install 'numpy>=1.24,<2'")
    if venv.is_venv and not venv.system_site_packages:
        steps.append("sed -i 's/^include-system-site-packages *= *false/include-system-site-packages = "
                     f"true/' {Path(venv.prefix) / 'pyvenv.cfg'}")
    if not steps:  # a non-pip cv2 (source build, PYTHONPATH) comes first on sys.path
        steps.append("remove the other cv2 from PYTHONPATH / site-packages")
    return (f"{what}, but the system OpenCV {system.build.version} ({system.file}) has GStreamer; "
            f"use it: {' && '.join(steps)}")
