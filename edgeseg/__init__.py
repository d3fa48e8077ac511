"""edgeseg: semantic segmentation from PyTorch training to TensorRT engines on a live camera.

Importing ``edgeseg`` is light and torch-free; torch is imported only by training/export code.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(path: str) -> Any:
    """Rebuild a torch model from ``model.safetensors`` + its card ``model.json`` (never unpickles)."""
    from edgeseg.checkpoint import load_model as _load

    return _load(path)
