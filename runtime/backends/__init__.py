"""Inference backends behind one small interface, chosen by the model file's suffix (docs/design.md §7).

| suffix          | backend         | module                               | needs          |
|-----------------|-----------------|--------------------------------------|----------------|
| ``.onnx``       | onnxruntime     | ``edgeseg.runtime.backends.ort``     | onnxruntime    |
| ``.engine``     | TensorRT        | ``edgeseg.runtime.backends.trt``     | tensorrt, CUDA |
| ``.safetensors``| torch           | ``edgeseg.runtime.backends.torch_backend`` | torch    |

``runtime=`` picks another runtime for the same file type (:data:`RUNTIMES`): ``.onnx`` files
also run on OpenVINO (``edgeseg.runtime.backends.openvino``, needs ``edgeseg[openvino]``).
Only the torch backend imports torch (and only when opened).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgeseg.card import ModelCard
from edgeseg.errors import BackendError, did_you_mean

SUFFIXES: dict[str, tuple[str, str]] = {
    ".onnx": ("edgeseg.runtime.backends.ort", "OrtBackend"),
    ".engine": ("edgeseg.runtime.backends.trt", "TrtBackend"),
    ".safetensors": ("edgeseg.runtime.backends.torch_backend", "TorchBackend"),
}
# runtime name -> (the suffix it runs, module, class); the suffix's default runtime is SUFFIXES'
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "onnxruntime": (".onnx", "edgeseg.runtime.backends.ort", "OrtBackend"),
    "openvino": (".onnx", "edgeseg.runtime.backends.openvino", "OpenVinoBackend"),
    "tensorrt": (".engine", "edgeseg.runtime.backends.trt", "TrtBackend"),
    "torch": (".safetensors", "edgeseg.runtime.backends.torch_backend", "TorchBackend"),
}


@runtime_checkable
class Backend(Protocol):
    """A loaded model that maps a normalized nchw float32 batch to logits.

    ``card``: the artifact's model card (preprocessing, classes, input size).
    ``name``: short backend name ("onnxruntime", "tensorrt", "torch").
    """

    card: ModelCard
    name: str

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized input -> float32 logits (N,K,H,W). Synchronous.

        Models made with ``edgeseg deploy`` (card ``output_kind="labels"``) return uint8 labels
        (N,H,W); with ``input_kind="bgr-uint8"`` they take uint8 (N,Hf,Wf,3) BGR frames."""
        ...

    def describe(self) -> dict[str, Any]:
        """What it runs on: device, provider/precision, library versions, threads."""
        ...

    def close(self) -> None:
        """Release device memory / sessions."""
        ...


def check_input(batch: np.ndarray, card: ModelCard, in_shape: tuple[int, ...]) -> None:
    """Raise BackendError unless ``batch`` is what the model takes: float (N,3,H,W) normalized, or
    for ``input_kind="bgr-uint8"`` models uint8 (N,Hf,Wf,3) BGR frames (never float)."""
    if card.input_kind == "bgr-uint8" and batch.dtype != np.uint8:
        h, w = in_shape[:2]
        raise BackendError(f"the model takes uint8 BGR frames of {h}x{w} (preprocessing inside the graph, "
                           f"made with --frame-size {h}x{w}) but got {batch.dtype} input; give it raw "
                           "frames, or use the file made without --frame-size for normalized input")
    if batch.ndim != 4 or batch.shape[1:] != in_shape:
        want = ", ".join(map(str, in_shape))
        made = "uint8 BGR frames" if card.input_kind == "bgr-uint8" else "edgeseg.preprocess produces"
        raise BackendError(f"input batch has shape {batch.shape}; expected (N, {want}) as {made} "
                           "for this card")


def open_backend(path: str | Path, runtime: str | None = None, **options: Any) -> Backend:
    """Open ``path`` with ``runtime`` (None: the one its suffix names); ``options`` go to that backend.

    Raises BackendError for an unknown suffix or runtime, or a runtime that does not run this
    file type (each listing the valid choices).
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise BackendError(
            f"cannot run {path.name}: unknown model file type {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUFFIXES)} (a checkpoint, ONNX file or TensorRT engine)"
        )
    module, cls = SUFFIXES[path.suffix]
    if runtime is not None:
        if runtime not in RUNTIMES:
            hint = did_you_mean(runtime, list(RUNTIMES))
            raise BackendError(f"unknown runtime {runtime!r}{hint}; use one of {', '.join(RUNTIMES)}")
        suffix, module, cls = RUNTIMES[runtime]
        if suffix != path.suffix:
            takes = [r for r, (s, _, _) in RUNTIMES.items() if s == path.suffix]
            raise BackendError(f"runtime {runtime} runs {suffix} files, not {path.name}; use --runtime "
                               f"{' or '.join(takes)} (or leave --runtime out) for {path.suffix} files")
    return getattr(importlib.import_module(module), cls)(path, **options)
