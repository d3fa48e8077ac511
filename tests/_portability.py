"""Test helper: run an ONNX file through the third-party tools edgeseg's users load it with.

Each tool is used *stock*, the way a user outside edgeseg would: onnxruntime without edgeseg's
custom-op registration, OpenVINO's ONNX frontend on the CPU plugin (its default inference
precision, which is recorded), OpenCV's DNN module, and Polygraphy's onnxruntime runner. Each run
is split into **loads** (the tool parses / compiles the file) and **runs** (one forward pass of a
batch), and the argmax of the logits is compared with a reference argmax (the PyTorch checkpoint).

Also used by ``scripts/portability.py`` (the table in docs/portability.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = ("onnxruntime", "openvino", "opencv-dnn", "polygraphy-onnxrt")


@dataclass(frozen=True)
class ToolResult:
    """One tool on one file. ``agreement``: share of pixels whose argmax equals the reference."""

    tool: str
    version: str
    loads: bool
    runs: bool
    agreement: float | None
    error: str | None = None
    note: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def _onnxruntime(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # no custom ops
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x})[0]), ort.__version__, ""


def _openvino(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU")
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return (lambda x: compiled([x])[0]), ov.get_version().split("-")[0], f"inference precision {precision}"


def _opencv(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    import cv2

    net = cv2.dnn.readNetFromONNX(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return np.asarray(net.forward())

    return run, cv2.__version__, ""


def _polygraphy(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    import polygraphy
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    runner = OnnxrtRunner(SessionFromOnnx(str(path), providers=["cpu"]))
    runner.activate()
    name = _input_name(path)
    return (lambda x: next(iter(runner.infer({name: x}).values()))), polygraphy.__version__, ""


LOADERS: dict[str, Callable[[Path], tuple[Callable[[np.ndarray], np.ndarray], str, str]]] = {
    "onnxruntime": _onnxruntime, "openvino": _openvino, "opencv-dnn": _opencv,
    "polygraphy-onnxrt": _polygraphy,
}


def _first_line(e: BaseException) -> str:
    """The error in one line: its non-empty lines joined with " / " (OpenVINO and OpenCV name the
    unsupported op several lines down), at most 2000 characters."""
    lines = [line.strip(" \t>") for line in str(e).splitlines() if line.strip(" \t>")]
    return f"{type(e).__name__}: {' / '.join(lines)[:2000]}"


def _version(tool: str) -> str:
    import importlib.metadata

    dist = {"onnxruntime": "onnxruntime", "openvino": "openvino", "opencv-dnn": "opencv-python-headless",
            "polygraphy-onnxrt": "polygraphy"}[tool]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_tool(tool: str, path: Path, batch_nchw: np.ndarray, ref_argmax: np.ndarray) -> ToolResult:
    """Load ``path`` with ``tool``, run ``batch_nchw`` (float32 N,3,H,W), compare the argmax over
    classes with ``ref_argmax`` (N,H,W). Every failure is caught and recorded, never raised."""
    t0 = time.perf_counter()
    try:
        infer, version, note = LOADERS[tool](path)
    except Exception as e:  # noqa: BLE001 - a tool refusing the file is a result
        return ToolResult(tool, _version(tool), False, False, None, _first_line(e))
    try:  # one image per call: edgeseg exports a fixed batch of 1 unless --dynamic-batch
        out = np.concatenate([np.asarray(infer(np.ascontiguousarray(x[None], dtype=np.float32)))
                              for x in batch_nchw])
    except Exception as e:  # noqa: BLE001
        return ToolResult(tool, version, True, False, None, _first_line(e), note)
    if out.shape[0] != batch_nchw.shape[0] or out.shape[2:] != ref_argmax.shape[1:]:
        return ToolResult(tool, version, True, False, None, f"output shape {out.shape}", note)
    agreement = float(np.mean(out.argmax(1) == ref_argmax))
    return ToolResult(tool, version, True, True, agreement, None, note, round(time.perf_counter() - t0, 3))


def check_file(path: Path, batch_nchw: np.ndarray, ref_argmax: np.ndarray,
               tools: tuple[str, ...] = TOOLS) -> list[ToolResult]:
    """:func:`run_tool` for every tool."""
    return [run_tool(t, path, batch_nchw, ref_argmax) for t in tools]


def make_artifacts(checkpoint: Path, folder: Path, hw: tuple[int, int], calib_data: str,
                   log: Callable[[str], None] = lambda _m: None) -> dict[str, Path]:
    """Every ONNX artifact edgeseg writes for ``checkpoint`` at ``hw``, as its commands write them.

    ``fp32-native`` (``edgeseg export --unpool native``), ``fp32-plugin`` (``--unpool plugin``,
    when the model has an unpool), ``fp16`` (``edgeseg convert-fp16`` of the native file),
    ``int8`` (``edgeseg calibrate``: TensorRT Q/DQ placement, the deployable file) and
    ``int8-full`` (``--placement full``, onnxruntime's placement), both min/max on 16 images of
    ``calib_data``.
    """
    from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, make_calib_set
    from edgeseg.calib.fp16 import convert_fp16, default_fp16_path
    from edgeseg.calib.quantize import CalibrateOptions, calibrate
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    from edgeseg.card import read_card

    folder.mkdir(parents=True, exist_ok=True)
    has_unpool = read_card(checkpoint).architecture in ("segnet", "segnet-basic", "res-segnet")
    out: dict[str, Path] = {}
    log(f"export {checkpoint.parent.name} native")
    out["fp32-native"], card = export_onnx(checkpoint, folder / "model.onnx",
                                           ExportOptions(unpool="native", input_hw=hw))
    if has_unpool:
        log("export plugin")
        out["fp32-plugin"], _ = export_onnx(checkpoint, folder / "model.plugin.onnx",
                                            ExportOptions(unpool="plugin", input_hw=hw))
    log("convert-fp16")
    out["fp16"], _ = convert_fp16(out["fp32-native"], default_fp16_path(out["fp32-native"]))
    set_path = folder / "calib-set.json"
    make_calib_set(calib_data, Preprocess.from_card(card), set_path,
                   CalibSetOptions(num=16, strategy="random", split="train"))
    for name, placement in (("int8", "tensorrt"), ("int8-full", "full")):
        log(f"calibrate {placement}")
        out[name] = calibrate(out["fp32-native"], set_path, folder / f"model.{name}.onnx",
                              CalibrateOptions(method="minmax", placement=placement,
                                               cache_dir=folder / "ranges"))[0]
    return out


# What each artifact is expected to do in a stock tool: plugin mode is refused at load.
EXPECTED_REFUSED = {"fp32-plugin"}
