"""jetson-inference-style camera URIs: csi://, v4l2://, file:// (and the one-line refusals)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeseg.runtime import camera_uri, live
from edgeseg.runtime.sources import ReadStatus, SourceOptions, open_source
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import SourceError


def test_csi_pipeline_default_and_custom() -> None:
    default = camera_uri.csi_pipeline(0)
    assert default.startswith("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=1280, "
                              "height=720, framerate=30/1, format=NV12 ! nvvidconv ! video/x-raw, "
                              "format=BGRx")
    assert default.endswith("video/x-raw, format=BGR ! appsink drop=1 max-buffers=1")
    custom = camera_uri.csi_pipeline(1, (1080, 1920), 59.94)
    assert "sensor-id=1" in custom and "width=1920, height=1080" in custom
    assert "framerate=59940/1000" in custom


def test_csi_opens_the_built_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    class Opened:
        description = ""

    def fake_open(pipeline: str, options: SourceOptions, masks: object) -> Opened:
        seen.append(pipeline)
        return Opened()

    monkeypatch.setattr(live, "gstreamer_available", lambda: True)
    monkeypatch.setattr(camera_uri, "gst_element_available", lambda *a: True)
    monkeypatch.setattr(live, "open_gstreamer", fake_open)
    src = open_source("csi://1", SourceOptions(camera_hw=(480, 640), camera_fps=15))
    assert seen == [camera_uri.csi_pipeline(1, (480, 640), 15)]
    assert src.description.startswith("csi://1 (video/x-raw(memory:NVMM), width=640, height=480")


def test_csi_without_argus_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "gstreamer_available", lambda: True)
    monkeypatch.setattr(camera_uri, "gst_element_available", lambda *a: False)
    with pytest.raises(SourceError) as e:
        open_source("csi://0")
    msg = str(e.value)
    assert "nvarguscamerasrc" in msg and "sudo apt install nvidia-l4t-gstreamer" in msg
    assert "--source v4l2:///dev/video0" in msg and "\n" not in msg


def test_csi_without_gstreamer_opencv_names_the_fix() -> None:
    if live.gstreamer_available():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError) as e:
        open_source("csi://0")
    msg = str(e.value)
    assert msg.startswith("csi://0: GStreamer sources need an OpenCV with GStreamer") and "\n" not in msg
    assert "no GStreamer support" in msg


@pytest.mark.parametrize(("uri", "expect"), [
    ("csi://front", "is not csi://N"),
    ("v4l2://video0", "three slashes"),
    ("file://", "has no path"),
])
def test_malformed_uris(uri: str, expect: str) -> None:
    with pytest.raises(SourceError, match=expect):
        open_source(uri)


def test_missing_v4l2_device_names_the_ones_present(tmp_path: Path) -> None:
    for name in ("video2", "video10", "video-meta"):
        (tmp_path / name).write_text("")
    msg = str(camera_uri.missing_device_error(Path("/dev/video0"), tmp_path))
    assert msg.startswith("camera device /dev/video0 does not exist; video devices here: ")
    assert msg.endswith(f"pass --source v4l2://{tmp_path / 'video2'}") and "video-meta" not in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "ls /dev/video*" in str(camera_uri.missing_device_error(Path("/dev/video0"), empty))


def test_v4l2_uri_of_absent_device() -> None:
    absent = "/dev/video97"
    if Path(absent).exists():
        pytest.skip(f"{absent} exists here")
    for spec in (f"v4l2://{absent}", absent):
        with pytest.raises(SourceError, match=f"camera device {absent} does not exist"):
            open_source(spec)


def test_file_uri_reads_like_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((12, 16, 3), 40 * i, np.uint8))
    src = open_source(f"file://{tmp_path / 'imgs'}")  # file:///abs/path
    frames = [src.read() for _ in range(4)]
    assert [r.status for r in frames] == [ReadStatus.OK] * 3 + [ReadStatus.END]
    monkeypatch.chdir(tmp_path)
    assert open_source("file://imgs/1.png").read().frame.name == "1"  # type: ignore[union-attr]


@pytest.mark.slow  # loads the demo model first (seconds on a loaded 2-core host)
def test_stream_cli_csi_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "demo-lite-unet.onnx"
    monkeypatch.setattr(live, "gstreamer_available", lambda: True)
    monkeypatch.setattr(camera_uri, "gst_element_available", lambda *a: False)
    result = CliRunner().invoke(app, ["stream", str(demo), "--source", "csi://0", "--headless", "--quiet",
                                      "--camera-fps", "30"])
    assert result.exit_code == 2 and result.output.startswith("error: csi://0 needs the GStreamer element")
    assert result.output.count("\n") == 1


@pytest.mark.skipif(not live.gstreamer_available(), reason="this OpenCV has no GStreamer (the JetPack-like "
                    "CI venv runs it with Debian's python3-opencv)")
def test_real_gstreamer_source_frames() -> None:
    pipeline = ("videotestsrc num-buffers=40 ! video/x-raw,width=64,height=48,framerate=30/1 ! "
                "videoconvert ! video/x-raw,format=BGR ! appsink")
    src = open_source(pipeline, SourceOptions(reconnect_s=0.0))
    try:
        got = [src.read(timeout_s=5.0) for _ in range(3)]
    finally:
        src.close()
    ok = [r.frame for r in got if r.status is ReadStatus.OK and r.frame is not None]
    assert ok and ok[0].image_bgr.shape == (48, 64, 3)
