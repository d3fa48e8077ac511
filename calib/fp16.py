"""FP16 ONNX with FP32 inputs/outputs: ``edgeseg convert-fp16 model.onnx [-o model.fp16.onnx]``.

TensorRT 11 builds strongly typed networks, so FP16 means an FP16 ONNX file (DESIGN.md §5). The
conversion uses onnxruntime's maintained copy of the onnxconverter-common float16 converter
(``onnxruntime.transformers.float16``, shipped in the onnxruntime wheel: no extra dependency):

* ``keep_io_types=True``: the graph input and the logits stay float32, with Cast nodes inside,
  so every caller (runtime, eval, TensorRT bindings) feeds and reads float32 as before;
* the unpool **plugin node is blocked** (kept in float32 with casts around it): its onnxruntime
  kernel and the TensorRT plugin's declared I/O are float32. The native unpool subgraph is
  converted like the rest; its ArgMax compares the same fp16 values either way.
* initializers outside the float16 range are clamped by the converter (to +-65504 / 5.96e-8);
  the number of weights that changed this way is recorded in the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.card import read_card, require_logits, write_card
from edgeseg.errors import CalibrationError
from edgeseg.io import atomic_path

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


def to_fp16(model: Any) -> Any:
    """FP32 ModelProto -> FP16 ModelProto with FP32 I/O and the plugin node kept FP32."""
    from edgeseg.calib.graph import copy_value_info, topological_sort
    from edgeseg.export.unpool import OP_NAME
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = _clone(model)
    copy_value_info(model)
    half = convert_float_to_float16(model, keep_io_types=True,
                                    op_block_list=[*DEFAULT_OP_BLOCK_LIST, OP_NAME])
    topological_sort(half)
    return half


def _clone(model: Any) -> Any:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def convert_fp16(model_path: str | Path, out: str | Path | None = None) -> tuple[Path, Any]:
    """Write the FP16 version of an FP32 ONNX file (+ card); returns (path, card).

    Raises CalibrationError for a non-FP32 input or an output path equal to the input.
    """
    import onnx

    model_path = Path(model_path)
    out = Path(out) if out is not None else default_fp16_path(model_path)
    card = read_card(model_path)
    require_logits(card, model_path, "convert-fp16")
    if card.artifact != "onnx" or card.precision != "fp32":
        raise CalibrationError(f"convert-fp16 needs an FP32 ONNX model; {model_path} is {card.artifact} "
                               f"{card.precision}; convert the FP32 file from edgeseg export")
    if out.resolve() == model_path.resolve() or out.suffix != ".onnx":
        raise CalibrationError(f"output {out} must be a new .onnx file (e.g. model.fp16.onnx), not the input")
    model = onnx.load(str(model_path))
    clamped = _out_of_range_weights(model)
    half = to_fp16(model)
    onnx.checker.check_model(half)
    with atomic_path(out) as tmp:
        onnx.save(half, str(tmp))
    extra = {**card.extra, "fp16": {"keep_io_types": True, "fp32_ops": [_plugin_name()],
                                    "clamped_weights": clamped}}
    write_card(out, card.replace(precision="fp16", parent_sha256=card.file_sha256, extra=extra))
    return out, read_card(out)


def _plugin_name() -> str:
    from edgeseg.export.unpool import OP_NAME

    return OP_NAME
