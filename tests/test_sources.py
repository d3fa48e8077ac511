"""Video sources: spec parsing, files, folders, synthetic, and the live reader thread
(newest frame only, drops, corrupt frames, reconnect with backoff, giving up, timeouts)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeseg.runtime import live
from edgeseg.runtime.sources import ReadStatus, SourceOptions, open_source, redact

from edgeseg.errors import SourceError


def _frames(n: int, hw: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    return [np.full((*hw, 3), 20 * i % 256, np.uint8) for i in range(n)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def read_all(src, limit: int = 1000) -> tuple[list, object]:
    frames = []
    for _ in range(limit):
        r = src.read(timeout_s=5.0)
        if r.status is not ReadStatus.OK:
            return frames, r
        frames.append(r.frame)
    raise AssertionError("source did not end")


def test_redact_hides_passwords() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.2:554/stream") == "rtsp://admin:***@10.0.0.2:554/stream"
    text = redact("rtspsrc location=rtsp://u:pw@cam/1 user-pw=hunter2 ! appsink")
    assert "hunter2" not in text and "pw@" not in text and "u:***@cam" in text
    assert redact("rtsp://cam.local/stream") == "rtsp://cam.local/stream"


def test_image_folder_skips_corrupt_and_matches_masks(tmp_path: Path) -> None:
    images, masks = tmp_path / "img", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i, f in enumerate(_frames(3)):
        cv2.imwrite(str(images / f"a{i}.png"), f)
        cv2.imwrite(str(masks / f"a{i}.png"), np.full((48, 64), i, np.uint8))
    (images / "a1x.png").write_bytes(b"not a png")  # corrupt, sorts between a1 and a2
    src = open_source(str(images), SourceOptions(masks_dir=masks))
    frames, end = read_all(src)
    assert [f.name for f in frames] == ["a0", "a1", "a2"]
    assert [int(f.mask[0, 0]) for f in frames] == [0, 1, 2]
    assert end.status is ReadStatus.END
    assert src.counters().corrupt == 1 and src.counters().produced == 3


def test_glob_and_single_image(tmp_path: Path) -> None:
    for i, f in enumerate(_frames(4)):
        cv2.imwrite(str(tmp_path / f"f{i}.jpg"), f)
    frames, _ = read_all(open_source(str(tmp_path / "f[12].jpg")))
    assert [f.name for f in frames] == ["f1", "f2"]
    frames, _ = read_all(open_source(str(tmp_path / "f3.jpg")))
    assert len(frames) == 1 and frames[0].image_bgr.shape == (48, 64, 3)


def test_video_file_frame_by_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", _frames(7))
    src = open_source(str(path))
    assert not src.live and src.fps == pytest.approx(10.0)
    frames, end = read_all(src)
    src.close()
    assert [f.index for f in frames] == list(range(7))
    assert [f.name for f in frames][:2] == ["000000", "000001"]
    assert end.status is ReadStatus.END and src.counters().dropped == 0
    # decoded content follows the written frames (mp4v is lossy: compare grey levels loosely)
    assert abs(int(frames[3].image_bgr.mean()) - 60) < 6


def test_synthetic_file_like_has_masks_and_limit() -> None:
    src = open_source("synthetic", SourceOptions(synthetic_hw=(64, 80), synthetic_frames=3))
    frames, end = read_all(src)
    assert len(frames) == 3 and end.status is ReadStatus.END
    assert frames[0].image_bgr.shape == (64, 80, 3) and frames[0].mask.shape == (64, 80)
    again = open_source("synthetic", SourceOptions(synthetic_hw=(64, 80), synthetic_frames=3))
    assert np.array_equal(again.read().frame.image_bgr, frames[0].image_bgr)


@pytest.mark.parametrize(("spec", "expect"), [
    ("webcam", "unknown source 'webcam'"),
    ("ftp://u:pw@host/x", "URL scheme 'ftp'"),
    ("missing/clip.mp4", "does not exist"),
    ("nothing-*.png", "matched no images"),
    ("videotestsrc ! videoconvert", "no appsink"),
])
def test_bad_source_strings_one_line(spec: str, expect: str) -> None:
    with pytest.raises(SourceError) as e:
        open_source(spec)
    msg = str(e.value)
    assert expect in msg and "\n" not in msg and "pw@" not in msg


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 2048)
    (tmp_path / "broken.png").write_bytes(b"junk")
    for name, expect in (("broken.mp4", "cannot read video"), ("broken.png", "cannot read image")):
        with pytest.raises(SourceError, match=expect):
            open_source(str(tmp_path / name))


def test_gstreamer_without_support_is_explained() -> None:
    if live.gstreamer_available():
        pytest.skip("this OpenCV has GStreamer; the refusal path does not apply")
    with pytest.raises(SourceError, match="no GStreamer support"):
        open_source("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink")


def test_masks_must_be_label_maps(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    cv2.imwrite(str(tmp_path / "m" / "a0.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "a0.png"), np.zeros((8, 8, 3), np.uint8))
    src = open_source(str(tmp_path / "a0.png"), SourceOptions(masks_dir=tmp_path / "m"))
    with pytest.raises(SourceError, match="single-channel"):
        src.read()
    with pytest.raises(SourceError, match="does not exist"):
        open_source("synthetic", SourceOptions(masks_dir=tmp_path / "nope"))


class FakeCapture:
    """Stands in for cv2.VideoCapture: only indices in ``working`` open."""

    working: tuple[int, ...] = ()

    def __init__(self, index: int, *args: object) -> None:
        self.index = index

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.index in self.working

    def release(self) -> None:
        return None


def test_camera_that_does_not_open_lists_those_that_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live.cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(FakeCapture, "working", (2, 4))
    with pytest.raises(SourceError) as e:
        open_source("camera:0", SourceOptions(probe_cameras=6))
    assert str(e.value) == ("camera 0 did not open; cameras that open here: 2, 4 (probed 0-5); "
                            "pass --camera 2")
    monkeypatch.setattr(FakeCapture, "working", ())
    with pytest.raises(SourceError, match="no camera opens on this machine"):
        open_source("3")


class ScriptedGrabber:
    """Yields the scripted items: an array (frame), None (grab fails) or 'bad' (corrupt frame)."""

    finite = False

    def __init__(self, script: list, period: float = 0.0) -> None:
        self.script = list(script)
        self.period = period

    def grab(self):
        if self.period:
            time.sleep(self.period)
        if not self.script:
            return False, None, None
        item = self.script.pop(0)
        if item is None:
            return False, None, None
        if isinstance(item, str):
            return True, np.zeros((0,), np.uint8), None
        return True, item, None

    def release(self) -> None:
        return None


FAST = SourceOptions(timeout_s=1.0, reconnect_s=2.0, backoff_s=(0.01, 0.05))


def test_live_reconnects_after_a_drop_and_counts_corrupt() -> None:
    f = _frames(6)
    opens = {"n": 0}

    def opener():
        opens["n"] += 1
        if opens["n"] != 3:  # gone for two attempts, back once, then gone for good
            raise SourceError("gone")
        return ScriptedGrabber([f[3], f[4]], period=0.01)

    first = ScriptedGrabber([f[0], "bad", f[1], f[2], None], period=0.01)
    src = live.LiveSource(first, opener, "fake camera", FAST)
    got = []
    while True:
        r = src.read()
        if r.status is ReadStatus.OK:
            got.append(int(r.frame.image_bgr[0, 0, 0]))
        elif r.status is ReadStatus.ERROR:
            break
    src.close()
    n = src.counters()
    assert n.reconnects == 1 and n.corrupt == 1 and opens["n"] >= 4
    assert set(got) <= {0, 20, 40, 60, 80} and 80 in got  # frames after the reconnect arrived
    assert "not back within 2 s" in r.message


def test_live_keeps_newest_frame_only() -> None:
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(200)]
    grabber = ScriptedGrabber(frames, period=0.001)
    grabber.finite = True
    src = live.LiveSource(grabber, lambda: grabber, "fast producer", FAST)
    seen = []
    while (r := src.read()).status is ReadStatus.OK:
        seen.append(int(r.frame.image_bgr[0, 0, 0]))
        time.sleep(0.02)  # a consumer much slower than the producer
    assert r.status is ReadStatus.END
    n = src.counters()
    assert n.produced == 200 and n.dropped > 100
    assert len(seen) + n.dropped == 200  # every frame was either consumed or counted as dropped
    assert seen == sorted(seen) and seen[-1] == 199  # never stale, ends on the newest frame


def test_live_timeout_then_stall_error() -> None:
    gate = threading.Event()

    class Blocking(ScriptedGrabber):
        def grab(self):
            gate.wait(5.0)
            return False, None, None

    opts = SourceOptions(timeout_s=0.05, stall_s=0.3)
    src = live.LiveSource(Blocking([]), lambda: Blocking([]), "stuck", opts)
    assert src.read().status is ReadStatus.TIMEOUT
    time.sleep(0.35)
    r = src.read()
    gate.set()
    src.close()
    assert r.status is ReadStatus.ERROR and "no frame for" in r.message


def test_synthetic_live_paces_and_drops() -> None:
    opts = SourceOptions(synthetic_hw=(32, 48), synthetic_fps=200.0, synthetic_frames=40)
    start = time.perf_counter()
    src = open_source("synthetic", opts)
    assert src.live
    frames, end = read_all(src)
    assert end.status is ReadStatus.END
    assert time.perf_counter() - start >= 0.95 * 39 / 200  # paced: frame k is not produced before k / fps
    assert frames[0].mask is not None
    assert len(frames) + src.counters().dropped == 40
