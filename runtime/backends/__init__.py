"""Inference backends behind one small interface, chosen by the model file's suffix (DESIGN.md §6).

| suffix          | backend         | module                               | needs          |
|-----------------|-----------------|--------------------------------------|----------------|
| ``.onnx``       | onnxruntime     | ``edgeseg.runtime.backends.ort``     | onnxruntime    |
| ``.engine``     | TensorRT        | ``edgeseg.runtime.backends.trt``     | tensorrt, CUDA |
| ``.safetensors``| torch           | ``edgeseg.runtime.backends.torch_backend`` | torch    |

Only the torch backend imports torch (and only when opened).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgeseg.card import ModelCard
from edgeseg.errors import BackendError

SUFFIXES: dict[str, tuple[str, str]] = {
    ".onnx": ("edgeseg.runtime.backends.ort", "OrtBackend"),
    ".engine": ("edgeseg.runtime.backends.trt", "TrtBackend"),
    ".safetensors": ("edgeseg.runtime.backends.torch_backend", "TorchBackend"),
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
        """float32 (N,3,H,W) normalized input -> float32 logits (N,K,H,W). Synchronous."""
        ...

    def describe(self) -> dict[str, Any]:
        """What it runs on: device, provider/precision, library versions, threads."""
        ...

    def close(self) -> None:
        """Release device memory / sessions."""
        ...


def open_backend(path: str | Path, **options: Any) -> Backend:
    """Open ``path`` with the backend its suffix names; ``options`` go to that backend.

    Raises BackendError for an unknown suffix (listing the valid ones).
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise BackendError(
            f"cannot run {path.name}: unknown model file type {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUFFIXES)} (a checkpoint, ONNX file or TensorRT engine)"
        )
    module, cls = SUFFIXES[path.suffix]
    return getattr(importlib.import_module(module), cls)(path, **options)
