"""Q/DQ insertion with onnxruntime.quantization from known ranges, and a structure check.

The contract checked by :func:`check_qdq` (docs/design.md §6): every QuantizeLinear/DequantizeLinear
is int8 with zero-point 0; weight DequantizeLinear nodes are per output channel (1-D scale of the
channel count, ``axis`` written explicitly and naming the consumer's output-channel axis: 0 for
Conv weights, 1 for ConvTranspose); activation scales are per tensor (scalars); no bias is quantized
(no int32 DequantizeLinear); no unpool node reads a dequantized tensor.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.calib.graph import copy_value_info, float_inputs_for

from edgeseg.errors import CalibrationError
from edgeseg.unpool.onnx_graph import native_unpool_node_names, plugin_nodes

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
FULL_OPS = WEIGHTED_OPS + ("MaxPool", "Add", "Concat", "Resize", "Relu", "Clip", "AveragePool",
                           "GlobalAveragePool", "Sigmoid")


def _extra_options(placement: str) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,   # zero-point 0 for activations (TensorRT: symmetric only)
        "WeightSymmetric": True,
        "QuantizeBias": False,         # TensorRT adds the FP32 bias itself
        "QDQKeepRemovableActivations": True,
    }
    if placement == "tensorrt":
        extra["OpTypesToExcludeOutputQuantization"] = list(WEIGHTED_OPS)
    return extra


def insert_qdq(model: Any, typed: Any, ranges_file: Path, method: Any, placement: str,
               keep_float: tuple[str, ...] = ()) -> Any:
    """Quantize ``model`` (ModelProto, plugin or native unpool) with the cached ``ranges_file``.

    ``typed``: the native-equivalent graph (for tensor types); ``method``: the ORT
    CalibrationMethod the ranges came from; ``keep_float``: node names left out of INT8 (they read
    float tensors). Returns the Q/DQ ModelProto (checked).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    _require_cache_support(quantize_static)
    model = _clone(model)
    copy_value_info(model, typed)
    unpool = native_unpool_node_names(model) | {n.name for n in plugin_nodes(model)}
    missing = sorted(set(keep_float) - {n.name for n in model.graph.node})
    if missing:
        raise CalibrationError(f"--keep-float {missing[0]!r} is not a node of the model; use a layer name "
                               "from edgeseg int8-sensitivity")
    unpool |= set(keep_float)
    ops = list(WEIGHTED_OPS if placement == "tensorrt" else FULL_OPS)
    with tempfile.TemporaryDirectory(prefix="edgeseg-qdq-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, src)
        with _quiet_root_logger():
            quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                            per_channel=True, reduce_range=False, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=sorted(unpool),
                            calibrate_method=method, extra_options=_extra_options(placement),
                            calibration_cache_path=str(ranges_file))
        out = onnx.load(str(dst))
    float_inputs_for(out, unpool)
    _strip_inferred(out, model)
    write_axes(out)
    check_qdq(out)
    return out


def write_axes(model: Any) -> int:
    """Write ``axis`` on every per-channel (1-D scale) Q/DQ node that leaves it to the default.

    ONNX's default is 1, which is what onnxruntime computed with; TensorRT 10.3's DequantizeLinear
    importer takes a missing axis as 0 for per-channel scales. Writing it removes the ambiguity.
    Returns how many nodes got one.
    """
    from onnx import helper, numpy_helper

    one_d = {t.name for t in model.graph.initializer if len(t.dims) == 1}
    shapes = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer if t.name in one_d}
    added = 0
    for node in model.graph.node:
        if (node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 1
                and node.input[1] in shapes and _axis(node) is None):
            node.attribute.append(helper.make_attribute("axis", 1))  # ONNX's default, made explicit
            added += 1
    return added


def _require_cache_support(quantize_static: Any) -> None:
    """The ranges reach the quantizer through ``calibration_cache_path`` (onnxruntime 1.32 tested)."""
    import inspect

    import onnxruntime

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        raise CalibrationError(f"onnxruntime {onnxruntime.__version__} cannot take precomputed ranges "
                               "(quantize_static has no calibration_cache_path); upgrade onnxruntime "
                               "(1.32 is tested): pip install -U onnxruntime")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger at WARNING; keep errors only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _clone(model: Any) -> Any:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _strip_inferred(out: Any, original: Any) -> None:
    """Drop value_info the quantizer's shape inference added (keeps the file lean and standard)."""
    keep = {v.name for v in original.graph.value_info if v.name}
    vis = [v for v in out.graph.value_info if v.name in keep]
    del out.graph.value_info[:]
    out.graph.value_info.extend(vis)


def check_qdq(model: Any) -> dict[str, int]:
    """Verify the Q/DQ contract (module docstring); return counts. CalibrationError if broken."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    problems: list[str] = []
    counts = {"weight_dq_per_channel": 0, "activation_q": 0, "activation_dq": 0}
    consumers = {i: n for n in model.graph.node for i in n.input}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
            problems.append(f"{node.name}: zero point {None if zp is None else zp.dtype} not int8 0")
        src = inits.get(node.input[0])
        if node.op_type == "DequantizeLinear" and src is not None:
            if src.dtype == np.int32:
                problems.append(f"{node.name}: bias is quantized")
            elif src.ndim > 1 and (problem := _per_channel_problem(node, src, scale, consumers)):
                problems.append(f"{node.name}: {problem}")
            else:
                counts["weight_dq_per_channel"] += 1
            continue
        if scale is None or scale.ndim != 0:
            problems.append(f"{node.name}: activation scale is not per tensor")
        counts["activation_q" if node.op_type == "QuantizeLinear" else "activation_dq"] += 1
    problems += _unpool_reads_dq(model)
    if problems:
        raise CalibrationError(f"quantized model breaks the Q/DQ contract: {'; '.join(problems[:3])}; "
                               "this is an edgeseg bug, please report it with the model")
    return counts


def _axis(node: Any) -> int | None:
    """The node's ``axis`` attribute, None when it is not written."""
    return next((a.i for a in node.attribute if a.name == "axis"), None)


# Output-channel axis of the weight each op reads through its second input.
_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}


def _per_channel_problem(node: Any, weight: np.ndarray, scale: np.ndarray | None,
                         consumers: dict[str, Any]) -> str | None:
    """Why a weight DequantizeLinear is not per output channel with an explicit axis, or None."""
    axis = _axis(node)
    if scale is None or scale.ndim != 1:
        return "weight scale is not per output channel"
    if axis is None:
        return "per-channel axis is not written (ONNX reads a missing axis as 1, TensorRT 10.3 as 0)"
    axis %= weight.ndim
    if scale.size != weight.shape[axis]:
        return f"weight scale has {scale.size} values for axis {axis} of size {weight.shape[axis]}"
    user = consumers.get(node.output[0])
    if user is None or list(user.input[1:2]) != [node.output[0]]:
        return None  # not a weight input: no output-channel axis to compare with
    want = _CHANNEL_AXIS.get(user.op_type)
    if want is not None and axis != want:
        return f"per-channel axis {axis} is not the output-channel axis {want} of {user.op_type}"
    return None


def _unpool_reads_dq(model: Any) -> list[str]:
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    unpool = native_unpool_node_names(model) | {n.name for n in plugin_nodes(model)}
    return [f"unpool node {n.name} reads quantized {i}" for n in model.graph.node
            if n.name in unpool for i in n.input if i in dq_out]
