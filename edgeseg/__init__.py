"""edgeseg: semantic segmentation from PyTorch training to TensorRT engines on a live camera.

Importing ``edgeseg`` is light and torch-free: the runtime (numpy, OpenCV, onnxruntime) is
imported on the first :func:`load`, torch only by training/export code and :func:`load_model`.

    m = edgeseg.load("model.int8.onnx")     # any edgeseg artifact with its card
    labels = m.predict(frame)               # uint8 (H, W) class ids for a BGR uint8 frame
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.version import __version__

if TYPE_CHECKING:
    from edgeseg.runtime.api import Segmenter

__all__ = ["__version__", "load", "load_model"]


def load(path: str | Path, **options: Any) -> Segmenter:
    """Open an ``.onnx`` file, TensorRT ``.engine`` or ``.safetensors`` checkpoint for inference.

    Returns a :class:`edgeseg.runtime.api.Segmenter` (``predict``, ``predict_batch``, ``logits``,
    ``card``, ``close``; a context manager). ``options`` go to the backend (``threads``,
    ``providers`` for ONNX; ``plugin``, ``device`` for engines; ``device``, ``threads`` for
    checkpoints). Only a checkpoint imports torch.
    """
    from edgeseg.runtime.api import load as _load

    return _load(path, **options)


def load_model(path: str) -> Any:
    """Rebuild a torch model from ``model.safetensors`` + its card ``model.json`` (never unpickles)."""
    from edgeseg.models.checkpoint import load_model as _load

    return _load(path)
