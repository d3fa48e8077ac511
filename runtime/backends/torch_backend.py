"""Torch backend: runs an edgeseg checkpoint (``model.safetensors`` + ``model.json``).

The only runtime module that imports torch, and only when a checkpoint is opened. The model is
rebuilt from its card (never unpickled). ``device="auto"`` picks CUDA when torch sees a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import BackendError

DEVICES = ("auto", "cpu", "cuda")


class TorchBackend:
    """float32 nchw batch -> float32 logits (N, K, H, W) with the checkpoint's torch model."""

    name = "torch"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise BackendError(f"cannot run {Path(path).name}: checkpoints need torch, which is not "
                               "installed; install edgeseg[train] or export to ONNX first") from None
        from edgeseg.models.checkpoint import load_checkpoint

        if device not in DEVICES:
            raise BackendError(f"device {device!r} is not one of {', '.join(DEVICES)}")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("device cuda asked for but torch sees no CUDA GPU; use device cpu or auto")
        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device("cuda" if device == "cuda" or (
            device == "auto" and torch.cuda.is_available()) else "cpu")
        self.model, self.card = load_checkpoint(path, device=str(self.device))
        self.path = Path(path)

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized input -> float32 logits (N,K,H,W). Synchronous."""
        torch = self._torch
        expected = (3, *self.card.input_hw)
        if batch_nchw.ndim != 4 or tuple(batch_nchw.shape[1:]) != expected:
            raise BackendError(f"input batch has shape {tuple(batch_nchw.shape)}; expected "
                               f"(N, {expected[0]}, {expected[1]}, {expected[2]}) for {self.path.name}")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch_nchw, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        info: dict[str, Any] = {
            "name": self.name, "device": str(self.device), "torch_version": torch.__version__,
            "threads": torch.get_num_threads(), "precision": "fp32",
        }
        if self.device.type == "cuda":
            info["gpu_name"] = torch.cuda.get_device_name(self.device)
        return info

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
