"""onnxruntime backend for ``.onnx`` files (torch-free; what a Jetson image can run).

Options: :class:`~edgeseg.runtime.backends.base.OrtOptions` (CPU by default). ``provider`` asks
for others by short name (``cpu``, ``cuda``, ``tensorrt``) or full onnxruntime name; a
requested provider that is not installed, or that onnxruntime silently drops while creating the
session, is an error, never a quiet CPU fallback. Sessions
are created with :func:`edgeseg.unpool.ort_op.session_options`, so plugin-mode files (the
custom unpool node) run too. The model card is read (and its SHA-256 checked) before the file
is loaded, and the ONNX input/output shapes are checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.backends.base import ClosingBackend, OrtOptions

from edgeseg.card import ModelCard, card_path, read_card
from edgeseg.errors import BackendError, ModelError, did_you_mean
from edgeseg.io import load_onnx

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def resolve_providers(requested: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
    """Full provider names in priority order, CPU last as the fallback for unsupported nodes.

    Raises BackendError for an unknown name or one this onnxruntime build does not have.
    """
    if requested is None:
        requested = ["cpu"]
    elif isinstance(requested, str):
        requested = [p for p in requested.split(",") if p.strip()]
    names: list[str] = []
    for p in requested:
        full = PROVIDER_ALIASES.get(p.strip().lower(), p.strip())
        if full not in PROVIDER_ALIASES.values() and full not in available:
            hint = did_you_mean(p, list(PROVIDER_ALIASES))
            raise BackendError(f"unknown onnxruntime provider {p!r}{hint}; use {', '.join(PROVIDER_ALIASES)}")
        if full not in available:
            raise BackendError(
                f"onnxruntime provider {full} is not available here (available: {', '.join(available)}); "
                "install onnxruntime-gpu (desktop) or JetPack's onnxruntime wheel, or use --provider cpu"
            )
        if full not in names:
            names.append(full)
    if "CPUExecutionProvider" not in names:
        names.append("CPUExecutionProvider")
    return names


class OrtBackend(ClosingBackend):
    """An ONNX model in an onnxruntime session. ``infer``: float32 (N,3,H,W) -> logits (N,K,H,W)."""

    name = "onnxruntime"
    concurrent_infer = True  # InferenceSession.run is thread-safe; infer shares no buffers

    def __init__(self, path: str | Path, options: OrtOptions = OrtOptions()) -> None:
        import onnxruntime as ort

        from edgeseg.unpool.ort_op import session_options

        self.path = Path(path)
        self.card: ModelCard = read_card(self.path)
        if self.card.artifact != "onnx":
            raise ModelError(f"model card {card_path(self.path)} describes a {self.card.artifact}, not an "
                             "ONNX file; the card belongs to another artifact: re-export with edgeseg export")
        self.threads = options.threads
        wanted = resolve_providers(options.provider, ort.get_available_providers())
        session = session_options(options.threads)
        # Idle intra-op threads spin by default; between inferences the streaming loop needs those
        # cores for capture/preprocess/overlay (measured: preprocess 15 ms -> 1.2 ms on 2 cores).
        session.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
        self.spinning = options.spinning
        load_onnx(self.path, weights=False)  # one-line error for truncated files / external data outside
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session, providers=wanted)
        except Exception as e:  # onnxruntime raises its own pybind exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"onnxruntime cannot load {self.path.name}: {first[:200]}; expected a valid "
                               "ONNX model (re-export it with edgeseg export)") from None
        dropped = [p for p in wanted if p not in self.session.get_providers()]
        if dropped:
            raise BackendError(f"onnxruntime could not start {', '.join(dropped)} for {self.path.name} "
                               "(its libraries failed to load); fix the CUDA/TensorRT install or use "
                               "--provider cpu")
        self._version = ort.__version__
        self._check_io()

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{self.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                             "expected one image input and a logits output (re-export with edgeseg export)")
        shape, h, w = inputs[0].shape, *self.card.input_hw
        self._in_chw = (3, h, w) if self.card.frame_hw is None else (*self.card.frame_hw, 3)
        fixed = zip(shape[1:], self._in_chw, strict=False)
        if len(shape) != 4 or any(isinstance(d, int) and d != e for d, e in fixed):
            want = ", ".join(map(str, self._in_chw))
            raise ModelError(f"{self.path.name} takes input {shape} but its card says (N, {want}); the "
                             "card does not match the model file: re-export it with edgeseg export")
        k = outputs[0].shape[1] if len(outputs[0].shape) == 4 else None
        if isinstance(k, int) and k not in (self.card.num_classes, 1):
            raise ModelError(f"{self.path.name} outputs {k} classes but its card lists "
                             f"{self.card.num_classes}; the card does not match the model file: re-export it "
                             "with edgeseg export")
        self._in_name, self._out_name = inputs[0].name, outputs[0].name
        self._in_dtype: type[np.generic] = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        if self.card.input_kind == "bgr-uint8":
            self._in_dtype = np.uint8
        if (inputs[0].type == "tensor(uint8)") != (self.card.input_kind == "bgr-uint8"):
            raise ModelError(f"{self.path.name} takes {inputs[0].type} input but its card says "
                             f"input_kind {self.card.input_kind}; re-create it with edgeseg export/deploy")

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized batch -> float32 logits (N,K,H,W); see :func:`check_input`
        for uint8-frame models and labels outputs."""
        from edgeseg.runtime.backends import check_input

        check_input(batch_nchw, self.card, self._in_chw)
        if batch_nchw.dtype != self._in_dtype:
            batch_nchw = batch_nchw.astype(self._in_dtype)
        out = self.session.run([self._out_name], {self._in_name: batch_nchw})[0]
        return out if out.dtype == np.float32 or self.card.output_kind == "labels" else out.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        providers = self.session.get_providers()
        gpu = any(p in providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
        device = "cuda" if gpu else "cpu"
        return {"name": self.name, "version": self._version, "providers": providers, "device": device,
                "threads": self.threads if self.threads is not None else "default (all cores)",
                "spinning": self.spinning,
                "precision": self.card.precision}

    def close(self) -> None:
        """Drop the session (idempotent)."""
        self.__dict__.pop("session", None)
