"""Torch backend: runs an edgeseg checkpoint (``model.safetensors`` + ``model.json``).

The only runtime module that imports torch, and only when a checkpoint is opened. The model is
rebuilt from its card (never unpickled). Options: :class:`~edgeseg.runtime.backends.base.TorchOptions`
(``device="auto"`` picks CUDA when torch sees a GPU). torch missing is an ImportError that
``open_backend`` turns into the install line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.backends.base import ClosingBackend, TorchOptions

from edgeseg.errors import BackendError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def _device(torch: Any, device: str) -> Any:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a torch.device; BackendError when it is not here."""
    if device not in DEVICES[:3] and not re.fullmatch(r"cuda:\d+", device):
        raise BackendError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendError(f"device {device} asked for but torch sees no CUDA GPU; use device cpu or "
                               "auto")
        count = torch.cuda.device_count()
        if int(device.partition(":")[2] or 0) >= count:
            raise BackendError(f"device {device} asked for but torch sees {count} CUDA GPU(s), cuda:0.."
                               f"cuda:{count - 1}; use one of those, or cuda")
    return torch.device(device)


class TorchBackend(ClosingBackend):
    """float32 nchw batch -> float32 logits (N, K, H, W) with the checkpoint's torch model."""

    name = "torch"

    def __init__(self, path: str | Path, options: TorchOptions = TorchOptions()) -> None:
        import torch

        from edgeseg.models.checkpoint import load_checkpoint

        self.device = _device(torch, options.device)
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        self._torch = torch
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
        """Drop the model and, on CUDA, torch's cached memory (idempotent)."""
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
