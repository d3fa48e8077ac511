"""Per-layer INT8 sensitivity: which weighted layers to keep out of INT8 (FP16/FP32) to recover accuracy.

``edgeseg int8-sensitivity model.onnx model.int8.onnx --data DATA [--num 16] -o sens``

For every weighted layer (Conv/ConvTranspose/Gemm/MatMul with Q/DQ) of the INT8 file, a variant
is built in which only that layer runs in float (its input Q/DQ bypassed, its FP32 weights put
back); every variant runs on the same ``num`` images and its argmax disagreement with the FP32
file is measured. The layers whose float execution removes the most disagreement are the ones to
exclude from quantization: ``edgeseg calibrate ... --keep-float NAME`` (TensorRT then runs them
in the precision of the surrounding graph: FP16 in an FP16-based build).

One-at-a-time is a first-order estimate (layer interactions are ignored); re-measure the final
file with ``edgeseg precision-report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import CalibrationError
from edgeseg.io import load_onnx

if TYPE_CHECKING:  # numpy is imported where used: the CLI reads this module's defaults
    import numpy as np

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class SensitivityOptions:
    """How to measure (``edgeseg int8-sensitivity`` takes its defaults from here): ``num`` images
    of ``split`` per variant, ``top`` layers in the Markdown table, ``threads`` onnxruntime
    intra-op threads (None: all cores)."""

    split: str = "val"
    num: int = 16
    top: int = 10
    threads: int | None = None


@dataclass(frozen=True)
class LayerSensitivity:
    """``disagreement``: argmax disagreement vs FP32 with only ``layer`` in float."""

    layer: str
    op_type: str
    disagreement: float
    reduction: float


def quantized_layers(qmodel: Any) -> list[Any]:
    """Weighted nodes whose weight comes through a DequantizeLinear."""
    dq_out = {n.output[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    return [n for n in qmodel.graph.node
            if n.op_type in WEIGHTED and len(n.input) > 1 and n.input[1] in dq_out]


def float_layer_variant(qmodel: Any, fp32: Any, layer: str) -> Any:
    """Copy of ``qmodel`` where node ``layer`` reads float input and its FP32 weight."""
    import onnx
    from edgeseg.calib.graph import float_inputs_for, remove_dangling_qdq

    variant = onnx.ModelProto()
    variant.CopyFrom(qmodel)
    node = next((n for n in variant.graph.node if n.name == layer), None)
    ref = next((n for n in fp32.graph.node if n.name == layer), None)
    if node is None or ref is None:
        raise CalibrationError(f"layer {layer!r} is not in both models; pass the FP32 file the INT8 "
                               "file was calibrated from")
    float_inputs_for(variant, {layer})  # rewires the activation input
    have = {t.name for t in variant.graph.initializer}
    node.input[1] = ref.input[1]
    if ref.input[1] not in have:
        variant.graph.initializer.append(next(t for t in fp32.graph.initializer if t.name == ref.input[1]))
    remove_dangling_qdq(variant)
    return variant


def _session(model: Any, threads: int | None) -> Any:
    import onnxruntime as ort

    from edgeseg.unpool.ort_op import session_options

    return ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                providers=["CPUExecutionProvider"])


def _argmaxes(model: Any, inputs: list[np.ndarray], threads: int | None) -> list[np.ndarray]:
    sess = _session(model, threads)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x})[0].argmax(1) for x in inputs]


def _disagreement(preds: list[np.ndarray], ref: list[np.ndarray]) -> float:
    import numpy as np

    return float(np.mean([np.mean(p != r) for p, r in zip(preds, ref, strict=True)]))


def layer_sensitivity(fp32_path: str | Path, int8_path: str | Path, data: str | Path,
                      options: SensitivityOptions = SensitivityOptions(),
                      on_layer: Callable[[int, int], None] | None = None
                      ) -> tuple[float, list[LayerSensitivity]]:
    """(disagreement of the INT8 file, per-layer results sorted by reduction, largest first).
    ``on_layer(done, total)`` is called after each layer."""

    from edgeseg.card import read_card, require_logits
    from edgeseg.data import open_dataset
    from edgeseg.preprocess import preprocess

    card = read_card(fp32_path)
    require_logits(card, fp32_path, "int8-sensitivity")
    require_logits(read_card(int8_path), int8_path, "int8-sensitivity")
    fp32, qmodel = load_onnx(fp32_path), load_onnx(int8_path)
    ds = open_dataset(str(data), split=options.split)
    inputs = [preprocess(ds[i].image_bgr, card) for i in range(min(options.num, len(ds)))]
    threads = options.threads
    ref = _argmaxes(fp32, inputs, threads)
    base = _disagreement(_argmaxes(qmodel, inputs, threads), ref)
    layers = quantized_layers(qmodel)
    if not layers:
        raise CalibrationError(f"{int8_path} has no quantized weighted layers; pass a file from "
                               "edgeseg calibrate")
    results = []
    for k, node in enumerate(layers):
        d = _disagreement(_argmaxes(float_layer_variant(qmodel, fp32, node.name), inputs, threads), ref)
        results.append(LayerSensitivity(node.name, node.op_type, d, base - d))
        if on_layer is not None:
            on_layer(k + 1, len(layers))
    return base, sorted(results, key=lambda r: -r.reduction)


def sensitivity_report(fp32_path: Path, int8_path: Path, data: str, out: Path,
                       options: SensitivityOptions = SensitivityOptions(),
                       on_layer: Callable[[int, int], None] | None = None) -> str:
    """Measure every layer (:func:`layer_sensitivity`) and write ``OUT.json`` + ``OUT.md``
    (:func:`edgeseg.report.write_report`, both or neither); return the Markdown."""
    from edgeseg.report import write_report

    base, results = layer_sensitivity(fp32_path, int8_path, data, options, on_layer)
    md = sensitivity_markdown(base, results, options.top)
    write_report(out, {"model": str(fp32_path), "int8": str(int8_path), "data": data, "split": options.split,
                       "images": options.num, "int8_disagreement": base,
                       "layers": [asdict(r) for r in results]}, md)
    return md


def sensitivity_markdown(base: float, results: list[LayerSensitivity], top: int) -> str:
    lines = [f"# INT8 per-layer sensitivity (argmax disagreement vs FP32: {100 * base:.3f} % all-INT8)", "",
             "| layer | op | disagreement with only this layer in float (%) | reduction (points) |",
             "|---|---|---:|---:|"]
    for r in results[:top]:
        lines.append(f"| {r.layer} | {r.op_type} | {100 * r.disagreement:.3f} | {100 * r.reduction:+.3f} |")
    return "\n".join(lines) + "\n"
