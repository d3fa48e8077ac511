"""FP16 conversion: FP32 I/O, plugin node kept FP32, accuracy, both unpool modes, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _calib_models import save_tiny
from edgeseg.calib.fp16 import convert_fp16, default_fp16_path
from edgeseg.calib.graph import plugin_nodes, plugin_to_native
from onnx import TensorProto

from edgeseg.card import read_card
from edgeseg.errors import CalibrationError


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_fp16_io_types_accuracy_and_card(tmp_path: Path, mode: str) -> None:
    src = save_tiny(tmp_path, mode)
    out, card = convert_fp16(src)
    assert out == default_fp16_path(src) == tmp_path / f"tiny.{mode}.fp16.onnx"
    half = onnx.load(str(out))
    onnx.checker.check_model(half)  # includes topological order
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    conv_w = [t for t in half.graph.initializer if t.name.endswith(".w")]
    assert conv_w and all(t.data_type == TensorProto.FLOAT16 for t in conv_w)
    if mode == "plugin":  # the plugin node reads and writes FP32 through casts
        (node,) = plugin_nodes(half)
        producers = {o: n for n in half.graph.node for o in n.output}
        assert all(producers[i].op_type == "Cast" for i in node.input)
        half = plugin_to_native(half)
    fp32 = onnx.load(str(src))
    fp32 = plugin_to_native(fp32) if mode == "plugin" else fp32
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    ref, got = _run(fp32, x), _run(half, x)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() / np.abs(ref).max() < 5e-3  # measured 4.8e-4
    assert np.mean(got.argmax(1) == ref.argmax(1)) > 0.99
    parent = read_card(src)
    assert card.precision == "fp16" and card.parent_sha256 == parent.file_sha256
    assert card.unpool_mode == mode and card.extra["fp16"]["keep_io_types"] is True


def test_fp16_bad_input(tmp_path: Path) -> None:
    src = save_tiny(tmp_path, "native")
    with pytest.raises(CalibrationError, match="new .onnx file"):
        convert_fp16(src, src)
    out, _ = convert_fp16(src)
    with pytest.raises(CalibrationError, match="needs an FP32 ONNX"):
        convert_fp16(out, tmp_path / "twice.onnx")
    assert not (tmp_path / "twice.onnx").exists()
