"""Per-channel DequantizeLinear nodes carry their ``axis`` explicitly (calib/qdq.py).

ONNX reads a missing ``axis`` as 1; TensorRT 10.3's DequantizeLinear importer reads it as 0 for
per-channel scales. edgeseg writes the axis on every per-channel Q/DQ node and ``check_qdq``
refuses a weight DequantizeLinear whose axis is missing or is not the consumer's output-channel
axis (0 for Conv, 1 for ConvTranspose).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseg.calib.qdq import check_qdq, write_axes
from onnx import TensorProto, helper, numpy_helper

from edgeseg.errors import CalibrationError


def weight_dq_model(op: str, axis: int | None, out_ch: int = 4, in_ch: int = 3) -> onnx.ModelProto:
    """x (1,in,6,6) -> op(x, DQ(w int8, per-channel scale)).

    Weight shapes: Conv (out,in,3,3), ConvTranspose (in,out,3,3).
    """
    shape = (out_ch, in_ch, 3, 3) if op == "Conv" else (in_ch, out_ch, 3, 3)
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, shape).astype(np.int8)
    scale = np.linspace(0.01, 0.04, out_ch).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(scale, "w_scale"),
             numpy_helper.from_array(np.zeros(out_ch, np.int8), "w_zp")]
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], "w_dq", **attrs),
             helper.make_node(op, ["x", "w"], ["y"], "layer", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, in_ch, 6, 6))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("op", "axis"), [("Conv", 0), ("ConvTranspose", 1)])
def test_output_channel_axis_passes_and_runs(op: str, axis: int) -> None:
    m = weight_dq_model(op, axis)
    assert check_qdq(m)["weight_dq_per_channel"] == 1
    assert write_axes(m) == 0  # already explicit
    x = np.ones((1, 3, 6, 6), np.float32)
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert y.shape[1] == 4


def test_missing_axis_is_refused_then_written_as_onnx_default() -> None:
    m = weight_dq_model("ConvTranspose", None)  # ONNX default 1 = ConvTranspose's output channels
    with pytest.raises(CalibrationError, match="axis is not written"):
        check_qdq(m)
    assert write_axes(m) == 1
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
    assert [(a.name, a.i) for a in dq.attribute] == [("axis", 1)]
    assert check_qdq(m)["weight_dq_per_channel"] == 1


def test_axis_other_than_the_output_channels_is_refused() -> None:
    square = weight_dq_model("Conv", 1, out_ch=3, in_ch=3)  # scale size fits axis 1 too: still wrong
    with pytest.raises(CalibrationError, match="not the output-channel axis 0 of Conv"):
        check_qdq(square)
    with pytest.raises(CalibrationError, match="4 values for axis 1 of size 3"):
        check_qdq(weight_dq_model("Conv", 1))
