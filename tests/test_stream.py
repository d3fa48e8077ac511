"""The streaming runtime end to end: `edgeseg stream` on a video the test writes and on the
synthetic source, Ctrl-C finalization, a source lost mid-run, bad input; plus the stages the
loop is built from (preprocess, argmax, overlay, onnxruntime backend, report)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeseg.runtime import live
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.overlay import Overlay, OverlayOptions
from edgeseg.runtime.sinks import VideoSink
from edgeseg.runtime.sources import SourceOptions, open_source
from edgeseg.runtime.stages import ArgmaxLabels, Preprocessor
from edgeseg.runtime.stream import run_stream
from typer.testing import CliRunner

from edgeseg.card import ModelCard, card_path
from edgeseg.cli.main import app
from edgeseg.errors import BackendError, ConfigError, DataError
from edgeseg.io import sha256_file
from edgeseg.metrics import ConfusionMeter
from edgeseg.preprocess import preprocess

sys.path.insert(0, str(Path(__file__).parent))
from test_sources import ScriptedGrabber, write_video  # noqa: E402
from tinyseg import reference_logits, write_tiny_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def video_frames(path: Path) -> int:
    """Decode every frame (proves the file is complete and readable); return the count."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not a readable video"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def invoke(*args: str):
    return runner.invoke(app, ["stream", *map(str, args)])


# -- end to end ---------------------------------------------------------------------------------
def test_stream_video_file_with_masks(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(6)]
    clip = write_video(tmp_path / "clip.mp4", frames)
    (tmp_path / "gt").mkdir()
    for i in range(0, 6, 2):  # ground truth for every other frame only
        cv2.imwrite(str(tmp_path / "gt" / f"{i:06d}.png"), rng.integers(0, 5, (96, 128), dtype=np.uint8))
    out, stats, rep = tmp_path / "out.mp4", tmp_path / "stats.jsonl", tmp_path / "report.json"
    res = invoke(model, "--source", clip, "--masks", tmp_path / "gt", "--save", out, "--stats", stats,
                 "--report", rep, "--save-frames", tmp_path / "png", "--headless", "--quiet")
    assert res.exit_code == 0, res.output
    report = json.loads(rep.read_text())
    assert report["frames"] == 6 and report["stop_reason"].startswith("end:")
    assert report["metrics"]["frames"] == 3 and report["metrics"]["pixels"] == 3 * 48 * 64
    assert report["model"]["params"] == 5 * 3 + 5 and report["backend"]["name"] == "onnxruntime"
    assert set(report["stages_ms"]) == {"capture_wait", "preprocess", "inference", "postprocess",
                                        "overlay", "sinks"}
    assert video_frames(out) == 6
    lines = [json.loads(x) for x in stats.read_text().splitlines()]
    assert [x["index"] for x in lines] == list(range(6))
    assert ["miou" in x for x in lines] == [True, False] * 3
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert (tmp_path / "report.md").read_text().startswith("# Stream report")


def test_stream_synthetic_iou_matches_independent_scoring(tmp_path: Path) -> None:
    hw = (60, 80)
    model = write_tiny_onnx(tmp_path, input_hw=hw, seed=3)
    rep = tmp_path / "r.json"
    res = invoke(model, "--source", "synthetic", "--max-frames", 8, "--report", rep, "--quiet")
    assert res.exit_code == 0, res.output
    report = json.loads(rep.read_text())
    assert report["frames"] == 8 and report["stop_reason"] == "--max-frames 8 reached"
    # score the same frames with the plain numpy reference path
    backend = open_backend(model)
    meter = ConfusionMeter(5)
    src = open_source("synthetic", SourceOptions(synthetic_hw=hw))
    for _ in range(8):
        frame = src.read().frame
        meter.update(backend.infer(preprocess(frame.image_bgr, backend.card))[0].argmax(0), frame.mask)
    confusion = np.array(report["metrics"]["confusion"])
    assert np.abs(confusion - meter.matrix).sum() <= 0.001 * meter.matrix.sum()  # blob vs numpy rounding
    assert report["metrics"]["miou"] == pytest.approx(meter.compute().miou, abs=1e-3)


def test_stream_inference_workers_give_the_same_frames_and_iou(tmp_path: Path) -> None:
    """--infer-workers 2 (two onnxruntime runs at once): the same frames, in order, the same
    per-frame and overall IoU as one worker; the report says how many ran."""
    model = REPO / "edgeseg" / "assets" / "demo-lite-unet.onnx"
    runs = {}
    for n in (1, 2):
        rep, stats = tmp_path / f"r{n}.json", tmp_path / f"s{n}.jsonl"
        res = invoke(model, "--source", "synthetic", "--max-frames", 16, "--threads", 1, "--infer-workers", n,
                     "--report", rep, "--stats", stats, "--quiet")
        assert res.exit_code == 0, res.output
        lines = [json.loads(x) for x in stats.read_text().splitlines()]
        runs[n] = (json.loads(rep.read_text()), [(x["index"], x["miou"]) for x in lines])
    assert runs[1][1] == runs[2][1] and [i for i, _ in runs[2][1]] == list(range(16))
    assert runs[2][0]["metrics"]["confusion"] == runs[1][0]["metrics"]["confusion"]
    assert runs[2][0]["infer_workers"] == 2 and runs[1][0]["infer_workers"] == 1
    assert 0.0 <= runs[2][0]["outside_inference_share"] <= 1.0
    res = invoke(model, "--source", "synthetic", "--max-frames", 4, "--infer-workers", 2, "--no-pipeline")
    assert res.exit_code == 2 and "drop --no-pipeline or --infer-workers" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_table_printed_and_duration_limit(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    res = invoke(model, "--source", "synthetic", "--duration", "0.5", "--report", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    for text in ("end-to-end FPS", "time outside inference", "per-stage latency", "IoU per class"):
        assert text in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["stop_reason"] == "--duration 0.5 s reached" and 0.5 <= report["wall_s"] < 5


@pytest.mark.slow  # a stream subprocess run until SIGINT (~5 s on 2 cores)
def test_sigint_finalizes_video_and_report(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    out, stats, rep = tmp_path / "out.mp4", tmp_path / "s.jsonl", tmp_path / "r.json"
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "stream", str(model), "--source", "synthetic",
           "--save", str(out), "--stats", str(stats), "--report", str(rep), "--headless", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if stats.exists() and len(stats.read_text().splitlines()) >= 10:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output  # 128 + SIGINT, like train (edgeseg.errors)
    report = json.loads(rep.read_text())
    assert report["stop_reason"] == "interrupted (SIGINT)"
    assert report["frames"] >= 10
    assert video_frames(out) == report["frames"] == len(stats.read_text().splitlines())
    assert not list(tmp_path.glob(".*partial*"))


def _camera_server(port: int = 0) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "mjpeg_server.py"), str(port)],
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        lines = len(path.read_text().splitlines()) if path.exists() else 0
        if lines >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"only {path.read_text().count(chr(10)) if path.exists() else 0} of {n} frames")


@pytest.mark.slow  # waits out reconnect back-offs (~14 s on 2 cores)
def test_network_camera_drops_reconnects_then_gives_up(tmp_path: Path) -> None:
    """A real MJPEG-over-HTTP camera (local process) goes away mid-run and comes back: the stream
    reconnects; when it goes away for good the run stops cleanly with everything written."""
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    server, port = _camera_server()
    out, stats, rep = tmp_path / "out.mp4", tmp_path / "s.jsonl", tmp_path / "r.json"
    url = f"http://viewer:s3cret@127.0.0.1:{port}/stream.mjpg"
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "stream", str(model), "--source", url,
           "--save", str(out), "--stats", str(stats), "--report", str(rep), "--reconnect", "8",
           "--headless", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        before = _wait_lines(stats, 10, proc)
        server.kill()
        server.wait()
        server, _ = _camera_server(port)  # back on the same address
        _wait_lines(stats, before + 10, proc)
        server.kill()
        server.wait()
        output = proc.communicate(timeout=60)[0]
    finally:
        server.kill()
        proc.kill()
    assert proc.returncode == 1, output
    report = json.loads(rep.read_text())
    assert report["reconnects"] >= 1 and report["source"]["live"]
    assert report["stop_reason"].startswith("error:") and "not back within 8 s" in report["stop_reason"]
    assert video_frames(out) == report["frames"] == len(stats.read_text().splitlines())
    for text in (output, rep.read_text(), (tmp_path / "r.md").read_text()):
        assert "s3cret" not in text
    assert "viewer:***@127.0.0.1" in report["source"]["description"]


def test_source_lost_mid_run_stops_cleanly(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(5)]

    def opener():
        from edgeseg.errors import SourceError

        raise SourceError("unplugged")

    grabber = ScriptedGrabber(frames + [None], period=0.005)
    src = live.LiveSource(grabber, opener, "camera 0",
                          SourceOptions(timeout_s=0.2, reconnect_s=0.5, backoff_s=(0.05, 0.1)))
    sink = VideoSink(tmp_path / "out.mp4", 10.0)
    report = run_stream(open_backend(model), src, [sink])
    assert report.stop_reason.startswith("error:") and "not back within 0.5 s" in report.stop_reason
    assert 1 <= report.frames <= 5 and report.source["live"]
    assert video_frames(tmp_path / "out.mp4") == report.frames


def test_output_failing_mid_run_keeps_the_rest(tmp_path: Path) -> None:
    from edgeseg.errors import SourceError

    class DiskFull(VideoSink):
        def write(self, image_bgr, frame) -> None:
            if frame.index == 3:
                raise SourceError("disk full")

    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    good = VideoSink(tmp_path / "good.mp4", 10.0)
    src = open_source("synthetic", SourceOptions(synthetic_hw=(48, 64)))
    report = run_stream(open_backend(model), src, [good, DiskFull(tmp_path / "bad.mp4", 10.0)])
    assert report.stop_reason == "error: disk full" and report.frames == 3
    assert video_frames(tmp_path / "good.mp4") == 4  # the frame that failed elsewhere was written here


# -- bad input: one clear line each -------------------------------------------------------------
def _one_line_error(res, expect: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.output


def test_bad_inputs(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    _one_line_error(invoke(model, "--source", "webcam"), "unknown source 'webcam'")
    (tmp_path / "junk.avi").write_bytes(b"RIFF" + b"\x00" * 100)
    _one_line_error(invoke(model, "--source", tmp_path / "junk.avi"), "cannot read video")
    (tmp_path / "model.pt").write_bytes(b"\x80\x02")
    _one_line_error(invoke(tmp_path / "model.pt", "--source", "synthetic"), "unknown model file type '.pt'")
    bare = write_tiny_onnx(tmp_path, name="bare.onnx", card=False)
    _one_line_error(invoke(bare, "--source", "synthetic"), "model card")
    _one_line_error(invoke(model, "--source", "synthetic", "--window"), "a window was requested but")
    _one_line_error(invoke(model, "--source", "synthetic", "--threads", "2", "--device", "cpu"),
                    "--device does not apply to .onnx models")


def test_card_not_matching_model(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    write_tiny_onnx(tmp_path, input_hw=(48, 64), seed=9, card=False)  # same name, other weights
    _one_line_error(invoke(model, "--source", "synthetic"), "does not match")
    # a card whose hash matches but whose input size is not the file's
    card = json.loads(card_path(model).read_text())
    card.update(file_sha256=sha256_file(model), input_hw=[32, 32])
    card_path(model).write_text(json.dumps(card))
    _one_line_error(invoke(model, "--source", "synthetic"), "its card says (N, 3, 32, 32)")
    (tmp_path / "garbage.onnx").write_bytes(b"this is not onnx")
    card.update(input_hw=[48, 64], file_sha256=sha256_file(tmp_path / "garbage.onnx"))
    card_path(tmp_path / "garbage.onnx").write_text(json.dumps(card))
    _one_line_error(invoke(tmp_path / "garbage.onnx", "--source", "synthetic"), "not a readable ONNX file")


# -- the stages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocessor_matches_reference(order: str) -> None:
    card = ModelCard("x", {}, ("a", "b"), ((0, 0, 0), (9, 9, 9)), (36, 48), channel_order=order,
                     mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    rng = np.random.default_rng(0)
    pre = Preprocessor(card)
    for hw in ((36, 48), (100, 70)):
        frame = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        np.testing.assert_allclose(pre(frame), preprocess(frame, card), atol=2e-5)


def test_argmax_matches_numpy_with_ties() -> None:
    rng = np.random.default_rng(0)
    logits = rng.integers(-3, 3, (1, 7, 20, 30)).astype(np.float32)  # many exact ties
    argmax = ArgmaxLabels()
    first = argmax(logits)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, logits[0].argmax(0))
    other = rng.normal(size=(1, 7, 20, 30)).astype(np.float32)
    np.testing.assert_array_equal(argmax(other), other[0].argmax(0))
    np.testing.assert_array_equal(argmax(other[:, :1]), (other[0, 0] > 0).astype(np.uint8))


@pytest.mark.parametrize(("k", "ignore"), [(11, 11), (5, None), (2, None), (16, 3), (20, 19)])
def test_ground_truth_scorer_matches_confusion_matrix(k: int, ignore: int | None) -> None:
    from edgeseg.runtime.stages import GroundTruthScorer

    from edgeseg.metrics import confusion_matrix

    rng = np.random.default_rng(k)
    names = tuple(f"c{i}" for i in range(k))
    card = ModelCard("x", {}, names, ((0, 0, 0),) * k, (37, 53), ignore_index=ignore)
    scorer = GroundTruthScorer(card)
    total = np.zeros((k, k), np.int64)
    for _ in range(3):
        pred = rng.integers(0, k, (37, 53)).astype(np.uint8)
        target = rng.integers(0, k + (ignore is not None), (37, 53)).astype(np.uint8)
        if ignore is not None:
            target[target == k] = ignore
        expect = confusion_matrix(pred, target, k, ignore)
        np.testing.assert_array_equal(scorer.update(pred, target), expect)
        total += expect
    np.testing.assert_array_equal(scorer.meter.matrix, total)
    binary = GroundTruthScorer(ModelCard("x", {}, ("bg", "fg"), ((0, 0, 0),) * 2, (4, 4)))
    np.testing.assert_array_equal(binary.update(np.eye(4, dtype=np.uint8), np.eye(4, dtype=np.uint8) * 255),
                                  [[12, 0], [0, 4]])
    with pytest.raises(DataError, match=r"30\]? outside the class range"):
        scorer.update(pred, np.full((37, 53), 30, np.uint8))


def test_overlay_colours_and_buffer_reuse() -> None:
    colors = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    ov = Overlay(("a", "b", "c"), colors, OverlayOptions(alpha=1.0, legend=False, hud=False))
    labels = np.array([[0, 1], [2, 0]], np.uint8).repeat(10, 0).repeat(10, 1)
    frame = np.zeros((40, 40, 3), np.uint8)
    out = ov.render(frame, labels)
    assert out.shape == (40, 40, 3)
    assert tuple(out[0, 39]) == (0, 255, 0) and tuple(out[39, 0]) == (255, 0, 0)  # BGR of green / blue
    assert ov.render(frame, labels) is out  # same buffer for the same sizes
    assert ov.render(np.zeros((30, 50, 3), np.uint8), labels) is not out
    full = Overlay(("a", "b", "c"), colors, OverlayOptions(alpha=0.4))
    img = full.render(np.full((240, 320, 3), 200, np.uint8), labels, ["FPS 10.0", "mIoU 50 %"])
    assert img.shape == (240, 320, 3) and img[:5, :5].mean() < 200  # HUD box darkened the corner
    tiny = full.render(np.zeros((12, 12, 3), np.uint8), labels, ["x"])  # legend does not fit: skipped
    assert tiny.shape == (12, 12, 3)


def test_ort_backend_infers_and_checks(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(24, 32), dynamic_batch=True, seed=5)
    backend = open_backend(model, threads=1)
    x = np.random.default_rng(0).normal(size=(2, 3, 24, 32)).astype(np.float32)
    np.testing.assert_allclose(backend.infer(x), reference_logits(x, 5, seed=5), rtol=1e-4, atol=1e-4)
    assert backend.describe()["threads"] == 1 and backend.describe()["device"] == "cpu"
    with pytest.raises(BackendError, match=r"expected \(N, 3, 24, 32\)"):
        backend.infer(x[:, :, :20])
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not available"):
        open_backend(model, provider="cuda")
    with pytest.raises(BackendError, match="did you mean 'tensorrt'"):
        open_backend(model, provider=["tensorrtt"])


def test_cli_module_is_light() -> None:
    code = ("import sys, edgeseg.cli.stream; "
            "print(all(m not in sys.modules for m in ('torch', 'onnxruntime', 'cv2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "True", out.stderr


# -- real exported models (torch builds them; the stream itself is the torch-free runtime) --------
@pytest.mark.parametrize(("arch", "unpool", "hw"), [("lite-unet", "native", (32, 48)),
                                                    ("segnet-basic", "plugin", (32, 32))])
def test_stream_exported_model_matches_torch(tmp_path: Path, arch: str, unpool: str, hw: tuple) -> None:
    torch = pytest.importorskip("torch")
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    from edgeseg.data.synthetic import SYNTHETIC_INFO
    from edgeseg.models import build_model
    from edgeseg.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model(arch, num_classes=5).eval()
    card = ModelCard(arch, {"num_classes": 5}, SYNTHETIC_INFO.class_names, SYNTHETIC_INFO.class_colors, hw,
                     unpool_mode="train" if unpool == "plugin" else "none")
    ckpt, _ = save_checkpoint(model, card, tmp_path / "ckpt")
    onnx_path, onnx_card = export_onnx(ckpt, tmp_path / "model.onnx", ExportOptions(
        unpool=unpool, verify_frames=1, random_inputs=1, threads=1))
    assert onnx_card.unpool_mode == ("plugin" if unpool == "plugin" else "none")
    stats = tmp_path / "s.jsonl"
    res = invoke(onnx_path, "--source", "synthetic", "--max-frames", 3, "--stats", stats,
                 "--save-frames", tmp_path / "png", "--alpha", 1.0, "--no-legend", "--no-hud", "--quiet")
    assert res.exit_code == 0, res.output
    # the overlay (alpha 1 = pure class colours) shows exactly torch's argmax on the same frames
    src = open_source("synthetic", SourceOptions(synthetic_hw=hw))
    palette = np.array([c[::-1] for c in SYNTHETIC_INFO.class_colors], np.uint8)
    for _ in range(3):
        frame = src.read().frame
        with torch.no_grad():
            labels = model(torch.from_numpy(preprocess(frame.image_bgr, card))).argmax(1)[0].numpy()
        shown = cv2.imread(str(tmp_path / "png" / f"{frame.name}.png"))
        assert (shown == palette[labels]).all(axis=2).mean() > 0.999


def test_plugin_option_only_for_engines(tmp_path):
    from edgeseg.runtime.backends import TrtOptions, backend_options

    engine = backend_options(Path("m.engine"), plugin=Path("lib.so"), threads=None)
    assert engine == TrtOptions(Path("lib.so"))
    with pytest.raises(ConfigError, match="--plugin does not apply to .onnx"):
        backend_options(Path("m.onnx"), plugin=Path("lib.so"))
