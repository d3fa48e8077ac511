"""Argmax and preprocessing inside the graph (edgeseg.export.deploy_graph, `edgeseg deploy`):
labels equal the host argmax, in-graph preprocessing matches edgeseg.preprocess, the runtime
runs deployment files, and tools that need logits refuse them with the flag to change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseg.export.deploy_graph import (
    DeployCheck,
    append_argmax,
    deploy_onnx,
    prepend_preprocess,
    preprocess_model,
)
from edgeseg.export.options import DeployOptions
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.overlay import OverlayOptions
from edgeseg.runtime.sinks import FramesSink
from edgeseg.runtime.sources import SourceOptions, open_source
from edgeseg.runtime.stages import ArgmaxLabels
from edgeseg.runtime.stream import StreamOptions, run_stream
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeseg.card import ModelCard, read_card
from edgeseg.cli.main import app
from edgeseg.errors import BackendError, ConfigError
from edgeseg.preprocess import preprocess

sys.path.insert(0, str(Path(__file__).parent))
from tinyseg import tiny_card, write_tiny_onnx  # noqa: E402

runner = CliRunner()


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def conv_model(k: int, hw: tuple[int, int], stride: int = 1, seed: int = 0) -> onnx.ModelProto:
    """(1,3,H,W) -> (1,K,H/stride,W/stride) logits from one 3x3 conv."""
    rng = np.random.default_rng(seed)
    h, w = hw
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                          strides=[stride, stride])],
        "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k, h // stride, w // stride])],
        initializer=[numpy_helper.from_array(rng.normal(size=(k, 3, 3, 3)).astype(np.float32), "w"),
                     numpy_helper.from_array(rng.normal(size=(k,)).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_argmax_in_graph_equals_host_argmax_on_100_frames() -> None:
    hw, k = (24, 32), 11
    model = conv_model(k, hw)
    labels_model, card = append_argmax(model, tiny_card(hw, k))
    assert card.output_kind == "labels" and labels_model.graph.output[0].name == "labels"
    host = ArgmaxLabels()
    rng = np.random.default_rng(1)
    for i in range(100):
        x = rng.normal(size=(1, 3, *hw)).astype(np.float32)
        if i % 2:  # integer inputs give exact ties between classes: the first maximum must win
            x = np.round(x)
        got = run(labels_model, x)
        assert got.dtype == np.uint8 and got.shape == (1, *hw)
        np.testing.assert_array_equal(got[0], host(run(model, x)))
    with pytest.raises(ConfigError, match="--no-argmax"):
        append_argmax(labels_model, card)


def test_argmax_upsamples_low_resolution_heads_and_binary_heads() -> None:
    hw = (24, 32)
    low = conv_model(5, hw, stride=4)
    labels_model, _ = append_argmax(low, tiny_card(hw, 5))
    x = np.random.default_rng(2).normal(size=(1, 3, *hw)).astype(np.float32)
    got = run(labels_model, x)[0]
    assert got.shape == hw  # labels at the input size, not the head's 6x8
    logits = run(low, x)[0]
    up = np.stack([cv2.resize(c, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for c in logits])
    assert (got == up.argmax(0)).mean() > 0.99  # bilinear (half-pixel) upsampling, then argmax
    binary, _ = append_argmax(conv_model(1, hw), tiny_card(hw, 2).replace(class_names=("a", "b")))
    np.testing.assert_array_equal(run(binary, x)[0], (run(conv_model(1, hw), x)[0, 0] > 0).astype(np.uint8))


@pytest.mark.parametrize(("order", "frame_hw"), [("RGB", (24, 32)), ("BGR", (24, 32)), ("RGB", (60, 90)),
                                                 ("BGR", (13, 17))])
def test_preprocessing_in_graph_matches_host(order: str, frame_hw: tuple[int, int]) -> None:
    card = ModelCard("x", {}, ("a",), ((0, 0, 0),), (24, 32), channel_order=order, mean=(0.1, 0.5, 0.9),
                     std=(0.2, 0.3, 0.4))
    rng = np.random.default_rng(3)
    pre = preprocess_model(card, frame_hw)
    worst = 0.0
    for _ in range(5):
        frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
        diff = np.abs(run(pre, frame[None]) - preprocess(frame, card))
        worst = max(worst, float(diff.max()))
    if frame_hw == card.input_hw:
        assert worst < 1e-5  # no resize: the same arithmetic up to float rounding
    else:  # the host resizes in uint8 with 11-bit fixed-point weights, the graph in float
        assert worst <= 1.0 / (255 * min(card.std))  # at most one grey level


@pytest.mark.slow
def test_deploy_file_runs_in_stream_eval_and_refuses_float_input(tmp_path: Path) -> None:
    hw = (48, 64)
    logits_path = write_tiny_onnx(tmp_path, input_hw=hw, seed=4)
    path, card = deploy_onnx(logits_path, tmp_path / "tiny.deploy.onnx",
                             DeployOptions(argmax=True, frame_hw=hw))
    assert (card.output_kind, card.input_kind, card.frame_hw) == ("labels", "bgr-uint8", hw)
    assert card.parent_sha256 == read_card(logits_path).file_sha256
    facts = card.extra["deploy"]
    assert facts["label_agreement"] == 1.0 and facts["max_abs_input_diff"] < 1e-5
    assert DeployCheck.from_json(facts).to_json() == facts  # the typed record keeps the JSON keys
    backend = open_backend(path, threads=1)
    with pytest.raises(BackendError, match="made with --frame-size 48x64"):
        backend.infer(np.zeros((1, 3, *hw), np.float32))
    # the overlays of the deployment file and of the logits file are the same on the same frames
    shown, opts = {}, StreamOptions(max_frames=4, overlay=OverlayOptions(alpha=1.0, legend=False, hud=False))
    for name, model in (("deploy", path), ("logits", logits_path)):
        source = open_source("synthetic", SourceOptions(synthetic_hw=hw))
        run_stream(open_backend(model, threads=1), source, [FramesSink(tmp_path / name)], opts)
        shown[name] = [cv2.imread(str(p)) for p in sorted((tmp_path / name).glob("*.png"))]
    assert len(shown["deploy"]) == 4
    for a, b in zip(shown["deploy"], shown["logits"], strict=True):
        np.testing.assert_array_equal(a, b)
    from edgeseg.runtime.evaluate import evaluate

    scores = [evaluate(m, "synthetic", num=3, backend_options={"threads": 1}).metrics.miou
              for m in (path, logits_path)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-3)


def _one_line(res, expect: str) -> None:
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], \
        res.output


def test_cli_deploy_and_tools_that_need_logits(tmp_path: Path) -> None:
    logits_path = write_tiny_onnx(tmp_path, input_hw=(24, 32))
    out = tmp_path / "tiny.labels.onnx"
    res = runner.invoke(app, ["deploy", str(logits_path), "-o", str(out)])
    assert res.exit_code == 0 and "100.000 %" in res.output, res.output
    assert json.loads((tmp_path / "tiny.labels.onnx.json").read_text())["output_kind"] == "labels"
    _one_line(runner.invoke(app, ["deploy", str(out), "-o", str(tmp_path / "again.onnx")]), "--no-argmax")
    _one_line(runner.invoke(app, ["deploy", str(logits_path), "-o", str(logits_path)]), "is the input file")
    _one_line(runner.invoke(app, ["deploy", str(logits_path), "-o", str(tmp_path / "x.onnx"), "--no-argmax"]),
              "nothing to do")
    _one_line(runner.invoke(app, ["convert-fp16", str(out), "-o", str(tmp_path / "f.onnx")]),
              "made with --argmax); convert-fp16 needs the logits file")
    _one_line(runner.invoke(app, ["int8-sensitivity", str(logits_path), str(out), "--data", "synthetic",
                                  "-o", str(tmp_path / "s")]), "int8-sensitivity needs the logits file")
    framed, _ = deploy_onnx(logits_path, tmp_path / "tiny.frame.onnx",
                            DeployOptions(argmax=False, frame_hw=(30, 40)))
    _one_line(runner.invoke(app, ["precision-report", str(logits_path), str(framed), "--data", "synthetic",
                                  "-o", str(tmp_path / "p")]), "made with --frame-size); precision-report")


def test_prepend_keeps_a_dynamic_batch(tmp_path: Path) -> None:
    path = write_tiny_onnx(tmp_path, input_hw=(12, 16), dynamic_batch=True)
    model, card = prepend_preprocess(onnx.load(str(path)), read_card(path), (24, 32))
    model, card = append_argmax(model, card)
    frames = np.random.default_rng(5).integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
    assert run(model, frames).shape == (3, 12, 16)


@pytest.mark.slow
def test_export_with_argmax_and_frame_size_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    from edgeseg.data.synthetic import SYNTHETIC_INFO, SyntheticScenes
    from edgeseg.models import build_model
    from edgeseg.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    hw = (32, 48)
    model = build_model("lite-unet", num_classes=5).eval()
    card = ModelCard("lite-unet", {"num_classes": 5}, SYNTHETIC_INFO.class_names, SYNTHETIC_INFO.class_colors,
                     hw, unpool_mode="none")
    ckpt, _ = save_checkpoint(model, card, tmp_path / "ckpt")
    path, out_card = export_onnx(ckpt, tmp_path / "m.onnx", ExportOptions(
        verify_frames=1, random_inputs=1, threads=1, argmax=True, frame_hw=hw))
    assert (out_card.output_kind, out_card.input_kind) == ("labels", "bgr-uint8")
    assert out_card.extra["export"]["output_name"] == "labels" and out_card.extra["deploy"]["frames"] == 4
    frame = SyntheticScenes(hw, seed=1).frame(0).image_bgr
    with torch.no_grad():
        ref = model(torch.from_numpy(preprocess(frame, card))).argmax(1)[0].numpy()
    got = run(onnx.load(str(path)), frame[None])[0]
    assert (got == ref).mean() > 0.999
