"""OpenVINO backend for ``.onnx`` files (torch-free; ``openvino`` imported when opened).

Selected with ``runtime="openvino"`` (``--runtime openvino`` in ``stream`` / ``eval``; the ``ov*``
rows of ``bench``); onnxruntime stays the default for ``.onnx``. The ONNX file is read by
OpenVINO's ONNX frontend and compiled for ``device`` (``CPU``; ``GPU``/``GPU.N``/``NPU`` where
Intel's drivers expose them) with the LATENCY performance hint. Options:
:class:`~edgeseg.runtime.backends.base.OpenVinoOptions`; ``openvino`` missing is an ImportError
that ``open_backend`` turns into the install line (``pip install 'edgeseg[openvino]'``).

**Inference precision** is the precision OpenVINO computes in, which is not the file's: on a CPU
with bf16 instructions (AVX512-BF16 / AMX) OpenVINO computes an FP32 file in bf16 by default, on
Intel GPUs in f16. ``inference_precision``: ``auto`` (OpenVINO's default for the device), ``f32``,
``bf16`` or ``f16``. A hint the device does not list in its ``OPTIMIZATION_CAPABILITIES`` is
refused, and the precision the compiled model reports back is recorded in :meth:`describe`
(and so in every bench row and stream/eval report); a compiled model that reports another
precision than the one asked for is an error, never a quiet fallback. Q/DQ INT8 files run their
quantized parts in int8 (OpenVINO's low-precision transformations); the rest of the graph runs in
the inference precision.

Plugin-mode files (edgeseg's custom ``MaxUnpool2x2`` node) cannot run here: OpenVINO has no
kernel for it. They are refused before loading, with the native export as the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.backends.base import INFERENCE_PRECISIONS, ClosingBackend, OpenVinoOptions

from edgeseg.card import ModelCard, card_path, read_card
from edgeseg.errors import BackendError, ModelError, did_you_mean

# OPTIMIZATION_CAPABILITIES entry that says a device computes in that precision
_CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


def resolve_device(device: str, available: list[str]) -> str:
    """``cpu`` / ``GPU.1`` / ... -> the OpenVINO device name; BackendError when it is not here.

    OpenVINO names devices in upper case (``CPU``, ``GPU``, ``GPU.0``, ``NPU``); the plain family
    name (``GPU``) selects its first device.
    """
    name = device.strip().upper()
    families = {d.split(".")[0] for d in available}
    if name in available or name in families:
        return name
    choices = ", ".join(available) or "none"
    raise BackendError(f"OpenVINO device {device!r} is not present here (available: {choices}); use "
                       f"--device {available[0] if available else 'CPU'}, or install the Intel GPU/NPU "
                       "driver for that device")


def check_precision(requested: str, device: str, capabilities: list[str]) -> None:
    """BackendError unless ``requested`` is ``auto`` or a precision ``device`` can compute in."""
    if requested not in INFERENCE_PRECISIONS:
        hint = did_you_mean(requested, INFERENCE_PRECISIONS)
        raise BackendError(f"unknown inference precision {requested!r}{hint}; use one of "
                           f"{', '.join(INFERENCE_PRECISIONS)}")
    if requested != "auto" and _CAPABILITY[requested] not in capabilities:
        usable = [p for p in ("f32", "bf16", "f16") if _CAPABILITY[p] in capabilities]
        raise BackendError(f"OpenVINO device {device} cannot compute in {requested} (its capabilities: "
                           f"{', '.join(capabilities) or 'none listed'}); use --inference-precision "
                           f"{usable[0] if usable else 'auto'} (or auto, OpenVINO's default for {device})")


def refuse_custom_nodes(path: Path) -> None:
    """BackendError for a graph with nodes outside the standard ONNX domain (plugin mode)."""
    import onnx

    from edgeseg.unpool.onnx_graph import custom_ops, stock_runtime_fix

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError / OSError variants
        raise BackendError(f"{path.name} is not a readable ONNX file ({type(e).__name__}); re-export it "
                           "with edgeseg export") from None
    custom = custom_ops(model)
    if custom:
        raise BackendError(f"{path.name} has {', '.join(custom)}, a custom node OpenVINO cannot run (a "
                           f"plugin-mode export); export native ops for OpenVINO: {stock_runtime_fix()} "
                           "(or run this file on onnxruntime: drop --runtime openvino)")


def precision_name(value: Any) -> str:
    """An OpenVINO element type (``<Type: 'float32'>``) or its string -> ``f32`` / ``bf16`` / ``f16``."""
    name = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(name.lower(), name.lower())


class OpenVinoBackend(ClosingBackend):
    """An ONNX model compiled by OpenVINO. ``infer``: float32 (N,3,H,W) -> float32 logits (N,K,H,W)."""

    name = "openvino"

    def __init__(self, path: str | Path, options: OpenVinoOptions = OpenVinoOptions()) -> None:
        self.path = Path(path)
        self.card: ModelCard = read_card(self.path)
        if self.card.artifact != "onnx":
            raise ModelError(f"model card {card_path(self.path)} describes a {self.card.artifact}, not an "
                             "ONNX file; --runtime openvino runs .onnx files (re-export with edgeseg export)")
        import openvino as ov

        refuse_custom_nodes(self.path)
        device, inference_precision, threads = options.device, options.inference_precision, options.threads
        core = ov.Core()
        self.device = resolve_device(device, list(core.available_devices))
        check_precision(inference_precision, self.device,
                        list(core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")))
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if inference_precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        if threads is not None and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = core.compile_model(core.read_model(str(self.path)), self.device, config)
        except Exception as e:  # OpenVINO raises RuntimeError / its own exception types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BackendError(f"OpenVINO cannot compile {self.path.name} for {self.device}: {first[:200]}; "
                               "expected a valid ONNX model (re-export it with edgeseg export) or run it "
                               "with onnxruntime (drop --runtime openvino)") from None
        self.requested_precision = inference_precision
        self.inference_precision = precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if inference_precision != "auto" and self.inference_precision != inference_precision:
            raise BackendError(f"OpenVINO compiled {self.path.name} for {self.device} in "
                               f"{self.inference_precision}, not the {inference_precision} asked for; use "
                               f"--inference-precision {self.inference_precision} (or auto)")
        self.threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) if self.device == "CPU" else None
        self._device_name = str(core.get_property(self.device, "FULL_DEVICE_NAME"))
        self._version = ov.get_version()
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._check_io(compiled)

    def _check_io(self, compiled: Any) -> None:
        inputs, outputs = compiled.inputs, compiled.outputs
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{self.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                             "expected one image input and a logits output (re-export with edgeseg export)")
        h, w = self.card.input_hw
        shape = inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
        if len(dims) != 4 or any(d is not None and d != e for d, e in zip(dims[1:], (3, h, w), strict=True)):
            raise ModelError(f"{self.path.name} takes input {shape} but its card says (N, 3, {h}, {w}); the "
                             "card does not match the model file: re-export it with edgeseg export")
        self.fixed_batch: int | None = dims[0]
        self._in_dtype = np.float16 if inputs[0].get_element_type().get_type_name() == "f16" else np.float32
        self._in_chw = (3, h, w)

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized batch -> float32 logits (N,K,H,W). Synchronous."""
        if batch_nchw.ndim != 4 or batch_nchw.shape[1:] != self._in_chw:
            want = ", ".join(map(str, self._in_chw))
            raise BackendError(f"input batch has shape {batch_nchw.shape}; expected (N, {want}) as "
                               "edgeseg.preprocess produces for this card")
        x = np.ascontiguousarray(batch_nchw, dtype=self._in_dtype)
        out = self._request.infer([x])[0]  # a copy: the next call does not overwrite it
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self._version, "device": self.device.lower(),
                "device_name": self._device_name, "threads": self.threads,
                "inference_precision": self.inference_precision,
                "inference_precision_requested": self.requested_precision,
                "precision": self.card.precision, "providers": [f"OpenVINO {self.device}"]}

    def close(self) -> None:
        """Drop the infer request and the compiled model (idempotent)."""
        self.__dict__.pop("_request", None)
        self.__dict__.pop("_compiled", None)
