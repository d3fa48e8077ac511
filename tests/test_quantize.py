"""INT8 Q/DQ calibration: structure, both unpool modes, accuracy, cache, bad input, precision report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _calib_models import HW, save_tiny, write_images
from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, make_calib_set
from edgeseg.calib.quantize import CalibrateOptions, calibrate
from onnx import numpy_helper
from typer.testing import CliRunner

from edgeseg.card import read_card
from edgeseg.cli.main import app
from edgeseg.errors import CalibrationError, DataError
from edgeseg.preprocess import preprocess
from edgeseg.unpool.onnx_graph import native_unpool_node_names, plugin_nodes, plugin_to_native


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny native + plugin models, 40 labelled images (20x24, one grey), a set, INT8 files (minmax)."""
    d = tmp_path_factory.mktemp("quant")
    data = write_images(d / "data", 40, masks=True)
    grey = cv2.cvtColor(cv2.imread(str(data / "images" / "im000.png")), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(data / "images" / "im000.png"), grey)  # other channel count: decoded to 3
    make_calib_set(data, Preprocess(HW), d / "set.json",
                   CalibSetOptions(num=40, strategy="random", split="all"))
    for mode in ("native", "plugin"):
        model = save_tiny(d, mode)
        calibrate(model, d / "set.json", d / f"tiny.{mode}.int8.onnx",
                  CalibrateOptions(method="minmax", cache_dir=d / "cache"))
    return d


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _inputs(work: Path, n: int = 8) -> list[np.ndarray]:
    card = read_card(work / "tiny.native.onnx")
    files = sorted((work / "data" / "images").glob("*.png"))[:n]
    return [preprocess(cv2.imread(str(p)), card) for p in files]


@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_qdq_structure(work: Path, mode: str) -> None:
    m = onnx.load(str(work / f"tiny.{mode}.int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    weight_dq = {n.output[0]: n for n in m.graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    act_q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert len(convs) == 3 and len(act_q) == 3  # one activation Q/DQ per conv input
    for conv in convs:
        dq = weight_dq[conv.input[1]]  # weights come through DequantizeLinear
        w, scale, zp = (inits[i] for i in dq.input)
        assert w.dtype == np.int8 and zp.dtype == np.int8 and not zp.any()
        assert scale.shape == (w.shape[0],)  # per output channel
        assert next(a.i for a in dq.attribute if a.name == "axis") == 0
        assert inits[conv.input[2]].dtype == np.float32  # bias stays FP32
        assert np.abs(w).max() == 127  # symmetric: the largest weight of a channel maps to +-127
    for q in act_q:
        assert inits[q.input[1]].ndim == 0 and inits[q.input[2]].dtype == np.int8 and inits[q.input[2]] == 0
    assert not any(t.dtype == np.int32 for t in inits.values())  # no quantized bias
    dq_out = {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    unpool = native_unpool_node_names(m) | {n.name for n in plugin_nodes(m)}
    assert unpool and not any(i in dq_out for n in m.graph.node if n.name in unpool for i in n.input)
    assert (len(plugin_nodes(m)) == 1) == (mode == "plugin")
    card = read_card(work / f"tiny.{mode}.int8.onnx")
    parent = read_card(work / f"tiny.{mode}.onnx")
    assert card.precision == "int8" and card.parent_sha256 == parent.file_sha256
    assert card.extra["method"] == "minmax" and len(card.extra["calibration_set_sha256"]) == 64
    assert card.unpool_mode == mode


def test_int8_close_to_fp32_and_modes_agree(work: Path) -> None:
    fp32 = onnx.load(str(work / "tiny.native.onnx"))
    native = onnx.load(str(work / "tiny.native.int8.onnx"))
    plugin_as_native = plugin_to_native(onnx.load(str(work / "tiny.plugin.int8.onnx")))
    errs, agree = [], []
    for x in _inputs(work):
        ref, q = _run(fp32, x), _run(native, x)
        np.testing.assert_array_equal(q, _run(plugin_as_native, x))  # same ranges, same graph
        errs.append(np.sqrt(np.mean((q - ref) ** 2) / np.mean(ref**2)))
        agree.append(np.mean(q.argmax(1) == ref.argmax(1)))
    assert np.mean(errs) < 0.2 and np.mean(agree) > 0.9  # measured 0.09 / 0.97 (random weights)


def test_plugin_int8_runs_with_the_custom_op(work: Path) -> None:
    ort_op = pytest.importorskip("edgeseg.unpool.ort_op")
    x = _inputs(work, 1)[0]
    sess = ort.InferenceSession(str(work / "tiny.plugin.int8.onnx"), ort_op.session_options(),
                                providers=["CPUExecutionProvider"])
    expected = _run(onnx.load(str(work / "tiny.native.int8.onnx")), x)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_cache_hit_and_key(work: Path) -> None:
    cfg = CalibrateOptions(method="minmax", cache_dir=work / "cache")
    _, card = calibrate(work / "tiny.native.onnx", work / "set.json", work / "again.int8.onnx", cfg)
    assert card.extra["calibration"]["cache_hit"] is True
    assert (work / "again.int8.onnx").read_bytes() == (work / "tiny.native.int8.onnx").read_bytes()
    files = sorted((work / "cache").glob("*.json"))
    assert len(files) == 2  # one per model file (native, plugin) for this set + method
    data = json.loads(files[0].read_text())
    assert {"model_sha256", "set_sha256", "method", "onnxruntime"} <= set(data["key"])
    # a cache whose key does not match (tampered) is ignored and rewritten
    for f in files:
        d = json.loads(f.read_text())
        d["key"]["set_sha256"] = "0" * 64
        f.write_text(json.dumps(d))
    _, card = calibrate(work / "tiny.native.onnx", work / "set.json", work / "again.int8.onnx", cfg)
    assert card.extra["calibration"]["cache_hit"] is False


def test_changed_set_file_no_output(work: Path, tmp_path: Path) -> None:
    data = write_images(tmp_path / "d", 10)
    make_calib_set(data, Preprocess(HW), tmp_path / "s.json", CalibSetOptions(num=10))
    cv2.imwrite(str(data / "im007.png"), np.zeros((20, 24, 3), np.uint8))
    out = tmp_path / "m.int8.onnx"
    with pytest.raises(DataError, match=r"im007\.png"):
        calibrate(work / "tiny.native.onnx", tmp_path / "s.json", out, CalibrateOptions(method="minmax"))
    assert not out.exists() and list(tmp_path.glob("*.onnx*")) == []


def test_too_few_images_and_preprocess_mismatch(work: Path, tmp_path: Path) -> None:
    data = write_images(tmp_path / "d", 10)
    make_calib_set(data, Preprocess(HW), tmp_path / "few.json", CalibSetOptions(num=10))
    out = tmp_path / "m.int8.onnx"
    with pytest.raises(CalibrationError, match="needs at least 32"):
        calibrate(work / "tiny.native.onnx", tmp_path / "few.json", out, CalibrateOptions(method="entropy"))
    make_calib_set(data, Preprocess((32, 32)), tmp_path / "big.json", CalibSetOptions(num=10))
    with pytest.raises(CalibrationError, match="differs from the model card"):
        calibrate(work / "tiny.native.onnx", tmp_path / "big.json", out, CalibrateOptions(method="minmax"))
    with pytest.raises(CalibrationError, match="FP32"):
        calibrate(work / "tiny.native.int8.onnx", work / "set.json", out, CalibrateOptions(method="minmax"))
    with pytest.raises(CalibrationError, match="unknown calibration method"):
        CalibrateOptions(method="kl")
    assert list(tmp_path.glob("*.onnx*")) == []


def test_cli_calibrate_and_precision_report(work: Path) -> None:
    runner = CliRunner()
    out = work / "cli.int8.onnx"
    r = runner.invoke(app, ["calibrate", str(work / "tiny.native.onnx"), "--set", str(work / "set.json"),
                            "--method", "percentile", "--cache-dir", str(work / "cache"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert read_card(out).extra["method"] == "percentile"
    r = runner.invoke(app, ["convert-fp16", str(work / "tiny.native.onnx")])
    assert r.exit_code == 0, r.output
    stem = work / "report"
    r = runner.invoke(app, ["precision-report", str(work / "tiny.native.onnx"),
                            str(work / "tiny.native.fp16.onnx"), str(out), "--data", str(work / "data"),
                            "--split", "all", "-o", str(stem)])
    assert r.exit_code == 0, r.output
    rep = json.loads((work / "report.json").read_text())
    labels = [m["label"] for m in rep["models"]]
    assert labels == ["FP32", "FP16", "INT8 (percentile)"] and rep["images"] == 40
    fp32, fp16, int8 = rep["models"]
    assert fp32["miou_change_points"] == 0 and fp32["argmax_disagreement_vs_reference"] == 0
    assert 0 <= fp16["argmax_disagreement_vs_reference"] < 0.01
    assert 0 < int8["argmax_disagreement_vs_reference"] < 0.1
    assert "INT8 (percentile)" in (work / "report.md").read_text()
    r = runner.invoke(app, ["calibrate", str(work / "tiny.native.onnx"), "--set", str(work / "nope.json")])
    assert r.exit_code == 2 and "cannot read calibration set" in r.output


def test_keep_float_and_sensitivity(work: Path) -> None:
    from edgeseg.calib.sensitivity import (
        SensitivityOptions,
        float_layer_variant,
        layer_sensitivity,
        quantized_layers,
    )

    out = work / "keep.int8.onnx"
    _, card = calibrate(work / "tiny.native.onnx", work / "set.json", out,
                        CalibrateOptions(method="minmax", cache_dir=work / "cache", keep_float=("c2",)))
    m = onnx.load(str(out))
    assert [n.name for n in quantized_layers(m)] == ["c1", "logits"]
    assert card.extra["calibration"]["keep_float"] == ["c2"]
    with pytest.raises(CalibrationError, match="not a node"):
        calibrate(work / "tiny.native.onnx", work / "set.json", out,
                  CalibrateOptions(method="minmax", cache_dir=work / "cache", keep_float=("nope",)))
    fp32, q = onnx.load(str(work / "tiny.native.onnx")), onnx.load(str(work / "tiny.native.int8.onnx"))
    variant = float_layer_variant(q, fp32, "c1")
    assert [n.name for n in quantized_layers(variant)] == ["c2", "logits"]
    onnx.checker.check_model(variant)
    base, layers = layer_sensitivity(work / "tiny.native.onnx", work / "tiny.native.int8.onnx",
                                     work / "data", SensitivityOptions(split="all", num=4))
    assert {r.layer for r in layers} == {"c1", "c2", "logits"} and base > 0
    assert layers[0].reduction >= layers[-1].reduction
    assert all(r.disagreement == pytest.approx(base - r.reduction) for r in layers)
    r = CliRunner().invoke(app, ["int8-sensitivity", str(work / "tiny.native.onnx"),
                                 str(work / "tiny.native.int8.onnx"), "--data", str(work / "data"),
                                 "--split", "all", "--num", "4", "--top", "2", "-o", str(work / "sens")])
    assert r.exit_code == 0, r.output
    rep = json.loads((work / "sens.json").read_text())
    assert set(rep) == {"model", "int8", "data", "split", "images", "int8_disagreement", "layers"}
    assert rep["images"] == 4 and rep["split"] == "all" and rep["int8_disagreement"] == pytest.approx(base)
    assert [x["layer"] for x in rep["layers"]] == [x.layer for x in layers]
    assert (work / "sens.md").read_text().count("\n| ") == 2 + 1  # header row + top 2 layers


def test_exported_segnet_both_modes(tmp_path: Path) -> None:
    """Real `edgeseg export` graphs (random-init segnet-basic, 32x32): unpool found, modes agree."""
    pytest.importorskip("torch")
    export = pytest.importorskip("edgeseg.export.onnx_export")
    from edgeseg.card import ModelCard
    from edgeseg.models import build_model
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.unpool.onnx_graph import native_unpool_groups

    names = ("a", "b", "c")
    colors = ((0, 0, 0), (9, 9, 9), (99, 99, 99))
    card = ModelCard("segnet-basic", {"num_classes": 3}, names, colors, (32, 32), artifact="checkpoint",
                     unpool_mode="train")
    save_checkpoint(build_model("segnet-basic", num_classes=3), card, tmp_path / "m.safetensors")
    data = write_images(tmp_path / "d", 8, hw=(40, 40))
    make_calib_set(data, Preprocess((32, 32)), tmp_path / "s.json", CalibSetOptions(num=8))
    outs = {}
    for mode in ("native", "plugin"):
        path, _ = export.export_onnx(tmp_path / "m.safetensors", tmp_path / f"m.{mode}.onnx",
                                     export.ExportOptions(unpool=mode))
        q, qcard = calibrate(path, tmp_path / "s.json", tmp_path / f"m.{mode}.int8.onnx",
                             CalibrateOptions(method="minmax", cache_dir=tmp_path / "cache"))
        outs[mode] = onnx.load(str(q))
        assert qcard.extra["calibration"]["weight_dq_per_channel"] == 9  # every conv of segnet-basic
    assert len(native_unpool_groups(onnx.load(str(tmp_path / "m.native.onnx")))) == 4
    assert len(plugin_nodes(outs["plugin"])) == 4
    x = preprocess(cv2.imread(str(data / "im001.png")), read_card(tmp_path / "m.native.onnx"))
    a, b = _run(outs["native"], x), _run(plugin_to_native(outs["plugin"]), x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_unpool_output_takes_y_range(mode: str) -> None:
    from _calib_models import tiny_unpool_model
    from edgeseg.calib.quantize import with_unpool_ranges

    from edgeseg.unpool.onnx_graph import unpool_boundaries

    model = tiny_unpool_model(mode)
    assert unpool_boundaries(model) == [("r1", "r2", "u1")]
    # a histogram method's range for the zero-dominated unpool output (measured: 1.3 vs 24.0)
    ranges = with_unpool_ranges(model, {"r1": (0.0, 9.9), "r2": (0.0, 24.0), "u1": (0.0, 1.3)})
    assert ranges["u1"] == (0.0, 24.0) and ranges["r1"] == (0.0, 9.9)
