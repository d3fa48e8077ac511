"""FP16 conversion: FP32 I/O, plugin node kept FP32, accuracy, both unpool modes, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _calib_models import save_tiny
from edgeseg.calib.fp16 import convert_fp16, default_fp16_path
from onnx import TensorProto

from edgeseg.card import read_card
from edgeseg.errors import CalibrationError
from edgeseg.unpool.onnx_graph import plugin_nodes, plugin_to_native


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_fp16_io_types_accuracy_and_card(tmp_path: Path, mode: str) -> None:
    src = save_tiny(tmp_path, mode)
    out, card = convert_fp16(src, default_fp16_path(src))
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
    out, _ = convert_fp16(src, default_fp16_path(src))
    with pytest.raises(CalibrationError, match="needs an FP32 ONNX"):
        convert_fp16(out, tmp_path / "twice.onnx")
    assert not (tmp_path / "twice.onnx").exists()


def _resize_model(folder: Path) -> Path:
    """conv -> MaxPool -> Resize(scales from a Constant node, as torch exports it) -> conv, 3 -> 4 classes."""
    from onnx import helper, numpy_helper

    from edgeseg.card import ModelCard, write_card

    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 3, 3)).astype(np.float32), "w2")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales_value")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Constant", [], ["scales"], value=scales),
             helper.make_node("Resize", ["p1", "", "scales"], ["up"], mode="nearest"),
             helper.make_node("Conv", ["up", "w2"], ["logits"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                              [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 16, 16])],
                              [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "resize.onnx"
    onnx.save(model, str(path))
    write_card(path, ModelCard("tiny", {}, ("a", "b", "c", "d"), ((0, 0, 0),) * 4, (16, 16),
                               artifact="onnx", unpool_mode="none"))
    return path


def test_fp16_keeps_resize_scales_fp32_for_opencv(tmp_path: Path) -> None:
    """The converter feeds Resize scales through Cast(FP16 constant); OpenCV DNN refuses that (issue
    21). The scales must stay one FP32 Constant with the exact values, and OpenCV must run the file."""
    import cv2

    src = _resize_model(tmp_path)
    out, card = convert_fp16(src, default_fp16_path(src))
    half = onnx.load(str(out))
    onnx.checker.check_model(half, full_check=True)
    producers = {o: n for n in half.graph.node for o in n.output}
    (resize,) = [n for n in half.graph.node if n.op_type == "Resize"]
    scales = producers[resize.input[2]]
    assert scales.op_type == "Constant"
    value = onnx.numpy_helper.to_array(scales.attribute[0].t)
    assert value.dtype == np.float32 and value.tolist() == [1, 1, 2, 2]
    assert not [n for n in half.graph.node if n.op_type == "Cast" and n.input[0] not in ("input",)
                and producers.get(n.input[0]) is not None and producers[n.input[0]].op_type == "Constant"]
    assert card.extra["fp16"]["fp32_ops"] == [] and card.extra["fp16"]["fp32_constants"] == 1
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(out))
    net.setInput(x)
    got = net.forward()
    ref = _run(onnx.load(str(src)), x)
    assert np.mean(got.argmax(1) == ref.argmax(1)) > 0.99


@pytest.mark.parametrize(("mode", "ops"), [("native", []), ("plugin", ["MaxUnpool2x2"])])
def test_fp16_card_lists_only_ops_the_graph_has(tmp_path: Path, mode: str, ops: list[str]) -> None:
    src = save_tiny(tmp_path, mode)
    _, card = convert_fp16(src, default_fp16_path(src))
    assert card.extra["fp16"]["fp32_ops"] == ops
