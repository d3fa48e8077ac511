"""FP16 ONNX with FP32 inputs/outputs: ``edgeseg convert-fp16 model.onnx [-o model.fp16.onnx]``.

TensorRT 11 builds strongly typed networks, so FP16 means an FP16 ONNX file (docs/design.md §6). The
conversion uses onnxruntime's maintained copy of the onnxconverter-common float16 converter
(``onnxruntime.transformers.float16``, shipped in the onnxruntime wheel: no extra dependency):

* ``keep_io_types=True``: the graph input and the logits stay float32, with Cast nodes inside,
  so every caller (runtime, eval, TensorRT bindings) feeds and reads float32 as before;
* the unpool **plugin node is blocked** (kept in float32 with casts around it): its onnxruntime
  kernel and the TensorRT plugin's declared I/O are float32. The native unpool subgraph is
  converted like the rest; its ArgMax compares the same fp16 values either way.
* initializers outside the float16 range are clamped by the converter (to +-65504 / 5.96e-8);
  the number of weights that changed this way is recorded in the card.
* inputs that must stay float32 (``Resize`` scales: the converter's ``ALWAYS_FLOAT_INPUTS``) are
  kept as **FP32 constants** holding the FP32 file's exact values. The converter would feed them
  through a ``Cast`` of an FP16 constant, which OpenCV DNN's Resize refuses (it takes scales
  from constants only) and which rounds the scales to FP16 first.

The card's ``extra["fp16"]["fp32_ops"]`` lists the op types of this graph that stay float32
(the plugin node, the converter's blocked ops), ``fp32_constants`` how many constants were kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.card import ModelCard, read_card, require_logits, write_card
from edgeseg.errors import CalibrationError
from edgeseg.io import atomic_path, load_onnx

FP16_MAX = 65504.0


def default_fp16_path(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx``."""
    return model_path.with_name(model_path.name.removesuffix(".onnx") + ".fp16.onnx")


def _out_of_range_weights(model: Any) -> int:
    from onnx import TensorProto, numpy_helper

    count = 0
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            a = np.abs(numpy_helper.to_array(t))
            count += int(((a > FP16_MAX) | ((a > 0) & (a < 5.96e-8))).sum())
    return count


def _block_list() -> list[str]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    from edgeseg.unpool import OP_NAME

    return [*DEFAULT_OP_BLOCK_LIST, OP_NAME]


def fp32_ops(model: Any) -> list[str]:
    """Op types of ``model`` that the conversion keeps in float32 (sorted; empty for most graphs)."""
    blocked = set(_block_list())
    return sorted({n.op_type for n in model.graph.node if n.op_type in blocked})


def to_fp16(model: Any) -> Any:
    """FP32 ModelProto -> FP16 ModelProto with FP32 I/O, the plugin node kept FP32 and FP32-only
    inputs (Resize scales) as FP32 constants (:func:`keep_fp32_constants`)."""
    return _to_fp16(model)[0]


def _to_fp16(model: Any) -> tuple[Any, int]:
    """:func:`to_fp16` and the number of constants kept in FP32."""
    from edgeseg.calib.graph import copy_value_info, topological_sort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32 = _clone(model)
    copy_value_info(fp32)
    half = convert_float_to_float16(_clone(fp32), keep_io_types=True, op_block_list=_block_list())
    kept = keep_fp32_constants(half, fp32)
    topological_sort(half)
    return half, kept


def _constants(model: Any) -> dict[str, Any]:
    """Tensor name -> TensorProto of every initializer and Constant node (``value`` form)."""
    consts = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and len(n.output) == 1:
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = a.t
    return consts


def keep_fp32_constants(half: Any, fp32: Any) -> int:
    """Replace every ``Cast(to=float32)`` of a constant in ``half`` by an FP32 Constant node with
    the value of the same constant in ``fp32`` (the original model); drop constants no longer
    used. In place; returns how many casts were replaced."""
    from onnx import TensorProto, helper, numpy_helper

    consts, originals = _constants(half), _constants(fp32)
    outputs = {o.name for o in half.graph.output}
    nodes, folded = [], 0
    for n in half.graph.node:
        to = next((a.i for a in n.attribute if a.name == "to"), None)
        if n.op_type != "Cast" or to != TensorProto.FLOAT or n.input[0] not in consts or \
                n.output[0] in outputs:
            nodes.append(n)
            continue
        src = originals.get(n.input[0])
        if src is None or src.data_type != TensorProto.FLOAT:  # not in the original: widen the FP16 value
            src = numpy_helper.from_array(numpy_helper.to_array(consts[n.input[0]]).astype(np.float32))
        value = numpy_helper.from_array(numpy_helper.to_array(src), n.output[0])
        nodes.append(helper.make_node("Constant", [], [n.output[0]], f"{n.name}_fp32", value=value))
        folded += 1
    used = {i for n in nodes for i in n.input} | outputs
    nodes = [n for n in nodes if n.op_type != "Constant" or any(o in used for o in n.output)]
    del half.graph.node[:]
    half.graph.node.extend(nodes)
    keep = [t for t in half.graph.initializer if t.name in used]
    del half.graph.initializer[:]
    half.graph.initializer.extend(keep)
    return folded


def _clone(model: Any) -> Any:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def convert_fp16(model_path: Path, out: Path) -> tuple[Path, ModelCard]:
    """Write the FP16 version of an FP32 ONNX file (+ card) to ``out`` (usually
    :func:`default_fp16_path`); returns (path, card). The conversion has no settings, so this stage
    takes no options object.

    Raises CalibrationError for a non-FP32 input or an output path equal to the input.
    """
    import onnx

    model_path, out = Path(model_path), Path(out)
    card = read_card(model_path)
    require_logits(card, model_path, "convert-fp16")
    if card.artifact != "onnx" or card.precision != "fp32":
        raise CalibrationError(f"convert-fp16 needs an FP32 ONNX model; {model_path} is {card.artifact} "
                               f"{card.precision}; convert the FP32 file from edgeseg export")
    if out.resolve() == model_path.resolve() or out.suffix != ".onnx":
        raise CalibrationError(f"output {out} must be a new .onnx file (e.g. model.fp16.onnx), not the input")
    model = load_onnx(model_path)
    clamped = _out_of_range_weights(model)
    half, kept = _to_fp16(model)
    onnx.checker.check_model(half)
    extra = {**card.extra, "fp16": {"keep_io_types": True, "fp32_ops": fp32_ops(model),
                                    "fp32_constants": kept, "clamped_weights": clamped}}
    with atomic_path(out, need_bytes=half.ByteSize()) as tmp:  # card written inside: both or neither
        onnx.save(half, str(tmp))
        write_card(out, card.replace(precision="fp16", parent_sha256=card.file_sha256, extra=extra),
                   hashed=tmp)
    return out, read_card(out)

